"""Options of the Dask run (``--dask.<name>``): which cluster runs the scenes.

Exactly one kind of cluster per run: a running one (``--scheduler-address``), a batch
cluster that dask-jobqueue starts (``--cluster-config``), or, by default, a local
cluster of worker processes on this machine (``--n-workers``, ``--threads-per-worker``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from darts.settings.options import AT_LEAST_1, Section, option


@dataclass(frozen=True)
class DaskCluster(Section):
    SECTION = "dask"

    scheduler_address: str | None = option(
        None,
        help="join the running Dask cluster of this scheduler (tcp://HOST:PORT); its "
        "workers need darts installed and the same file system as this machine",
        metavar="ADDRESS",
    )
    cluster_config: Path | None = option(
        None,
        help="start a batch-scheduler cluster (SLURM, PBS, ...) with dask-jobqueue, as the "
        "[cluster] table of this TOML file describes (see README)",
        metavar="FILE",
    )
    n_workers: int | None = option(
        None,
        bounds=AT_LEAST_1,
        # The older DARTS configs' worker count.
        aliases="dask-worker",
        help="local cluster: worker processes",
        default_text="one per CPU core ÷ threads per worker, at most one per 4 GB of memory",
        metavar="N",
    )
    threads_per_worker: int = option(
        1,
        bounds=AT_LEAST_1,
        help="local cluster: threads per worker process (scenes one worker runs at once)",
        metavar="N",
    )
