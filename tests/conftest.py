"""Every test runs in its own temporary directory, so trial's ``mktemp()`` paths (relative)
never land in the source tree."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
