"""This repository's pytest glue: the Hypothesis profile and the parametrization over its own
records (for the documentation tests). Options, the record checks, their benchmark items and the
benchmark summary come from handgrad's plugin (handgrad/pytest_plugin.py)."""

from __future__ import annotations

import pytest
from hypothesis import settings

import handgrad

settings.register_profile("handgrad", deadline=None, derandomize=True, database=None)
settings.load_profile("handgrad")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """This repository's own parametrization: its records (for the documentation tests). The
    checks and benchmarks of every record come from handgrad's pytest plugin, which collects
    derivations/ by path ([tool.handgrad] in pyproject.toml)."""
    if "record" in metafunc.fixturenames:
        metafunc.parametrize("record", handgrad.derivations(), ids=lambda r: r.name)


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """The plugin's one item per page equation (``NAME[eq-TAG]``, about 970 over the catalogue,
    100 s on one core) runs in the slow set here; the default run checks the pages through the
    records' own equation check and tests/pages."""
    for item in items:
        if "[eq-" in item.name:
            item.add_marker(pytest.mark.slow)
