"""Which Dask cluster runs the scenes, and a client to it.

One kind per run (`ClusterChoice`, from the ``--dask.*`` options):

- a running cluster (``--scheduler-address``): joined, never shut down by DARTS;
- a cluster of batch jobs that dask-jobqueue submits (``--cluster-config FILE``): the
  ``[cluster]`` table of a TOML file names the class (``SLURMCluster``, ``PBSCluster``,
  ...), its keyword arguments as dask-jobqueue documents them, and how many jobs;
  DARTS starts it for the run and shuts it down afterwards;
- by default a local cluster of worker processes on this machine, listening on
  127.0.0.1 only (a local cluster has no reason to be reachable from elsewhere).

Every worker must see the same file system as the client (the raw-data store, the
auxiliary cubes, the model files and the output folder are shared by path), and have
darts with its ``[inference]`` and ``[dask]`` extras installed.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from darts.errors import ConfigError

if TYPE_CHECKING:
    from distributed import Client

    from darts.pipelines.events import EventSink
    from darts.settings.resolve import Resolved

# What one scene may take at most (the sequential pipeline's bound, benchmarks/README):
# a default local cluster starts no more workers than memory holds scenes.
SCENE_MEMORY_BYTES = 4_000_000_000

_CLUSTER_KEYS = ("class", "jobs", "minimum-jobs", "maximum-jobs", "options")


@dataclass(frozen=True)
class ClusterChoice:
    """Where a Dask run's tasks go; see the module docstring."""

    scheduler_address: str | None = None
    cluster_config: Path | None = None
    n_workers: int | None = None
    threads_per_worker: int = 1

    def __post_init__(self) -> None:
        if self.scheduler_address and self.cluster_config:
            raise ConfigError(
                "--scheduler-address joins a running cluster and --cluster-config starts "
                "one: give only one of them"
            )
        remote = self.scheduler_address or self.cluster_config
        if remote and self.n_workers is not None:
            raise ConfigError(
                "--n-workers sizes a local cluster; with --scheduler-address or "
                "--cluster-config the cluster decides how many workers there are: drop it"
            )
        if self.n_workers is not None and self.n_workers < 1:
            raise ConfigError(f"--n-workers {self.n_workers}: give 1 or more")
        if self.threads_per_worker < 1:
            raise ConfigError(f"--threads-per-worker {self.threads_per_worker}: give 1 or more")


def cluster_choice(settings: Resolved) -> ClusterChoice:
    from darts.settings.cluster import DaskCluster

    chosen = settings.get(DaskCluster)
    return ClusterChoice(
        scheduler_address=chosen.scheduler_address or None,
        cluster_config=chosen.cluster_config,
        n_workers=chosen.n_workers,
        threads_per_worker=chosen.threads_per_worker,
    )


def default_local_workers(threads_per_worker: int = 1) -> int:
    """Worker processes of a default local cluster: one per CPU core this process may
    use ÷ threads per worker, and no more than memory holds scenes at once."""
    import psutil

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    by_cores = (cores or 1) // threads_per_worker
    by_memory = psutil.virtual_memory().total // (SCENE_MEMORY_BYTES * threads_per_worker)
    return max(1, min(by_cores, by_memory))


# -- the cluster-config file -------------------------------------------------------------


@dataclass(frozen=True)
class JobQueueConfig:
    """The ``[cluster]`` table of a ``--cluster-config`` file."""

    path: Path
    class_name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    jobs: int | None = None
    minimum_jobs: int | None = None
    maximum_jobs: int | None = None


def read_cluster_config(path: Path) -> JobQueueConfig:
    """Read and check a cluster-config file; every problem names the file."""
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"cluster config {path} does not exist") from None
    except (IsADirectoryError, PermissionError) as error:
        raise ConfigError(f"cluster config {path} cannot be read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"cluster config {path} is not valid TOML: {error}") from None
    table = document.get("cluster")
    if set(document) != {"cluster"} or not isinstance(table, dict):
        raise ConfigError(
            f"cluster config {path} must hold exactly one [cluster] table "
            "(class, jobs, and [cluster.options]); see the README"
        )
    unknown = sorted(set(table) - set(_CLUSTER_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in [cluster] of {path}; the keys are "
            f"{', '.join(_CLUSTER_KEYS)} (keyword arguments of the class go in [cluster.options])"
        )
    class_name = table.get("class")
    if not isinstance(class_name, str) or not class_name:
        raise ConfigError(f'[cluster] of {path} needs class = "SLURMCluster" (or another)')
    options = table.get("options", {})
    if not isinstance(options, dict):
        raise ConfigError(f"[cluster] options of {path} must be a table")
    counts = {key: table.get(key) for key in ("jobs", "minimum-jobs", "maximum-jobs")}
    for key, value in counts.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ConfigError(f"[cluster] {key} of {path} must be a whole number")
        if value is not None and value < (0 if key == "minimum-jobs" else 1):
            raise ConfigError(f"[cluster] {key} = {value} in {path} is too small")
    if counts["jobs"] is not None and (counts["minimum-jobs"] or counts["maximum-jobs"]):
        raise ConfigError(
            f"[cluster] of {path}: give jobs (a fixed number) or minimum-jobs/maximum-jobs "
            "(scale with the work), not both"
        )
    if counts["jobs"] is None and counts["maximum-jobs"] is None:
        raise ConfigError(f"[cluster] of {path} needs jobs = N, or maximum-jobs = N to adapt")
    return JobQueueConfig(
        Path(path),
        class_name,
        dict(options),
        counts["jobs"],
        counts["minimum-jobs"],
        counts["maximum-jobs"],
    )


def jobqueue_cluster(config: JobQueueConfig) -> Any:
    """The dask-jobqueue cluster ``config`` describes; its scheduler runs in this
    process from here on, but no job is submitted until `scale_cluster`."""
    import dask_jobqueue

    cls = getattr(dask_jobqueue, config.class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, dask_jobqueue.JobQueueCluster):
        known = sorted(
            name
            for name in dir(dask_jobqueue)
            if name.endswith("Cluster") and name != "JobQueueCluster"
        )
        raise ConfigError(
            f"class {config.class_name!r} in {config.path} is not a cluster of dask-jobqueue; "
            f"use one of {', '.join(known)}"
        )
    try:
        return cls(**config.options)
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"{config.class_name} does not take the options in {config.path}: {error}"
        ) from None


def scale_cluster(cluster: Any, config: JobQueueConfig) -> None:
    """Submit the jobs: a fixed number, or adaptively between the bounds."""
    if config.jobs is not None:
        cluster.scale(jobs=config.jobs)
    else:
        cluster.adapt(minimum_jobs=config.minimum_jobs or 0, maximum_jobs=config.maximum_jobs)


def job_script(path: Path) -> str:
    """The batch script each job of ``path``'s cluster would submit (nothing is
    submitted; the cluster's scheduler starts and stops again)."""
    cluster = jobqueue_cluster(read_cluster_config(path))
    try:
        return str(cluster.job_script())
    finally:
        cluster.close()


# -- a client ----------------------------------------------------------------------------


ClusterTarget = Any
"""A `ClusterChoice`, a scheduler address, a `distributed.Client` or a cluster object
(`LocalCluster`, `SLURMCluster`, ...)."""


@contextmanager
def open_client(target: ClusterTarget, on_note: EventSink | None = None) -> Iterator[Client]:
    """A client of ``target`` with at least one worker. What this opens (a local or a
    batch cluster, a client) is closed on the way out; a client or cluster given as an
    object is left running."""
    from distributed import Client

    note = on_note or (lambda event: None)
    with ExitStack() as stack:
        if isinstance(target, Client):
            client = target
        elif isinstance(target, ClusterChoice):
            client = stack.enter_context(_client_of_choice(target, stack))
        else:
            # An address string or a cluster object; Client takes either.
            client = stack.enter_context(_connect(target))
        if not client.scheduler_info().get("workers"):
            from darts.pipelines.events import Note

            note(Note("waiting for the first Dask worker to join (batch jobs may be queued)"))
            client.wait_for_workers(1)
        yield client


def _client_of_choice(choice: ClusterChoice, stack: ExitStack) -> Client:
    from distributed import Client

    if choice.scheduler_address:
        return _connect(choice.scheduler_address)
    if choice.cluster_config:
        config = read_cluster_config(choice.cluster_config)
        cluster = stack.enter_context(jobqueue_cluster(config))
        scale_cluster(cluster, config)
        return Client(cluster)
    from distributed import LocalCluster

    workers = choice.n_workers or default_local_workers(choice.threads_per_worker)
    # The scheduler's and nannies' routine warnings (a worker slow to stop at shutdown
    # is killed) would bury the run's own output; they live in this process until the
    # cluster is closed, so they are quiet until then.
    stack.enter_context(_quiet("distributed"))
    cluster = stack.enter_context(
        LocalCluster(
            n_workers=workers,
            threads_per_worker=choice.threads_per_worker,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # its HTTP server too: loopback, any free port
            silence_logs=logging.ERROR,
            preload=["darts.pipelines.dask_worker_setup"],  # Ctrl-C is the client's
        )
    )
    return Client(cluster)


def _connect(target: Any) -> Client:
    """A client of a scheduler address or a cluster object; an address nobody answers
    at is one clear error."""
    from distributed import Client

    try:
        return Client(target)
    except (OSError, TimeoutError) as error:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {target}: {error}; check --scheduler-address "
            "and that the scheduler runs"
        ) from None


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Only errors from logger ``name`` while in the block."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
