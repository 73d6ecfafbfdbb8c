"""A two-worker Dask ``LocalCluster`` for the tests that train on Dask.

Skipped, saying why, only when the ``[dask]`` extra is not installed; CI (``.ci/run``)
installs it and sets ``LEADSCORE_REQUIRE_DASK=1``, which turns that skip into a failure.
"""

from __future__ import annotations

import importlib.util
import os

import pytest


def require_dask() -> None:
    """Skip (or, with ``LEADSCORE_REQUIRE_DASK=1``, fail) when Dask cannot be imported."""
    missing = [m for m in ("dask", "distributed") if importlib.util.find_spec(m) is None]
    if not missing:
        return
    why = f"{', '.join(missing)} not installed (pip install 'leadscore[dask]')"
    if os.environ.get("LEADSCORE_REQUIRE_DASK") == "1":
        pytest.fail(f"{why}, and LEADSCORE_REQUIRE_DASK=1 asks for the Dask tests")
    pytest.skip(why)
