"""A Dask cluster for the work that outgrows one process: ``--cluster local|tcp://HOST:PORT``.

``local`` starts a ``distributed.LocalCluster`` of worker processes on this machine, bound
to 127.0.0.1, and closes it when the work is done; ``tcp://HOST:PORT`` connects to the
scheduler of a cluster that runs already (``dask scheduler`` and ``dask worker`` on each
machine) and leaves it running. Dask is an optional extra (``pip install
'leadscore[dask]'``): without it, naming a cluster is an error that says how to install it,
and everything else runs as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed import Client

LOCAL = "local"
_ADDRESS = re.compile(r"^tcp://[^\s:/]+:\d{1,5}$")
INSTALL_HINT = "the Dask extra is not installed: pip install 'leadscore[dask]'"


class ClusterError(ValueError):
    """A ``--cluster`` value that names no cluster, or a cluster that cannot be reached."""


def check_address(address: str) -> str:
    """``address`` if it is ``local`` or ``tcp://HOST:PORT``, else a ClusterError saying so."""
    if address == LOCAL or _ADDRESS.match(address):
        return address
    raise ClusterError(
        f"--cluster {address!r}: expected 'local' (a cluster of processes on this machine) "
        "or a scheduler's address, tcp://HOST:PORT")


@contextmanager
def dask_client(address: str, *, n_workers: int | None = None,
                threads_per_worker: int = 1,
                memory_limit: str | float | None = "auto") -> Iterator[Client]:
    """A ``distributed.Client`` on ``address`` (``local`` or ``tcp://HOST:PORT``), closed after.

    For ``local``, ``n_workers`` worker processes (default: one per core) of
    ``threads_per_worker`` threads each, listening on 127.0.0.1 only, with no dashboard
    (it would take a fixed port); the cluster ends with the block. For an address, the
    client connects within 30 s or raises a ClusterError naming the address.
    """
    check_address(address)
    try:
        from distributed import Client, LocalCluster
    except ImportError as error:
        raise ClusterError(f"--cluster {address!r}: {INSTALL_HINT}") from error
    if address == LOCAL:
        with LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                          processes=True, host="127.0.0.1", dashboard_address=None,
                          memory_limit=memory_limit) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(address, timeout=30)
    except OSError as error:
        raise ClusterError(f"--cluster {address!r}: no Dask scheduler answered there "
                           f"({error})") from error
    try:
        yield client
    finally:
        client.close()
