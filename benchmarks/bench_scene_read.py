"""Opening one cached scene into memory, against its floor; its size against the reference.

Usage::

    .venv/bin/python benchmarks/bench_scene_read.py [--world small|full] [--runs N]
        [--store DIR] [--scene ITEM_ID] [--workdir DIR] [--checksum-only]

One scene (4 × 10 m bands + SCL on the 10 m grid) is staged once with ``stage_scene``
from the sandbox's S3 stand-in into a temporary ``SceneStore`` (or ``--store DIR`` is
reused: a scene already there is read as is, without starting the sandbox; otherwise
it is staged into DIR and kept). Its decoded bands are then written a second time
into a store with the reference encoding (Blosc zstd 3 bit-shuffle, 4096² chunks).
For both stores, runs interleaved, from a warm page cache (everything is read once,
untimed, first):

* ``open(load=True)``: ``SceneStore.open(scene_id, bands, load=True)``, what callers pay;
* **floor**: the same chunk files (``<band>/c/<i>/<j>``) read whole and Blosc-decoded
  with numcodecs into a numpy array per band, allocated inside the timing (``open``
  must return new memory too, and its first touch is a large, noisy part of the
  cost): one loop in the main thread (Blosc's own two threads), and the chunks spread
  over a 2-thread pool. The floor is the faster of the two; the target is open /
  floor ≤ 1.3;
* where the rest goes: ``open`` without the stat check, the lazy open alone (metadata
  + check), the check alone, plain ``zarr`` reads without xarray (at zarr's default
  async concurrency and at 2), the floor into already touched arrays (what fresh
  memory costs), and a prototype of a faster ``open`` (record → stat check → lazy
  xarray skeleton → chunks decoded by a 2-thread pool), checked identical to ``open``.

Then bytes on disk per scene (band arrays: chunk files + metadata; also allocated
blocks) for the store's encoding against the reference, with the read-time ratios
(target: no larger, at equal or better read speed). Every timing is min / median
wall seconds over ``--runs`` (≥ 7 on a shared machine), with the median user and
system CPU seconds and minor page faults of the whole process: wall time swings
with the neighbours' load, page faults do not. Ratios are given as ratio of medians,
of minima, and median of the per-run ratios (the two ran seconds apart).

The checksum's cost: the same decoded bands are also written into a third store with
the store's encoding but without the CRC-32C codec (what stores staged before it
look like), and ``open(load=True)`` (the direct reader) and the lazy
``open().load()`` (through zarr, where the checked store and zarr's codec each
compute the CRC) are timed on both in every run, one right after the other. The
ratio with / without is the read time the checksum adds (issue 15: at most 5 %).
``--checksum-only`` measures just that (many runs in little time).

``--world small`` (default, 1200² px, one chunk per band) runs in seconds; ``--world
full`` reads a real-size 10980² scene (building that world takes minutes the first
time; it is cached like the test worlds).
"""

from __future__ import annotations

import argparse
import gc
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import xarray as xr
import zarr
from bench_common import checksum_share, pick_item, work_folder, world_layout
from zarr.storage import LocalStore

from darts.net import NetworkSettings, S3Client, S3Settings
from darts.pipelines.staging import stage_scene
from darts.sandbox.service import Sandbox
from darts.sources.cdse_bands import resolve_bands
from darts.sources.cdse_source import CdseSource
from darts.store.encoding import DEFAULT_ENCODING, BandEncoding
from darts.store.manifest import check_manifest
from darts.store.record import ArrayRecord
from darts.store.scenes import SceneStore

# The reference implementation's encoding: the same codec as ours, 4096² chunks.
REFERENCE_ENCODING = BandEncoding(chunk=4096, blocksize=0, checksum=False)  # Blosc's block size
# The store's encoding as it was before chunks carried a CRC-32C.
UNCHECKED_ENCODING = replace(DEFAULT_ENCODING, checksum=False)
CHECKSUM_TARGET = 1.05
# The machine has 2 cores: more decode threads than that only adds switching.
THREADS = 2
TARGET_RATIO = 1.3


# -- timing ------------------------------------------------------------------------------


@dataclass
class Timing:
    """Wall seconds, and user / system CPU seconds and minor page faults of the whole
    process (all threads) per run. On a shared machine wall time swings with the
    neighbours' load; page faults do not, and system time is mostly what they cost
    (fresh memory is zeroed, and huge pages may wait for compaction)."""

    wall: list[float] = field(default_factory=list)
    user: list[float] = field(default_factory=list)
    system: list[float] = field(default_factory=list)
    faults: list[int] = field(default_factory=list)

    def add(self, fn: Callable[[], object]) -> None:
        settle()
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        result = fn()
        self.wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_SELF)
        self.user.append(after.ru_utime - before.ru_utime)
        self.system.append(after.ru_stime - before.ru_stime)
        self.faults.append(after.ru_minflt - before.ru_minflt)
        del result  # freed after the clock stops: returning memory is the caller's cost

    @property
    def min(self) -> float:
        return min(self.wall)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(u + s for u, s in zip(self.user, self.system, strict=True))

    def __str__(self) -> str:
        return (
            f"{self.min:6.3f} / {self.median:6.3f} s   cpu {statistics.median(self.user):5.2f} "
            f"+ {statistics.median(self.system):5.2f} s   {statistics.median(self.faults):7.0f}"
        )


def settle() -> None:
    # The previous measurement's ~1 GB of arrays must be gone before the next starts,
    # or its freeing (and the allocator's reuse of it) lands on the wrong candidate.
    gc.collect()
    time.sleep(0.1)


@contextmanager
def zarr_concurrency(limit: int) -> Iterator[None]:
    with zarr.config.set({"async.concurrency": limit}):
        yield


# -- the floor: chunk files read and decoded directly ------------------------------------


@dataclass(frozen=True)
class ChunkRead:
    path: Path
    rows: slice
    cols: slice
    # The stored chunk is always full-size; edge chunks are cut to the array.
    valid: tuple[int, int]


@dataclass(frozen=True)
class BandPlan:
    """What the floor needs to read one band, worked out from the commit record
    (untimed: it is metadata the reader already has)."""

    name: str
    shape: tuple[int, int]
    chunks: tuple[int, int]
    dtype: np.dtype[Any]
    fill_value: Any
    reads: tuple[ChunkRead, ...]
    # Chunks without a file (entirely nodata, never written) read as the fill value.
    absent: tuple[tuple[slice, slice], ...]


def band_plan(band_dir: Path, name: str, record: ArrayRecord) -> BandPlan:
    rows, cols = (int(n) for n in record.shape)
    crow, ccol = (int(n) for n in record.chunks)
    reads: list[ChunkRead] = []
    absent: list[tuple[slice, slice]] = []
    for i in range(-(-rows // crow)):
        for j in range(-(-cols // ccol)):
            r = slice(i * crow, min((i + 1) * crow, rows))
            c = slice(j * ccol, min((j + 1) * ccol, cols))
            key = f"c/{i}/{j}"  # zarr v3 default chunk key encoding, "/" separator
            if key in record.files:
                reads.append(ChunkRead(band_dir / key, r, c, (r.stop - r.start, c.stop - c.start)))
            else:
                absent.append((r, c))
    return BandPlan(
        name,
        (rows, cols),
        (crow, ccol),
        np.dtype(record.dtype),
        record.fill_value,
        tuple(reads),
        tuple(absent),
    )


def scene_plans(store: SceneStore, scene_id: str, bands: Sequence[str]) -> list[BandPlan]:
    record = store.commit_record(scene_id)
    assert record is not None
    scene_dir = store.scene_path(scene_id)
    return [band_plan(scene_dir / b, b, record.bands[b]) for b in bands]


_CODEC = numcodecs.Blosc()  # the Blosc frame header says everything decoding needs
_scratch = threading.local()


def _chunk_buffer(plan: BandPlan) -> np.ndarray:
    """One reusable chunk-sized buffer per thread and chunk shape: decoding into it
    costs no fresh memory (no page faults) for every chunk."""
    key = (plan.chunks, plan.dtype.str)
    buffers: dict[tuple[Any, ...], np.ndarray] = getattr(_scratch, "buffers", {})
    _scratch.buffers = buffers
    if key not in buffers:
        buffers[key] = np.empty(plan.chunks, plan.dtype)
    return buffers[key]


def decode_chunk(plan: BandPlan, read: ChunkRead, out: np.ndarray) -> None:
    buffer = _chunk_buffer(plan)
    _CODEC.decode(read.path.read_bytes(), out=buffer)
    out[read.rows, read.cols] = buffer[: read.valid[0], : read.valid[1]]


def allocate(plans: Sequence[BandPlan]) -> dict[str, np.ndarray]:
    return {p.name: np.empty(p.shape, p.dtype) for p in plans}


def floor_read(
    plans: Sequence[BandPlan],
    pool: ThreadPoolExecutor | None,
    arrays: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Every band decoded into fresh arrays (or into ``arrays``), with ``pool`` or
    in this thread."""
    out = allocate(plans) if arrays is None else arrays
    for plan in plans:
        for rows, cols in plan.absent:
            out[plan.name][rows, cols] = plan.fill_value
    tasks = [(plan, read) for plan in plans for read in plan.reads]
    if pool is None:
        for plan, read in tasks:
            decode_chunk(plan, read, out[plan.name])
    else:
        # list() re-raises the first failure; numcodecs and file reads release the GIL.
        list(pool.map(lambda task: decode_chunk(*task, out[task[0].name]), tasks))
    return out


# -- what open() is made of ------------------------------------------------------------


def check_only(store: SceneStore, scene_id: str, bands: Sequence[str]) -> list[str]:
    """The presence + size check that open(check=True) runs (coordinates and bands)."""
    record = store.commit_record(scene_id)
    assert record is not None
    scene_dir = store.scene_path(scene_id)
    tables = [*record.coords.items(), *((b, record.bands[b]) for b in bands)]
    return [
        p
        for name, entry in tables
        for p in check_manifest(scene_dir / name, entry.files, content=False)
    ]


def zarr_only(store: SceneStore, scene_id: str, bands: Sequence[str]) -> list[np.ndarray]:
    """The band arrays through zarr alone: no xarray, no record, no check."""
    scene_dir = store.scene_path(scene_id)
    return [
        np.asarray(zarr.open_array(LocalStore(scene_dir / b, read_only=True), mode="r")[...])
        for b in bands
    ]


def fast_open(
    store: SceneStore, scene_id: str, bands: Sequence[str], pool: ThreadPoolExecutor
) -> xr.Dataset:
    """Prototype of a faster ``open(load=True)``: the same checks and the same Dataset,
    but the chunks are read and decoded straight from the commit record's file list
    by a small thread pool, instead of through xarray → zarr's async pipeline."""
    skeleton = store.open(scene_id, bands, load=False, check=True)  # metadata + stat check
    arrays = floor_read(scene_plans(store, scene_id, bands), pool)
    return skeleton.copy(data={b: arrays[b] for b in skeleton.data_vars})


# -- the scene -------------------------------------------------------------------------


def s3_client(sandbox: Sandbox) -> S3Client:
    settings = S3Settings(
        endpoint_url=sandbox.endpoints.cdse_s3_endpoint,
        access_key_id=sandbox.credentials.access_key_id,
        secret_access_key=sandbox.credentials.secret_access_key,
    )
    return S3Client(settings, NetworkSettings(max_retries=0))


def staged_scene(store: SceneStore, world: str, scene: str | None) -> tuple[str, list[str]]:
    """A complete scene in ``store``: one already there, or staged from the sandbox."""
    ready = [s for s in store.scenes() if scene in (None, s)]
    if ready:
        record = store.commit_record(ready[0])
        assert record is not None
        print(f"reusing scene {ready[0]} in {store.root}")
        return ready[0], list(record.bands)
    layout = world_layout(world)
    item = pick_item(layout, scene)
    keys = resolve_bands(None, item)
    with Sandbox(layout) as sandbox, s3_client(sandbox) as s3:
        started = time.perf_counter()
        result = stage_scene(CdseSource(s3=s3), item, keys, store)
    if not result.ok:
        raise SystemExit(f"staging failed: {result}")
    print(f"staged {item['id']} into {store.root} in {time.perf_counter() - started:.1f} s")
    return str(item["id"]), keys


def band_bytes(store: SceneStore, scene_id: str, bands: Sequence[str]) -> tuple[int, int, int]:
    """Bytes of the band arrays (chunk files + zarr.json), allocated bytes, chunk files."""
    scene_dir = store.scene_path(scene_id)
    files = [p for b in bands for p in (scene_dir / b).rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    blocks = sum(p.stat().st_blocks * 512 for p in files)
    chunks = sum(1 for p in files if p.name != "zarr.json")
    return size, blocks, chunks


# -- the measurement --------------------------------------------------------------------


@dataclass
class StoreTimings:
    label: str
    store: SceneStore
    timings: dict[str, Timing] = field(default_factory=dict)

    def add(self, name: str, fn: Callable[[], object]) -> None:
        self.timings.setdefault(name, Timing()).add(fn)

    def floor(self) -> Timing:
        # The faster way of the two is the floor: anything slower is not a floor.
        candidates = [self.timings["floor, 1 thread"], self.timings[f"floor, {THREADS} threads"]]
        return min(candidates, key=lambda t: t.median)


def checksum_run(
    run: int,
    stores: tuple[SceneStore, SceneStore],
    scene_id: str,
    bands: Sequence[str],
    checksum: dict[str, Timing],
) -> None:
    """One run of the checksum's cost: each read from the store with CRC-32C chunks and
    from the one without, back to back (the order alternating from run to run), so that
    both see the same load on a shared machine."""
    pair = [("with CRC-32C", stores[0]), ("without", stores[1])]
    for way, read in (
        ("open(load=True)", lambda st: st.open(scene_id, bands, load=True)),
        ("lazy open().load()", lambda st: st.open(scene_id, bands).load()),
    ):
        for label, st in pair if run % 2 == 0 else pair[::-1]:
            checksum.setdefault(f"{way}, {label}", Timing()).add(lambda st=st, read=read: read(st))


def measure_checksum(
    stores: tuple[SceneStore, SceneStore], scene_id: str, bands: Sequence[str], runs: int
) -> dict[str, Timing]:
    """``--checksum-only``: just the checksum's cost, many runs in little time."""
    checked, unchecked = stores
    xr.testing.assert_identical(  # and warms the page cache for both
        checked.open(scene_id, bands, load=True), unchecked.open(scene_id, bands).load()
    )
    checksum: dict[str, Timing] = {}
    for run in range(runs):
        checksum_run(run, stores, scene_id, bands, checksum)
        last = {name: timing.wall[-1] for name, timing in checksum.items()}
        print(f"  run {run + 1}/{runs}: " + ", ".join(f"{k} {v:.3f} s" for k, v in last.items()))
    return checksum


def measure(
    subjects: Sequence[StoreTimings],
    scene_id: str,
    bands: Sequence[str],
    runs: int,
    checksum: dict[str, Timing],
    unchecked: SceneStore,
) -> None:
    plans = {s.label: scene_plans(s.store, scene_id, bands) for s in subjects}
    with ThreadPoolExecutor(THREADS, thread_name_prefix="floor") as pool:
        # Warm the page cache and every code path once, and prove the floor and the
        # prototype return exactly what open() returns.
        for subject in subjects:
            opened = subject.store.open(scene_id, bands, load=True)
            for way in (None, pool):
                floor = floor_read(plans[subject.label], way)
                for b in bands:
                    assert np.array_equal(floor[b], opened[b].values), f"floor differs: {b}"
            xr.testing.assert_identical(fast_open(subject.store, scene_id, bands, pool), opened)
            del opened, floor
        without = unchecked.open(scene_id, bands, load=True)
        xr.testing.assert_identical(without, subjects[0].store.open(scene_id, bands).load())
        del without
        touched = {s.label: allocate(plans[s.label]) for s in subjects}
        for arrays in touched.values():
            for array in arrays.values():
                array.fill(0)  # first touch now, not in the timing
        for run in range(runs):
            for s in subjects:
                store, plan = s.store, plans[s.label]
                s.add("open(load=True)", lambda st=store: st.open(scene_id, bands, load=True))
                s.add("floor, 1 thread", lambda p=plan: floor_read(p, None))
                s.add(f"floor, {THREADS} threads", lambda p=plan: floor_read(p, pool))
                s.add(
                    "  open(load=True, check=False)",
                    lambda st=store: st.open(scene_id, bands, load=True, check=False),
                )
                s.add(
                    "  open(load=False): metadata+check", lambda st=store: st.open(scene_id, bands)
                )
                s.add(
                    "  check alone (stat calls)", lambda st=store: check_only(st, scene_id, bands)
                )
                s.add(
                    "  zarr only (concurrency 10)", lambda st=store: zarr_only(st, scene_id, bands)
                )
                with zarr_concurrency(THREADS):
                    s.add(
                        f"  zarr only (concurrency {THREADS})",
                        lambda st=store: zarr_only(st, scene_id, bands),
                    )
                s.add(
                    f"  floor, {THREADS} threads, touched memory",
                    lambda p=plan, a=touched[s.label]: floor_read(p, pool, a),
                )
                s.add(
                    "  prototype fast open (2 threads)",
                    lambda st=store: fast_open(st, scene_id, bands, pool),
                )
            checksum_run(run, (subjects[0].store, unchecked), scene_id, bands, checksum)
            first = subjects[0]
            print(
                f"  run {run + 1}/{runs}: open {first.timings['open(load=True)'].wall[-1]:.3f} s, "
                f"floor {first.floor().wall[-1]:.3f} s",
                flush=True,
            )


def ratios(a: Timing, b: Timing, digits: int = 2) -> str:
    """a / b three ways. The paired one (a and b of the same run, which ran seconds
    apart) cancels most of the slow and fast phases of a shared machine."""
    paired = [x / y for x, y in zip(a.wall, b.wall, strict=True)]
    return (
        f"{a.median / b.median:.{digits}f} (medians), {a.min / b.min:.{digits}f} (minima), "
        f"{statistics.median(paired):.{digits}f} (median of paired runs)"
    )


def report_checksum(
    checksum: dict[str, Timing], store: SceneStore, scene_id: str, bands: Sequence[str], runs: int
) -> None:
    from darts.store import band_reader, checked_store

    print("\n== the checksum's cost: the store's encoding with and without CRC-32C chunks")
    for name, timing in checksum.items():
        print(f"  {name:40} {timing}")
    for way, reader, read in (
        ("open(load=True)", band_reader, lambda: store.open(scene_id, bands, load=True)),
        ("lazy open().load()", checked_store, lambda: store.open(scene_id, bands).load()),
    ):
        with_crc, without = checksum[f"{way}, with CRC-32C"], checksum[f"{way}, without"]
        cpu = with_crc.cpu_median / without.cpu_median
        print(
            f"  checksum overhead, {way}: {ratios(with_crc, without, 3)}; cpu {cpu:.3f}; "
            f"target <= {CHECKSUM_TARGET}"
        )
        seconds, share = checksum_share([reader], read, runs)
        print(
            f"  CRC-32C checks of one {way}: {seconds * 1000:.1f} ms CPU, {share:.1%} of the "
            f"read's CPU (median of {runs} runs; target <= {CHECKSUM_TARGET - 1:.0%})"
        )


def report(subjects: Sequence[StoreTimings], scene_id: str, bands: Sequence[str]) -> None:
    for s in subjects:
        print(f"\n== {s.label}: wall min / median, median cpu user + system, median minor faults")
        for name, timing in s.timings.items():
            print(f"  {name:40} {timing}")
        opened, floor = s.timings["open(load=True)"], s.floor()
        fast = s.timings["  prototype fast open (2 threads)"]
        touched = s.timings[f"  floor, {THREADS} threads, touched memory"]
        print(f"  open / floor:            {ratios(opened, floor)}; target <= {TARGET_RATIO}")
        print(f"  prototype / floor:       {ratios(fast, floor)}")
        print(f"  open / floor (touched):  {ratios(opened, touched)}")
    ours, ref = subjects
    size, ref_size = band_bytes(ours.store, scene_id, bands), band_bytes(ref.store, scene_id, bands)
    print("\n== bytes on disk per scene (band arrays)")
    for label, (nbytes, blocks, chunks) in ((ours.label, size), (ref.label, ref_size)):
        print(
            f"  {label:40} {nbytes / 1e6:8.1f} MB  "
            f"({blocks / 1e6:.1f} MB allocated, {chunks} chunk files)"
        )
    o, r = ours.timings["open(load=True)"], ref.timings["open(load=True)"]
    print(
        f"  size ours / reference:   {size[0] / ref_size[0]:.3f} "
        f"({size[1] / ref_size[1]:.3f} allocated)"
    )
    print(f"  open ours / reference:   {ratios(o, r)}; cpu {o.cpu_median / r.cpu_median:.2f}")
    print(f"  floor ours / reference:  {ratios(ours.floor(), ref.floor())}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--world", choices=("small", "full"), default="small")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--store", type=Path, default=None, help="reuse (or stage into) this store")
    parser.add_argument("--scene", default=None, help="item id (default: clearest main scene)")
    parser.add_argument("--workdir", type=Path, default=None, help="for the temporary stores")
    parser.add_argument(
        "--checksum-only",
        action="store_true",
        help="measure only the checksum's cost (with and without CRC-32C chunks)",
    )
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-scene-read-", dir=work_folder(args.workdir)))
    try:
        store = SceneStore(args.store if args.store else work / "ours")
        scene_id, bands = staged_scene(store, args.world, args.scene)
        opened = store.open(scene_id, bands, load=True)
        item = store.item(scene_id)
        assert item is not None
        # The same decoded bands, stored again with the store's encoding without the
        # checksum (and with it, if a reused store was staged before it existed), and
        # with the reference's chunking.
        record = store.commit_record(scene_id)
        assert record is not None
        checked = store
        if "checksum" not in record.bands[bands[0]].encoding:
            checked = SceneStore(work / "checked")
            checked.write_bands(scene_id, item, {b: opened[b] for b in bands})
        unchecked = SceneStore(work / "unchecked", UNCHECKED_ENCODING)
        unchecked.write_bands(scene_id, item, {b: opened[b] for b in bands})
        reference = SceneStore(work / "reference", REFERENCE_ENCODING)
        if not args.checksum_only:
            reference.write_bands(scene_id, item, {b: opened[b] for b in bands})
        rows, cols = opened.sizes["y"], opened.sizes["x"]
        decoded = sum(opened[b].nbytes for b in bands)
        del opened
        print(
            f"scene {scene_id}: {rows}×{cols} px, bands {' '.join(bands)}, "
            f"{decoded / 1e6:.0f} MB decoded; {args.runs} runs"
        )
        if args.checksum_only:
            checksum = measure_checksum((checked, unchecked), scene_id, bands, args.runs)
            report_checksum(checksum, checked, scene_id, bands, args.runs)
            return 0
        # From the record: a reused store may have been written with another encoding.
        chunk = "×".join(str(n) for n in record.bands[bands[0]].chunks)
        subjects = [
            StoreTimings(f"store encoding ({chunk} chunks)", checked),
            StoreTimings(f"reference encoding ({REFERENCE_ENCODING.chunk}² chunks)", reference),
        ]
        checksum: dict[str, Timing] = {}
        measure(subjects, scene_id, bands, args.runs, checksum, unchecked)
        report(subjects, scene_id, bands)
        report_checksum(checksum, checked, scene_id, bands, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
