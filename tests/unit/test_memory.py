"""The allocator setting of the batch commands takes effect where glibc is present."""

from __future__ import annotations

import platform

import pytest

from leadscore.memory import reuse_freed_memory


@pytest.mark.skipif(platform.system() != "Linux", reason="glibc mallopt is Linux-only")
def test_reuse_freed_memory_is_accepted_by_glibc() -> None:
    assert reuse_freed_memory() is True
