"""The tests that grade submissions need bubblewrap: they skip where it cannot run here, and fail
under ``CI=1`` (CI installs it, so a missing sandbox there is a defect, not a skip)."""

from __future__ import annotations

import os

import pytest

from handgrad.grade.bubblewrap import SandboxUnavailableError, probe


def require_bubblewrap() -> None:
    try:
        probe()
    except SandboxUnavailableError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI=1 and the submissions' sandbox cannot run: {exc}")
        pytest.skip(f"the submissions' sandbox cannot run here: {exc}")
