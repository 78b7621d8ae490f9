"""The submission's modules, functions, classes and objects as the grader sees them: proxies
whose every use is a request to the submission's process (:class:`handgrad.grade.remote.Channel`).

``import layers`` in the grader gives a :class:`RemoteModule` (:class:`SubmissionFinder`, last
on ``sys.meta_path``, so only a module that nothing else provides is the submission's).
Attribute access, calls, ``vars``, ``inspect.signature``, ``copy.deepcopy`` and attribute writes
are answered there. Arguments go as data (arrays, numbers, strings, containers of those, and the
submission's own objects by reference); what a call wrote into its arguments is written back
into the grader's, so the contract checks see what they would see in one process. A name the
submission does not provide (or whose module does not import, or crashes) is :class:`Missing`:
the record file still loads, and each record that uses the name reports why.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import inspect
import sys
import types
from pathlib import Path

import numpy as np

from handgrad.grade.remote import Channel, RemoteError, SubmissionGoneError
from handgrad.grade.sandbox import DATA, HANDLE, METHOD, PATH


def _to_wire(value, depth: int = 0):
    if isinstance(value, Remote):
        return object.__getattribute__(value, "_ref")
    if depth < 32 and type(value) in (tuple, list):
        return type(value)(_to_wire(v, depth + 1) for v in value)
    if depth < 32 and isinstance(value, dict):
        return {k: _to_wire(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (*DATA, np.ndarray, np.generic)):
        return value
    raise TypeError(f"cannot pass a {type(value).__name__} to the submission's code (only "
                    "arrays, numbers, strings, containers of those, and its own objects)")


def _write_back(mine, theirs, channel: Channel) -> None:
    """Make the grader's argument ``mine`` hold what the submission's call left in it."""
    if isinstance(mine, np.ndarray) and isinstance(theirs, np.ndarray):
        if mine.shape == theirs.shape and mine.flags.writeable:
            np.copyto(mine, theirs, casting="unsafe")
    elif isinstance(mine, list) and isinstance(theirs, list):
        if len(mine) == len(theirs):
            for i, (a, b) in enumerate(zip(mine, theirs)):
                if isinstance(a, np.ndarray | list | dict):
                    _write_back(a, b, channel)
                else:
                    mine[i] = _from_wire(b, channel)
        else:
            mine[:] = [_from_wire(b, channel) for b in theirs]
    elif isinstance(mine, tuple) and isinstance(theirs, tuple) and len(mine) == len(theirs):
        for a, b in zip(mine, theirs):
            _write_back(a, b, channel)
    elif isinstance(mine, dict) and isinstance(theirs, dict):
        for k in list(mine):
            if k not in theirs:
                del mine[k]
        for k, b in theirs.items():
            if k in mine and isinstance(mine[k], np.ndarray | list | dict):
                _write_back(mine[k], b, channel)
            else:
                mine[k] = _from_wire(b, channel)


def _from_wire(value, channel: Channel, path: tuple | None = None, depth: int = 0):
    if type(value) is tuple and len(value) == 5 and isinstance(value[0], str) \
            and value[0] == HANDLE:
        ref = path or (HANDLE, value[1])
        return (RemoteCallable if value[2] in ("class", "callable") else RemoteObject)(
            channel, ref, value[3], value[4])
    if depth < 32 and type(value) in (tuple, list):
        return type(value)(_from_wire(v, channel, None, depth + 1) for v in value)
    if depth < 32 and type(value) is dict:
        return {k: _from_wire(v, channel, None, depth + 1) for k, v in value.items()}
    return value


class Remote:
    """An object of the submission, held by its process."""

    __slots__ = ("_channel", "_ref", "_type", "_type_id", "_generation")

    def __init__(self, channel: Channel, ref: tuple, type_name: str, type_id: int = 0):
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_ref", ref)
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_type_id", type_id)
        object.__setattr__(self, "_generation", channel.generation)

    def _ask(self, verb: str, *args, wait: bool = True):
        channel = object.__getattribute__(self, "_channel")
        ref = object.__getattribute__(self, "_ref")
        if ref[0] == HANDLE and object.__getattribute__(self, "_generation") != \
                channel.generation:
            raise SubmissionGoneError("this object belonged to a process of the submission "
                                      "that was stopped")
        if not wait:
            return channel.post(verb, ref, *args)
        return channel.request(verb, ref, *args)

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        channel = object.__getattribute__(self, "_channel")
        ref = object.__getattribute__(self, "_ref")
        # A method of the object's class is called by name, without asking for it first: one
        # round trip per call instead of two (the method is looked up there at each call).
        known = (object.__getattribute__(self, "_type_id"), name)
        if ref[0] == HANDLE and known in channel.methods:
            return RemoteMethod(self, name)
        value = self._ask("get", name)
        if type(value) is tuple and value == (METHOD,):
            channel.methods.add(known)
            return RemoteMethod(self, name)
        path = (*ref, name) if ref[0] == PATH else None
        return _from_wire(value, channel, path)

    def __setattr__(self, name: str, value) -> None:
        self._ask("set", name, _to_wire(value), wait=False)

    @property
    def __dict__(self) -> dict:
        return _from_wire(self._ask("vars"), object.__getattribute__(self, "_channel"))

    def __deepcopy__(self, memo):
        return _from_wire(self._ask("deepcopy"), object.__getattribute__(self, "_channel"))

    def __repr__(self) -> str:
        return f"<submission's {object.__getattribute__(self, '_type')}>"


class RemoteObject(Remote):
    __slots__ = ()


class RemoteCallable(Remote):
    """A function, class or bound method of the submission."""

    __slots__ = ()

    def __call__(self, *args, **kwargs):
        channel = object.__getattribute__(self, "_channel")
        result, written = self._ask("call", _to_wire(args), _to_wire(kwargs))
        _write_back_arguments(args, kwargs, written, channel)
        return _from_wire(result, channel)

    @property
    def __signature__(self) -> inspect.Signature:
        described = self._ask("signature")
        if described is None:
            raise ValueError("no signature")
        return inspect.Signature([
            inspect.Parameter(name, inspect._ParameterKind(kind),
                              default=default if has_default else inspect.Parameter.empty)
            for name, kind, default, has_default in described])

    @property
    def __name__(self) -> str:
        ref = object.__getattribute__(self, "_ref")
        return ref[-1] if ref[0] == PATH else object.__getattribute__(self, "_type")


class RemoteMethod:
    """``obj.name`` where ``name`` is a method of the submission's object ``obj``."""

    __slots__ = ("owner", "name")

    def __init__(self, owner: Remote, name: str):
        self.owner, self.name = owner, name

    def __call__(self, *args, **kwargs):
        owner = self.owner
        channel = object.__getattribute__(owner, "_channel")
        result, written = owner._ask("callattr", self.name, _to_wire(args), _to_wire(kwargs))
        _write_back_arguments(args, kwargs, written, channel)
        return _from_wire(result, channel)


def _write_back_arguments(args, kwargs, written, channel: Channel) -> None:
    written_args, written_kwargs = written
    for i, value in written_args.items():
        _write_back(args[i], value, channel)
    for k, value in written_kwargs.items():
        _write_back(kwargs[k], value, channel)


class RemoteModule(types.ModuleType):
    """``import NAME`` in the grader, where NAME is a module of the submission."""

    def __init__(self, name: str, channel: Channel):
        super().__init__(name)
        self.__channel = channel

    def __getattr__(self, attr: str):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        channel = self.__channel
        try:
            if self.__name__ not in channel.imported:
                channel.import_module(self.__name__)
            value = channel.request("get", (PATH, self.__name__), attr)
        except Exception as exc:  # noqa: BLE001 - the records that use it report it
            return Missing(channel, f"{self.__name__}.{attr}", exc)
        return _from_wire(value, channel, (PATH, self.__name__, attr))


class Missing:
    """What a record file got for a name the submission does not provide (or whose module did
    not import, or crashed on import): the record file still loads, and each record that uses
    it reports why, so that the list of records, and the points at stake, are the same for
    every submission."""

    def __init__(self, channel: Channel, name: str, error: Exception):
        self._channel, self._name, self._error = channel, name, error
        self._incident = channel.incident if isinstance(error, SubmissionGoneError) else None

    def _raise(self):
        if self._incident is not None:
            self._channel.incidents.append(self._incident)
            raise SubmissionGoneError(self._incident.message)
        why = self._error if isinstance(self._error, RemoteError) else \
            f"{type(self._error).__name__}: {self._error}"
        raise RemoteError(f"{self._name} is not available: {why}")

    def __call__(self, *args, **kwargs):
        self._raise()

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self

    @property
    def __signature__(self):
        raise ValueError(f"{self._name} is not available")


class SubmissionFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last on ``sys.meta_path`` while a submission is graded: a top-level module that nothing
    else provides and that the submission's folder holds is the submission's, as a proxy."""

    def __init__(self, channel: Channel, names: set[str]):
        self.channel, self.names = channel, names

    def find_spec(self, fullname, path=None, target=None):
        if "." in fullname or fullname not in self.names:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        return RemoteModule(spec.name, self.channel)

    def exec_module(self, module) -> None:
        """Nothing here: the module is imported there on first use of one of its names."""


def set_aside(names) -> dict:
    """Take out of ``sys.modules`` the modules of these names that an earlier load left there
    from outside the Python installation (another folder's ``layers``), so that the submission's
    module, not a stale one, answers ``import layers``; installed modules (numpy, torch) stay,
    as the finder is last on ``sys.meta_path``. Put them back with ``sys.modules.update``."""
    prefixes = [Path(p).resolve() for p in {sys.prefix, sys.base_prefix, sys.exec_prefix}]
    aside = {}
    for name in names:
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if module is None or (file and any(Path(file).resolve().is_relative_to(p)
                                           for p in prefixes)):
            continue
        if file or not hasattr(module, "__path__"):  # not a namespace of the installation
            aside[name] = sys.modules.pop(name)
    return aside


def module_names(folder: Path) -> set[str]:
    """The top-level modules a folder provides: ``name.py`` files and packages."""
    names = {p.stem for p in folder.glob("*.py") if p.stem.isidentifier()}
    names |= {p.name for p in folder.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    return names
