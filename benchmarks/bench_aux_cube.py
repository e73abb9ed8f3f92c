"""Filling and reading the ArcticDEM 10 m datacube, per candidate layout, against floors.

Usage::

    .venv/bin/python benchmarks/bench_aux_cube.py [--world small|full] [--runs N]
        [--fresh-runs N] [--candidates CHUNK[/BLOCK]:CODEC:LEVEL ...] [--keep DIR]
        [--workdir DIR] [--scene ITEM_ID]

For every candidate layout (chunk edge × Blosc codec and level; default: the
``DEFAULT_CANDIDATES`` below, the current ``arcticdem_spec`` default marked ``*``) a
10 m ArcticDEM cube is filled from the sandbox's PGC stand-in (on 127.0.0.1) with
every source tile that one scene footprint of the world needs (``--keep DIR`` keeps
the cubes there and reuses complete ones, skipping the fill measurement). The
reference layout (3600² chunks, Blosc zstd 9 = zstd 22) is ``--candidates
3600:zstd:9``; its fill alone takes ~5 min, so it is not in the default set. Then:

* **fill**: wall and CPU seconds per source tile of ``Datacube.fill`` (2 fetch
  workers, what ``prep-data`` runs), against the floor per tile: the same COGs fetched
  whole over HTTP, decoded with rasterio, and every cube chunk (or block of a shard)
  they touch compressed with the same codec (the pixels as the cube stores them, the
  heights in whole centimetres; all-fill chunks skipped as zarr does), in one thread
  and on a 2-thread pool; the faster is the floor;
* **size**: bytes of the chunks the branch tip references per 10,000 km² of valid
  terrain (chunks entirely valid: what real terrain costs; and all chunks over the
  valid pixels), and the repository's bytes on disk (superseded chunk versions from
  tile-edge rewrites included);
* **reads**: a 10 × 10 km window (1000² px, straddling a chunk corner near the
  footprint's centre: 4 chunks, the worst case) and the scene footprint (110 × 110 km
  on the full world, not chunk-aligned), both variables, through
  ``Datacube.load(bounds, source=..., fetch=False)`` (record check + read):

  - *warm*: repeated in this process; floor: the needed chunk files (located once,
    untimed, by content in the repository's ``chunks/``) read whole (in a sharded
    cube: just the byte ranges of the blocks needed) and Blosc-decoded with numcodecs
    into fresh output arrays (heights divided from centimetres on the way, as the cube
    does), in one thread and on a 2-thread pool (the faster is the floor). Also
    shown: a stricter floor that decodes, like the cube's reader, only the Blosc blocks
    holding the rows needed of each chunk (the issue's floor decodes whole chunks),
    and zarr's own slicing of the same window (what ``Datacube.read`` did before
    ``darts.store.datacube.read``);
  - *fresh*: a new process (imports done, untimed): ``Datacube.open`` + the first
    ``load``; floor: the same chunk files read and decoded in a new process;
  - *dem only*: the warm read the pipeline makes (``AuxCubes.load_dem`` reads the
    heights alone: they are NaN wherever the data mask is 0), against the same floor
    restricted to the ``dem`` chunks;
  - *checksum overhead*: the warm load with the reader's CRC-32C check of each frame
    replaced by dropping its 4 bytes (same cube, same bytes read, interleaved with the
    checked load); the ratio checked / unchecked is what the check costs (issue 15:
    at most 5 %). Wall times of a loaded machine swing more than that, so the CPU
    seconds of the checks themselves are also measured, as a share of the load's CPU
    seconds. The floors read the Blosc frames without their checksums.

  Targets (warm): 10 km ≤ 0.1 s, scene ≤ 0.35 s, each ≤ 1.5× its floor.

Timings are min / median wall seconds over ``--runs`` warm runs and ``--fresh-runs``
fresh ones (interleaved; the page cache is warm: everything is read once, untimed,
first), with the median CPU seconds (user + system) of the process where measured.
On a shared 2-core machine wall times swing with the neighbours' load: compare the
minima and the CPU seconds.

The default invocation on ``--world full`` takes ~10 min on 2 cores (5 layouts: fills
~2 min, reads ~1.5 min each); ``--world small`` is a smoke test of two minutes.
"""

from __future__ import annotations

# Only the standard library, numpy and numcodecs at import: the fresh floor runs in a
# child process of this script and must not pay for importing zarr, xarray, rasterio.
import argparse
import dataclasses
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numcodecs
import numpy as np

if TYPE_CHECKING:
    from darts.grid.cube import Window
    from darts.sources.arcticdem import ArcticDemSource
    from darts.store.datacube import Datacube
    from darts.store.datacube.spec import CubeCompression, CubeSpec

RESOLUTION_M = 10
MAIN_TILE = "T08WNB"  # the main tile of both worlds
THREADS = 2  # the machine has 2 cores
# The read the pipeline makes: heights alone (the cube's heights are NaN where its data
# mask is 0, so ``AuxCubes.load_dem`` leaves the mask out), and its floor.
DEM_ONLY_LOAD = "  warm load, dem only"
DEM_ONLY_FLOOR = f"  floor warm dem only, {THREADS} threads"
# The warm load without the CRC-32C check (its 4 bytes dropped unchecked), and the most
# the check may add (issue 15).
UNCHECKED_LOAD = "  warm load, CRC-32C not checked"
CHECKSUM_TARGET = 1.05
# A stricter floor than the (whole chunks decoded): only the Blosc blocks
# holding the rows needed, as the cube's reader decodes them.
ROWS_FLOOR = f"  floor warm, {THREADS} threads, needed rows only"
TARGETS_S = {"10 km": 0.1, "scene": 0.35}
TARGET_RATIO = 1.5
# Reference numbers (../shared/reference/performance.md, 3600² chunks, zstd 22).
REFERENCE_WARM_S = {"10 km": 0.16, "scene": 0.52}
REFERENCE_COMPRESS_S_PER_10000_KM2 = 32.0
# Chunk edges × codecs measured by default (the full world fills each in 10-40 s).
DEFAULT_CANDIDATES = (
    "1024:lz4:9",
    "2048:lz4:9",
    "2048/512:lz4:9",  # sharded: 2048² chunks of 512² blocks
    "3600:lz4:9",
    "2048:zstd:3",
)
# The 10 km window's corner offset from the chunk corner it straddles (rows, cols).
TEN_KM_PX = 1000
TEN_KM_OFFSET = (413, 587)
PX_PER_10000_KM2 = (100_000 / RESOLUTION_M) ** 2


# -- timing ------------------------------------------------------------------------------


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Timing:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, fn: Callable[[], object]) -> object:
        gc.collect()
        time.sleep(0.05)
        cpu, start = cpu_seconds(), time.perf_counter()
        result = fn()
        self.wall.append(time.perf_counter() - start)
        self.cpu.append(cpu_seconds() - cpu)
        return result

    def record(self, wall: float, cpu: float = float("nan")) -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)

    @property
    def min(self) -> float:
        return min(self.wall)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    def __str__(self) -> str:
        cpu = [c for c in self.cpu if c == c]
        tail = f"   cpu {statistics.median(cpu):6.3f} s" if cpu else ""
        return f"{self.min:7.3f} / {self.median:7.3f} s{tail}"


def ratio(a: Timing, b: Timing) -> str:
    return f"{a.median / b.median:.2f}× (medians), {a.min / b.min:.2f}× (minima)"


def paired_ratio(a: Timing, b: Timing) -> str:
    """a / b as ratio of medians and minima, and as the median of the per-run ratios
    (a and b of one run ran moments apart: that cancels the neighbours' slow phases)."""
    paired = statistics.median(x / y for x, y in zip(a.wall, b.wall, strict=True))
    return f"{ratio(a, b)}, {paired:.3f}× (median of paired runs)"


@contextmanager
def checksum_unchecked() -> Iterator[None]:
    """The cube's reader with its CRC-32C check replaced by dropping the 4 bytes: what
    the same read costs without the check (the benchmark reads one thing at a time)."""
    from darts.store.checksum import CRC_BYTES
    from darts.store.datacube import read as datacube_read

    checked = datacube_read.payload
    datacube_read.payload = lambda chunk: chunk[:-CRC_BYTES]
    try:
        yield
    finally:
        datacube_read.payload = checked


def unchecked_load(cube: Datacube, bounds: Any, source: ArcticDemSource) -> object:
    with checksum_unchecked():
        return cube.load(bounds, source=source, fetch=False)


# -- candidates --------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    chunk: int
    codec: str
    level: int
    shuffle: str  # "default": the shuffle of the current ArcticDEM spec
    block: int | None = None  # inner chunk edge of a sharded layout; None: not sharded

    @classmethod
    def parse(cls, text: str) -> Candidate:
        """``CHUNK[/BLOCK]:CODEC[:LEVEL[:SHUFFLE]]``, e.g. ``2048:lz4:9`` or, sharded
        (2048² chunks compressed in 512² blocks), ``2048/512:lz4:9`` (level 5 when
        omitted; shuffle as in the current ArcticDEM spec unless given: auto, shuffle,
        bitshuffle, noshuffle)."""
        parts = text.split(":")
        edges = parts[0].split("/")
        if (
            not 2 <= len(parts) <= 4
            or not 1 <= len(edges) <= 2
            or not all(e.isdigit() for e in edges)
        ):
            raise argparse.ArgumentTypeError(
                f"candidate {text!r} is not CHUNK[/BLOCK]:CODEC[:LEVEL[:SHUFFLE]]"
            )
        level = int(parts[2]) if len(parts) > 2 else 5
        shuffle = parts[3] if len(parts) > 3 else "default"
        block = int(edges[1]) if len(edges) > 1 else None
        candidate = cls(int(edges[0]), parts[1], level, shuffle, block)
        try:
            candidate.spec()  # validates codec, level, shuffle and block
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"candidate {text!r}: {error}") from None
        return candidate

    @property
    def label(self) -> str:
        shuffle = "" if self.shuffle == "default" else f" {self.shuffle}"
        blocks = f"/{self.block}²" if self.block else ""
        return f"{self.chunk}²{blocks} {self.codec}:{self.level}{shuffle}"

    @property
    def text(self) -> str:
        edges = f"{self.chunk}/{self.block}" if self.block else str(self.chunk)
        return f"{edges}:{self.codec}:{self.level}:{self.shuffle}"

    @property
    def dirname(self) -> str:
        c = self.compression()
        shuffle = "" if c.shuffle == "auto" else f"-{c.shuffle}"
        blocks = f"-b{self.block}" if self.block else ""
        return f"arcticdem-10m-c{self.chunk}{blocks}-{self.codec}{self.level}{shuffle}"

    @property
    def frame(self) -> int:
        """Edge of one compressed frame: the block if sharded, else the chunk."""
        return self.block or self.chunk

    def compression(self) -> CubeCompression:
        from darts.sources.arcticdem import arcticdem_spec
        from darts.store.datacube.spec import CubeCompression

        if self.codec not in ("zstd", "lz4", "lz4hc", "blosclz", "zlib"):
            raise argparse.ArgumentTypeError(f"unknown Blosc codec {self.codec!r}")
        if self.shuffle not in ("default", "auto", "shuffle", "bitshuffle", "noshuffle"):
            raise argparse.ArgumentTypeError(f"unknown Blosc shuffle {self.shuffle!r}")
        default = arcticdem_spec(RESOLUTION_M).compression.shuffle
        shuffle = default if self.shuffle == "default" else self.shuffle
        return CubeCompression(self.codec, self.level, shuffle, self.block)  # type: ignore[arg-type]

    def spec(self) -> CubeSpec:
        from darts.sources.arcticdem import arcticdem_spec

        base = arcticdem_spec(RESOLUTION_M, self.chunk)
        return dataclasses.replace(base, compression=self.compression())

    def is_default(self) -> bool:
        from darts.sources.arcticdem import arcticdem_spec

        spec = arcticdem_spec(RESOLUTION_M)
        return (self.chunk, self.compression()) == (spec.chunk, spec.compression)


def offline_source(spec: CubeSpec) -> ArcticDemSource:
    """Tiling only (``tiles_for``/``tile_window``): any network use would fail."""
    from darts.net import HttpClient, NetworkSettings
    from darts.sources.arcticdem import ArcticDemSource
    from darts.sources.arcticdem_index import ArcticDemIndex

    http = HttpClient(NetworkSettings(offline=True))
    index = ArcticDemIndex("http://127.0.0.1:9/index.zip", Path("/nonexistent/index"), http)
    return ArcticDemSource(
        RESOLUTION_M, index=index, http=http, pgc_stac_url="http://127.0.0.1:9/", spec=spec
    )


def blosc_for(compression: CubeCompression, dtype: np.dtype[Any]) -> numcodecs.Blosc:
    """numcodecs' Blosc with the settings zarr's BloscCodec gets from the cube."""
    from darts.store.datacube.schema import blosc_codec

    codec = blosc_codec(compression, dtype)
    # zarr < 3.2 holds these settings as enums, later versions as plain strings.
    shuffle_name = str(getattr(codec.shuffle, "value", codec.shuffle))
    shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[shuffle_name]
    return numcodecs.Blosc(
        str(getattr(codec.cname, "value", codec.cname)), int(codec.clevel), shuffle, 0
    )


# -- the world and its scene --------------------------------------------------------------


def world_layout(name: str) -> Any:
    from darts.sandbox.testing import sandbox_cache_root
    from darts.sandbox.world import build_world

    root = sandbox_cache_root()
    print(f"world {name!r} under {root} (built on first use: minutes)", flush=True)
    return build_world(root, name, seed=0, progress=lambda m: print("  build:", m, flush=True))


def footprint_window(layout: Any, scene: str | None, spec: CubeSpec) -> tuple[str, Window]:
    from darts.pipelines.aux_regions import region_bounds
    from darts.sources.cdse import scene_footprint

    folder = layout.cdse_items / "sentinel-2-l2a"
    if scene:
        item = json.loads((folder / f"{scene}.json").read_text())
    else:
        items = [json.loads(p.read_text()) for p in sorted(folder.glob(f"*_{MAIN_TILE}_*.json"))]
        item = min(items, key=lambda i: i["properties"]["eo:cloud_cover"])
    bounds = region_bounds(scene_footprint(item), spec.grid.crs, 0.0)
    return str(item["id"]), spec.grid.window(bounds)


def windows_for(footprint: Window, chunk: int) -> dict[str, Window]:
    """The 10 km window straddles the chunk corner nearest the footprint's centre; the
    scene window is the footprint's (moved by 7 px where it happens to be aligned)."""
    from darts.grid.cube import Window

    centre_row = (footprint.row0 + footprint.row1) // 2
    centre_col = (footprint.col0 + footprint.col1) // 2
    corner_row = round(centre_row / chunk) * chunk
    corner_col = round(centre_col / chunk) * chunk
    r0, c0 = corner_row - TEN_KM_OFFSET[0], corner_col - TEN_KM_OFFSET[1]
    ten = Window(r0, r0 + TEN_KM_PX, c0, c0 + TEN_KM_PX)
    scene = footprint
    if scene.row0 % chunk == 0 or scene.col0 % chunk == 0:
        scene = Window(scene.row0 + 7, scene.row1 + 7, scene.col0 + 7, scene.col1 + 7)
    return {"10 km": ten, "scene": scene}


# -- the floor of a read: chunk files read and decoded directly --------------------------


@dataclass(frozen=True)
class Piece:
    """One compressed frame to read and decode: a whole chunk, or one inner chunk
    (block) of a shard, at ``offset``/``length`` in its chunk file."""

    variable: str
    path: str  # the chunk file; "" when Icechunk keeps it inline (then ``inline``)
    inline: bytes | None
    offset: int
    length: int
    frame_sel: tuple[int, int, int, int]  # within the decoded frame
    out_sel: tuple[int, int, int, int]  # within the output


@dataclass(frozen=True)
class ReadPlan:
    shape: tuple[int, int]
    frame: int  # edge of one decoded frame (chunk, or block of a shard)
    # name -> (dtype, fill value, divisor of the stored values or None)
    variables: dict[str, tuple[str, float | int, int | None]]
    pieces: tuple[Piece, ...]
    absent: tuple[tuple[str, tuple[int, int, int, int]], ...]  # never-written parts

    def to_json(self) -> str:
        return json.dumps(
            {
                "shape": self.shape,
                "frame": self.frame,
                "variables": {k: [d, _json_fill(f), q] for k, (d, f, q) in self.variables.items()},
                "pieces": [
                    [
                        p.variable,
                        p.path,
                        p.inline.hex() if p.inline else None,
                        p.offset,
                        p.length,
                        p.frame_sel,
                        p.out_sel,
                    ]
                    for p in self.pieces
                ],
                "absent": [[v, s] for v, s in self.absent],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ReadPlan:
        raw = json.loads(text)
        return cls(
            tuple(raw["shape"]),
            raw["frame"],
            {
                k: (d, float(f) if isinstance(f, str) else f, q)
                for k, (d, f, q) in raw["variables"].items()
            },
            tuple(
                Piece(v, p, bytes.fromhex(i) if i else None, o, n, tuple(c), tuple(s))
                for v, p, i, o, n, c, s in raw["pieces"]
            ),
            tuple((v, tuple(s)) for v, s in raw["absent"]),
        )


def _json_fill(value: float | int) -> float | int | str:
    return "nan" if isinstance(value, float) and np.isnan(value) else value


class ChunkFiles:
    """Chunk bytes -> the file in the repository's ``chunks/`` holding them."""

    def __init__(self, repo_dir: Path) -> None:
        self.by_size: dict[int, list[Path]] = {}
        for path in (repo_dir / "chunks").iterdir():
            self.by_size.setdefault(path.stat().st_size, []).append(path)

    def find(self, data: bytes) -> Path | None:
        for path in self.by_size.get(len(data), []):
            if path.read_bytes() == data:
                return path
        return None


def _shard_index(data: bytes, blocks: int) -> np.ndarray:
    """(offset, length) per block of a shard: zarr's index at the shard's end, (blocks²
    entries of two little-endian uint64, then a 4-byte CRC-32C)."""
    size = blocks * blocks * 16
    index = np.frombuffer(data[len(data) - size - 4 : len(data) - 4], "<u8")
    return index.reshape(blocks, blocks, 2)


def read_plan(cube: Datacube, window: Window, files: ChunkFiles) -> ReadPlan:
    """Every compressed frame ``window`` needs: the whole chunk, or, in a sharded cube,
    just the blocks of each shard that the window touches."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    from darts.store.datacube.cube import BRANCH

    store = cube._repo.readonly_session(branch=BRANCH).store
    prototype = default_buffer_prototype()
    checked = _checksummed(store, cube)
    chunk = cube.spec.chunk
    frame = cube.spec.compression.block or chunk
    blocks = chunk // frame
    pieces: list[Piece] = []
    absent: list[tuple[str, tuple[int, int, int, int]]] = []
    for variable in cube.spec.variables:
        for i, j, whole in window.cells(chunk, chunk):
            key = f"{cube.group + '/' if cube.group else ''}{variable.name}/c/{i}/{j}"
            buffer = sync(store.get(key, prototype))
            data = buffer.to_bytes() if buffer is not None else None
            path = files.find(data) if data is not None else None
            inline = None if path is not None else data
            index = _shard_index(data, blocks) if data is not None and blocks > 1 else None
            part = whole.intersection(window)
            for bi, bj, block in part.cells(frame, frame):
                needed = block.intersection(part)
                o = needed.relative_to(window)
                out = (o.row0, o.row1, o.col0, o.col1)
                if data is None:
                    absent.append((variable.name, out))
                    continue
                offset, length = 0, len(data)
                if index is not None:
                    entry = index[bi - i * blocks, bj - j * blocks]
                    offset, length = int(entry[0]), int(entry[1])
                    if offset == 2**64 - 1:  # a block never written
                        absent.append((variable.name, out))
                        continue
                f = needed.relative_to(block)
                sel = (f.row0, f.row1, f.col0, f.col1)
                if variable.name in checked:  # the floor reads the Blosc frame alone
                    length -= 4
                pieces.append(
                    Piece(variable.name, str(path or ""), inline, offset, length, sel, out)
                )
    variables = {v.name: (v.dtype, v.fill_value, v.scale) for v in cube.spec.variables}
    return ReadPlan(window.shape, frame, variables, tuple(pieces), tuple(absent))


def _checksummed(store: Any, cube: Datacube) -> set[str]:
    """The variables whose frames (whole chunks, or blocks of shards) end with a
    CRC-32C."""
    import zarr
    from zarr.codecs import Crc32cCodec, ShardingCodec

    group = zarr.open_group(store, path=cube.group, mode="r")
    found = set()
    for variable in cube.spec.variables:
        array = group[variable.name]
        assert isinstance(array, zarr.Array)
        codecs = array.metadata.codecs
        if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
            codecs = codecs[0].codecs
        if isinstance(codecs[-1], Crc32cCodec):
            found.add(variable.name)
    return found


_DECODER = numcodecs.Blosc()  # the Blosc frame header says everything decoding needs
_scratch = threading.local()


def _frame_buffer(edge: int, dtype: str) -> np.ndarray:
    """One reusable frame buffer per thread, frame size and dtype: decoding into it
    touches no fresh memory (page faults) per frame."""
    buffers: dict[tuple[int, str], np.ndarray] = getattr(_scratch, "buffers", {})
    _scratch.buffers = buffers
    if (edge, dtype) not in buffers:
        buffers[edge, dtype] = np.empty((edge, edge), dtype)
    return buffers[edge, dtype]


def _frame_bytes(piece: Piece) -> bytes:
    if piece.inline is not None:
        return piece.inline[piece.offset : piece.offset + piece.length]
    with open(piece.path, "rb", buffering=0) as file:
        return os.pread(file.fileno(), piece.length, piece.offset)


def floor_read(
    plan: ReadPlan, pool: ThreadPoolExecutor | None, rows_only: bool = False
) -> dict[str, np.ndarray]:
    """The floor's read. ``rows_only``: decode only the Blosc blocks holding the rows
    needed of each frame (as the cube's reader does), not whole frames."""
    from darts.store.blosc_rows import decode_rows  # numpy, numcodecs, ctypes only

    out = {name: np.empty(plan.shape, v[0]) for name, v in plan.variables.items()}
    for name, (r0, r1, c0, c1) in plan.absent:
        out[name][r0:r1, c0:c1] = plan.variables[name][1]

    def decode(piece: Piece) -> None:
        dtype, _, divisor = plan.variables[piece.variable]
        buffer = _frame_buffer(plan.frame, dtype)
        frame = _frame_bytes(piece)
        a0, a1, b0, b1 = piece.frame_sel
        r0, r1, c0, c1 = piece.out_sel
        if rows_only and a1 - a0 < plan.frame:
            decode_rows(np.frombuffer(frame, np.uint8), (a0, a1), buffer)
            decoded = buffer[: a1 - a0, b0:b1]
        else:
            _DECODER.decode(frame, out=buffer)
            decoded = buffer[a0:a1, b0:b1]
        if divisor is None:
            out[piece.variable][r0:r1, c0:c1] = decoded
        else:  # stored whole (cm): divided on the way, as the cube's reader does
            divided = out[piece.variable][r0:r1, c0:c1]
            np.divide(decoded, np.dtype(dtype).type(divisor), out=divided)

    if pool is None:
        for piece in plan.pieces:
            decode(piece)
    else:
        list(pool.map(decode, plan.pieces))
    return out


# -- fresh processes ---------------------------------------------------------------------


def child(job: dict[str, Any]) -> int:
    """Runs in a fresh process; prints one JSON line of timings."""
    if job["mode"] == "floor":
        plan = ReadPlan.from_json(Path(job["plan"]).read_text())
        start = time.perf_counter()
        if job["threads"] > 1:
            with ThreadPoolExecutor(job["threads"]) as pool:
                floor_read(plan, pool)
        else:
            floor_read(plan, None)
        print(json.dumps({"read": time.perf_counter() - start}))
        return 0
    from darts.grid.cube import Window
    from darts.store.datacube import Datacube

    candidate = Candidate.parse(job["candidate"])
    spec = candidate.spec()
    source = offline_source(spec)
    bounds = spec.grid.bounds_of(Window(*job["window"]))
    start = time.perf_counter()
    cube = Datacube.open(job["cube"], spec, create=False)
    opened = time.perf_counter()
    data = cube.load(bounds, source=source, fetch=False)
    done = time.perf_counter()
    r0, r1, c0, c1 = job["window"]
    assert data["dem"].shape == (r1 - r0, c1 - c0)
    print(json.dumps({"open": opened - start, "read": done - opened}))
    return 0


def run_child(job: dict[str, Any]) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(job)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "ICECHUNK_LOG": os.environ.get("ICECHUNK_LOG", "error")},
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


# -- filling -----------------------------------------------------------------------------


@dataclass
class TilePixels:
    """One source tile fetched and decoded plainly (the floor's input)."""

    tile: str
    window: Window
    fetch_s: float
    decode_s: float
    dem: np.ndarray  # as the cube stores it (whole cm), NaN where not valid
    mask: np.ndarray


def fetch_decode(source: ArcticDemSource, tile: str) -> TilePixels:
    """Fetch the tile's two COGs whole and decode them; timings exclude the rounding."""
    from urllib.parse import urljoin

    from rasterio.io import MemoryFile

    from darts.grid import arcticdem as pgc_grid
    from darts.sources.arcticdem import DEM_NODATA

    window = source.tile_window(tile)
    item_id = pgc_grid.item_id(tile, RESOLUTION_M)
    item_url = f"{source.pgc_stac_url}collections/{source.collection}/items/{item_id}"
    start = time.perf_counter()
    item = source.http.get_json(item_url, purpose="bench: STAC item")
    blobs = {
        name: source.http.get_bytes(
            urljoin(item_url, item["assets"][name]["href"]), purpose=f"bench: {name} COG"
        )
        for name in ("dem", "datamask")
    }
    fetched = time.perf_counter()
    arrays = {}
    nodata = DEM_NODATA
    for name, blob in blobs.items():
        with MemoryFile(blob) as memory, memory.open() as dataset:
            arrays[name] = dataset.read(1)
            extent = source._cube_extent(name, dataset)
            if name == "dem" and dataset.nodata is not None:
                nodata = float(dataset.nodata)
    decoded = time.perf_counter()
    # Untimed: what the source adds (validity, cm rounding), to compress the same pixels.
    dem, mask = arrays["dem"], arrays["datamask"]
    valid = (mask == 1) & np.isfinite(dem) & (dem != nodata)
    heights = np.round(dem.astype(np.float64), 2)
    heights[~valid] = np.nan
    full_dem = np.full(window.shape, np.nan, np.float32)
    full_mask = np.zeros(window.shape, np.uint8)
    part = extent.intersection(window)
    src = part.relative_to(extent).slices
    dst = part.relative_to(window).slices
    full_dem[dst] = heights[src].astype(np.float32)
    full_dem = source.spec.variable("dem").encode(full_dem)  # as the cube stores it (cm)
    full_mask[dst] = valid[src]
    return TilePixels(tile, window, fetched - start, decoded - fetched, full_dem, full_mask)


def compress_tile(pixels: TilePixels, candidate: Candidate) -> float:
    """Seconds to compress every frame (chunk, or block of a shard) the tile touches
    (its pixels only, fill value elsewhere; all-fill frames skipped, as zarr skips
    writing them)."""
    chunk = candidate.frame
    w = pixels.window
    compression = candidate.compression()
    codecs = {
        "dem": blosc_for(compression, np.dtype("float32")),
        "datamask": blosc_for(compression, np.dtype("uint8")),
    }
    blocks = {
        "dem": np.empty((chunk, chunk), np.float32),
        "datamask": np.empty((chunk, chunk), np.uint8),
    }
    fills = {"dem": np.nan, "datamask": 0}
    seconds = 0.0
    for _, _, whole in w.cells(chunk, chunk):
        part = whole.intersection(w)
        src = part.relative_to(w).slices
        dst = part.relative_to(whole).slices
        if not pixels.mask[src].any():
            continue  # dem all NaN and mask all 0: zarr writes nothing
        for name, array in (("dem", pixels.dem), ("datamask", pixels.mask)):
            block = blocks[name]
            block.fill(fills[name])
            block[dst] = array[src]
            start = time.perf_counter()
            codecs[name].encode(block)
            seconds += time.perf_counter() - start
    return seconds


@dataclass
class FillResult:
    tiles: list[str]
    wall: float
    cpu: float
    per_tile: dict[str, float]


@dataclass
class FillFloor:
    fetch_decode_1: float  # all tiles, one after another
    fetch_decode_2: float  # all tiles on a 2-thread pool
    compress_1: float
    compress_2: float
    compressed_px: int = 0  # pixels of the chunks compressed (valid or not)

    @property
    def serial(self) -> float:
        return self.fetch_decode_1 + self.compress_1

    @property
    def pooled(self) -> float:
        return self.fetch_decode_2 + self.compress_2

    @property
    def best(self) -> float:
        return min(self.serial, self.pooled)


def fill_cube(cube: Datacube, source: ArcticDemSource, tiles: list[str]) -> FillResult:
    last = [time.perf_counter()]
    per_tile: dict[str, float] = {}

    def on_tile(tile: str, _record: object) -> None:
        now = time.perf_counter()
        per_tile[tile] = now - last[0]
        last[0] = now

    cpu, start = cpu_seconds(), time.perf_counter()
    last[0] = start
    cube.fill(tiles, source, on_tile=on_tile)
    return FillResult(tiles, time.perf_counter() - start, cpu_seconds() - cpu, per_tile)


def fill_floors(
    source: ArcticDemSource, tiles: list[str], candidates: Sequence[Candidate]
) -> dict[Candidate, FillFloor]:
    """Per candidate: the floor of filling ``tiles`` (fetch + decode measured once and
    shared: they do not depend on the layout; compression per candidate)."""
    fetched: dict[str, TilePixels] = {}
    serial_fd = 0.0
    for tile in tiles:
        # The faster of two tries: a neighbour's burst of load must not lower the bar.
        tries = [fetch_decode(source, tile) for _ in range(2)]
        pixels = min(tries, key=lambda p: p.fetch_s + p.decode_s)
        fetched[tile] = pixels
        serial_fd += pixels.fetch_s + pixels.decode_s
        print(
            f"  floor {tile}: fetch {pixels.fetch_s:.2f} s, decode {pixels.decode_s:.2f} s "
            f"(tries: {', '.join(f'{p.fetch_s + p.decode_s:.2f}' for p in tries)} s)",
            flush=True,
        )
        del tries
    # Two tiles at a time (what fill's 2 fetch workers get): fetch + decode on a pool.
    pooled_fd = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        with ThreadPoolExecutor(THREADS) as pool:
            pooled = list(pool.map(lambda t: fetch_decode(source, t), tiles))
        pooled_fd = min(pooled_fd, time.perf_counter() - start)
        del pooled
    out: dict[Candidate, FillFloor] = {}
    for candidate in candidates:
        serial_c = sum(compress_tile(fetched[t], candidate) for t in tiles)
        start = time.perf_counter()
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda t, c=candidate: compress_tile(fetched[t], c), tiles))
        pooled_c = time.perf_counter() - start
        out[candidate] = FillFloor(serial_fd, pooled_fd, serial_c, pooled_c)
        print(
            f"  floor {candidate.label}: compression {serial_c:.2f} s (1 thread), "
            f"{pooled_c:.2f} s ({THREADS} threads)",
            flush=True,
        )
    return out


def run_fills(
    layout: Any, todo: list[Candidate], cubes_dir: Path, tiles: list[str], work: Path
) -> tuple[dict[Candidate, FillResult], dict[Candidate, FillFloor]]:
    from darts.net import HttpClient, NetworkSettings
    from darts.sandbox.service import Sandbox
    from darts.sources.arcticdem import ArcticDemSource
    from darts.sources.arcticdem_index import ArcticDemIndex
    from darts.store.datacube import Datacube

    fills: dict[Candidate, FillResult] = {}
    with Sandbox(layout) as sandbox:
        http = HttpClient(NetworkSettings(max_retries=2, backoff_base_s=0.05))
        index = ArcticDemIndex(sandbox.endpoints.arcticdem_index_url, work / "index", http)
        index.tiles(RESOLUTION_M)

        def source_for(spec: CubeSpec) -> ArcticDemSource:
            return ArcticDemSource(
                RESOLUTION_M,
                index=index,
                http=http,
                pgc_stac_url=sandbox.endpoints.pgc_stac_url,
                spec=spec,
            )

        print("fill floor (fetch + decode once, compression per candidate):", flush=True)
        present = [t for t in tiles if t in index.tiles(RESOLUTION_M)]
        floors = fill_floors(source_for(todo[0].spec()), present, todo)
        for candidate in todo:
            location = cubes_dir / candidate.dirname
            shutil.rmtree(location, ignore_errors=True)
            shutil.rmtree(location.with_name(f".{location.name}.scratch"), ignore_errors=True)
            spec = candidate.spec()
            cube = Datacube.open(location, spec)
            print(f"filling {candidate.label} into {location}", flush=True)
            fills[candidate] = fill_cube(cube, source_for(spec), tiles)
            print(f"  {fills[candidate].wall:.1f} s", flush=True)
    return fills, floors


# -- sizes -------------------------------------------------------------------------------


@dataclass
class Sizes:
    live: int  # bytes of chunks the tip references
    repo: int  # everything under the repository directory
    valid_px: int
    full_bytes: int  # bytes of chunks (both variables) whose pixels are all valid
    full_px: int

    def per_10000_km2(self) -> tuple[float, float]:
        """MB per 10,000 km² of real terrain (entirely valid chunks) and of valid pixels."""
        full = self.full_bytes / self.full_px * PX_PER_10000_KM2 if self.full_px else 0.0
        valid = self.live / self.valid_px * PX_PER_10000_KM2 if self.valid_px else 0.0
        return full / 1e6, valid / 1e6


def cube_sizes(cube: Datacube, tiles: list[str], source: ArcticDemSource) -> Sizes:
    import zarr
    from zarr.core.sync import sync

    from darts.store.datacube.cube import BRANCH

    store = cube._repo.readonly_session(branch=BRANCH).store
    group = zarr.open_group(store, path=cube.group, mode="r")
    mask = group["datamask"]
    assert isinstance(mask, zarr.Array)
    chunk = cube.spec.chunk
    area = [source.tile_window(t) for t in tiles]
    rows = range(min(w.row0 for w in area) // chunk, (max(w.row1 for w in area) - 1) // chunk + 1)
    cols = range(min(w.col0 for w in area) // chunk, (max(w.col1 for w in area) - 1) // chunk + 1)
    live = valid_px = full_bytes = full_px = 0
    prefix = f"{cube.group}/" if cube.group else ""
    for i in rows:
        for j in cols:
            sizes = {}
            for name in ("dem", "datamask"):
                key = f"{prefix}{name}/c/{i}/{j}"
                sizes[name] = sync(store.getsize(key)) if sync(store.exists(key)) else 0
            live += sum(sizes.values())
            if not sizes["datamask"]:
                continue
            block = mask[i * chunk : (i + 1) * chunk, j * chunk : (j + 1) * chunk]
            count = int(np.count_nonzero(block))
            valid_px += count
            if count == chunk * chunk:
                full_bytes += sum(sizes.values())
                full_px += count
    repo = sum(p.stat().st_size for p in Path(cube.location).rglob("*") if p.is_file())
    return Sizes(live, repo, valid_px, full_bytes, full_px)


# -- reads -------------------------------------------------------------------------------


@dataclass
class ReadTimings:
    window: Window
    plan: ReadPlan
    timings: dict[str, Timing] = field(default_factory=dict)
    # The warm load's CRC-32C checks: CPU seconds and share of the load's CPU (medians).
    checksum_cpu: tuple[float, float] = (float("nan"), float("nan"))

    def t(self, name: str) -> Timing:
        return self.timings.setdefault(name, Timing())

    @property
    def dem_plan(self) -> ReadPlan:
        """The plan restricted to ``dem``: what the pipeline reads (``AuxCubes.load_dem``)."""
        return ReadPlan(
            self.plan.shape,
            self.plan.frame,
            {k: v for k, v in self.plan.variables.items() if k == "dem"},
            tuple(p for p in self.plan.pieces if p.variable == "dem"),
            tuple(a for a in self.plan.absent if a[0] == "dem"),
        )

    def floor(self, kind: str) -> Timing:
        ways = [self.t(f"floor {kind}, 1 thread"), self.t(f"floor {kind}, {THREADS} threads")]
        return min(ways, key=lambda t: t.median)


def zarr_only(cube: Datacube, window: Window) -> list[np.ndarray]:
    """zarr's own slicing (no records, no xarray): what ``read`` did before."""
    import zarr

    from darts.store.datacube.cube import BRANCH

    session = cube._repo.readonly_session(branch=BRANCH)
    group = zarr.open_group(session.store, path=cube.group, mode="r")
    out = []
    for v in cube.spec.variables:
        values = np.asarray(group[v.name][window.slices])  # type: ignore[index]
        if v.scale is not None:  # stored whole (cm)
            np.divide(values, values.dtype.type(v.scale), out=values)
        out.append(values)
    return out


def measure_reads(
    candidate: Candidate,
    location: Path,
    windows: dict[str, Window],
    runs: int,
    fresh_runs: int,
    workdir: Path,
) -> dict[str, ReadTimings]:
    from darts.store.datacube import Datacube

    spec = candidate.spec()
    source = offline_source(spec)
    cube = Datacube.open(location, spec, create=False)
    files = ChunkFiles(location)
    subjects: dict[str, ReadTimings] = {}
    plan_files: dict[str, str] = {}
    for name, window in windows.items():
        plan = read_plan(cube, window, files)
        subjects[name] = ReadTimings(window, plan)
        plan_files[name] = str(workdir / f"plan-{candidate.dirname}-{name.replace(' ', '')}.json")
        Path(plan_files[name]).write_text(plan.to_json())
    with ThreadPoolExecutor(THREADS) as pool:
        # Warm every path (and the page cache), and check the floor reads what load reads.
        for name, subject in subjects.items():
            bounds = spec.grid.bounds_of(subject.window)
            assert spec.grid.window(bounds) == subject.window
            loaded = cube.load(bounds, source=source, fetch=False)
            for way, rows_only in ((None, False), (pool, False), (pool, True)):
                floor = floor_read(subject.plan, way, rows_only)
                for v in spec.variables:
                    assert np.array_equal(floor[v.name], loaded[v.name].values, equal_nan=True), (
                        f"floor differs from load: {name} {v.name}"
                    )
            plain = zarr_only(cube, subject.window)
            for v, values in zip(spec.variables, plain, strict=True):
                assert np.array_equal(values, loaded[v.name].values, equal_nan=True), (
                    f"zarr differs from load: {name} {v.name}"
                )
            del loaded, floor, plain
        for run in range(max(runs, fresh_runs)):
            # All warm reads of the run first, in an order that rotates from run to run
            # (what ran just before changes a read's cost: freed memory, caches), then
            # the fresh processes.
            warm: list[tuple[Timing, Callable[[], object]]] = []
            for subject in subjects.values():
                w, plan = subject.window, subject.plan
                bounds = spec.grid.bounds_of(w)
                warm += [
                    (subject.t("warm load"),
                     lambda b=bounds: cube.load(b, source=source, fetch=False)),
                    (subject.t("floor warm, 1 thread"), lambda p=plan: floor_read(p, None)),
                    (subject.t(f"floor warm, {THREADS} threads"),
                     lambda p=plan: floor_read(p, pool)),
                    (subject.t(ROWS_FLOOR), lambda p=plan: floor_read(p, pool, True)),
                    (subject.t("  warm zarr slicing"), lambda w=w: zarr_only(cube, w)),
                    (subject.t(DEM_ONLY_LOAD),
                     lambda b=bounds: cube.load(b, source=source, fetch=False, variables=["dem"])),
                    (subject.t(DEM_ONLY_FLOOR),
                     lambda p=subject.dem_plan: floor_read(p, pool)),
                    (subject.t(UNCHECKED_LOAD),
                     lambda b=bounds: unchecked_load(cube, b, source)),
                ]  # fmt: skip
            if run < runs:
                shift = run % len(warm)
                for timing, fn in warm[shift:] + warm[:shift]:
                    timing.add(fn)
            for name, subject in subjects.items():
                if run >= fresh_runs:
                    break
                w = subject.window
                job = {
                    "mode": "load",
                    "cube": str(location),
                    "candidate": candidate.text,
                    "window": [w.row0, w.row1, w.col0, w.col1],
                }
                fresh = run_child(job)
                subject.t("fresh open + load").record(fresh["open"] + fresh["read"])
                subject.t("  fresh load alone").record(fresh["read"])
                for threads in (1, THREADS):
                    job = {"mode": "floor", "plan": plan_files[name], "threads": threads}
                    label = "1 thread" if threads == 1 else f"{THREADS} threads"
                    subject.t(f"floor fresh, {label}").record(run_child(job)["read"])
            print(
                f"  run {run + 1}: "
                + ", ".join(
                    f"{n} warm {s.t('warm load').wall[-1]:.3f} s "
                    f"fresh {s.t('fresh open + load').wall[-1]:.3f} s"
                    for n, s in subjects.items()
                ),
                flush=True,
            )
    from bench_common import checksum_share

    from darts.store.datacube import read as datacube_read

    for subject in subjects.values():
        bounds = spec.grid.bounds_of(subject.window)
        subject.checksum_cpu = checksum_share(
            [datacube_read], lambda b=bounds: cube.load(b, source=source, fetch=False), runs
        )
    return subjects


# -- report ------------------------------------------------------------------------------


@dataclass
class Outcome:
    candidate: Candidate
    sizes: Sizes
    reads: dict[str, ReadTimings]
    fill: FillResult | None = None
    floor: FillFloor | None = None


def report_candidate(outcome: Outcome) -> None:
    c = outcome.candidate
    lines = [f"\n== {c.label}{' (current default)' if c.is_default() else ''}"]
    if outcome.fill is not None and outcome.floor is not None:
        fill, floor = outcome.fill, outcome.floor
        n = len(fill.tiles)
        lines.append(
            f"  fill: {fill.wall:.1f} s wall ({fill.wall / n:.2f} s per tile), cpu "
            f"{fill.cpu:.1f} s, for {n} tiles; per tile as written: "
            + ", ".join(f"{t} {s:.1f}" for t, s in fill.per_tile.items())
        )
        lines.append(
            f"  fill floor per tile: {floor.serial / n:.2f} s in 1 thread (fetch + decode "
            f"{floor.fetch_decode_1 / n:.2f}, compress {floor.compress_1 / n:.2f}), "
            f"{floor.pooled / n:.2f} s on {THREADS} threads; fill / floor "
            f"{fill.wall / floor.best:.2f}×"
        )
    full, valid = outcome.sizes.per_10000_km2()
    s = outcome.sizes
    lines.append(
        f"  size: {full:.1f} MB per 10,000 km² of real terrain (entirely valid chunks, "
        f"{s.full_px / 1e6:.0f} Mpx); {valid:.1f} MB per 10,000 km² of valid pixels (all "
        f"chunks); tip chunks {s.live / 1e6:.1f} MB, repository on disk {s.repo / 1e6:.1f} MB"
    )
    print("\n".join(lines), flush=True)
    for name, r in outcome.reads.items():
        frames = len({p.out_sel for p in r.plan.pieces if p.variable == "dem"})
        print(
            f"  -- {name} read: window {r.window.shape[0]}×{r.window.shape[1]} px at "
            f"({r.window.row0}, {r.window.col0}), {frames} dem frames of {r.plan.frame}² "
            "decoded (wall min / median, median cpu)"
        )
        for what, timing in r.timings.items():
            print(f"    {what:30} {timing}")
        warm, warm_floor = r.t("warm load"), r.floor("warm")
        fresh, fresh_floor = r.t("fresh open + load"), r.floor("fresh")
        print(f"    warm / floor:   {ratio(warm, warm_floor)}; target <= {TARGET_RATIO}")
        print(f"    warm / floor decoding needed rows only: {ratio(warm, r.t(ROWS_FLOOR))}")
        print(f"    fresh / floor:  {ratio(fresh, fresh_floor)}")
        dem_load, dem_floor = r.t(DEM_ONLY_LOAD), r.t(DEM_ONLY_FLOOR)
        print(
            f"    dem only (the pipeline's read): warm {dem_load.min:.3f} s min, "
            f"{dem_load.median:.3f} s median; / floor: {ratio(dem_load, dem_floor)}"
        )
        print(
            f"    checksum overhead (warm load / warm load without the CRC-32C check): "
            f"{paired_ratio(warm, r.t(UNCHECKED_LOAD))}; target <= {CHECKSUM_TARGET}"
        )
        seconds, share = r.checksum_cpu
        print(
            f"    CRC-32C checks of one warm load: {seconds * 1000:.1f} ms CPU, {share:.1%} of "
            f"the load's CPU (median; target <= {CHECKSUM_TARGET - 1:.0%})"
        )
        print(
            f"    warm vs target: {warm.min:.3f} s min, {warm.median:.3f} s median; target "
            f"<= {TARGETS_S[name]} s (reference {REFERENCE_WARM_S[name]} s)"
        )


def summary_table(outcomes: list[Outcome]) -> None:
    print(
        "\n== summary: wall s min/median (floor min/median, ratio of medians); targets warm "
        f"10 km <= {TARGETS_S['10 km']} s, scene <= {TARGETS_S['scene']} s, "
        f"<= {TARGET_RATIO}× floor"
    )
    header = (
        "| layout | fill s/tile (floor, ×) | compress s per 10,000 km² | MB per 10,000 km² "
        "| 10 km warm | 10 km fresh | scene warm | scene fresh | CRC-32C check, scene warm |"
    )
    print(header)
    print("|---" * 9 + "|")
    for o in outcomes:
        c = o.candidate
        if o.fill is not None and o.floor is not None:
            n = len(o.fill.tiles)
            fill = (
                f"{o.fill.wall / n:.2f} ({o.floor.best / n:.2f}, {o.fill.wall / o.floor.best:.2f}×)"
            )
            valid_px = max(o.sizes.valid_px, 1)
            compress = f"{o.floor.compress_1 / valid_px * PX_PER_10000_KM2:.1f}"
        else:
            fill, compress = "reused", "-"
        cells = [f"{c.label}{' *' if c.is_default() else ''}", fill, compress,
                 f"{o.sizes.per_10000_km2()[0]:.0f}"]  # fmt: skip
        for name in ("10 km", "scene"):
            r = o.reads[name]
            for kind, label in (("warm", "warm load"), ("fresh", "fresh open + load")):
                t, f = r.t(label), r.floor(kind)
                cells.append(
                    f"{t.min:.3f}/{t.median:.3f} ({f.min:.3f}/{f.median:.3f}, "
                    f"{t.median / f.median:.2f}×)"
                )
        scene = o.reads["scene"]
        warm, unchecked = scene.t("warm load"), scene.t(UNCHECKED_LOAD)
        paired = statistics.median(x / y for x, y in zip(warm.wall, unchecked.wall, strict=True))
        cells.append(
            f"{paired:.3f}× (medians {warm.median / unchecked.median:.3f}×; "
            f"{scene.checksum_cpu[1]:.1%} of the CPU)"
        )
        print("| " + " | ".join(cells) + " |")
    print(
        "(* = current default; compress = the floor's 1-thread compression seconds per "
        f"10,000 km² of valid pixels; reference: ~{REFERENCE_COMPRESS_S_PER_10000_KM2:.0f} s "
        f"at zstd 22, reads warm {REFERENCE_WARM_S['10 km']} / {REFERENCE_WARM_S['scene']} s; "
        f"CRC-32C check = warm load / the same without the check, median of paired runs, "
        f"and the check's share of the load's CPU time; target <= {CHECKSUM_TARGET}×)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--world", choices=("small", "full"), default="full")
    parser.add_argument("--runs", type=int, default=5, help="warm runs (default 5)")
    parser.add_argument("--fresh-runs", type=int, default=3, help="fresh runs (default 3)")
    parser.add_argument(
        "--candidates",
        nargs="+",
        type=Candidate.parse,
        default=None,
        metavar="CHUNK[/BLOCK]:CODEC:LEVEL",
        help=f"layouts to measure (default: {' '.join(DEFAULT_CANDIDATES)})",
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep (and reuse) cubes here")
    parser.add_argument("--workdir", type=Path, default=None, help="for temporary cubes")
    parser.add_argument("--scene", default=None, help="item id (default: clearest main scene)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))

    from darts.store.datacube import CubeMismatchError, Datacube

    candidates: list[Candidate] = args.candidates or [
        Candidate.parse(text) for text in DEFAULT_CANDIDATES
    ]
    candidates = list(dict.fromkeys(candidates))
    from bench_common import work_folder

    work = Path(tempfile.mkdtemp(prefix="bench-aux-cube-", dir=work_folder(args.workdir)))
    cubes_dir = args.keep or work / "cubes"
    cubes_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"load: {os.getloadavg()}")
    try:
        layout = world_layout(args.world)
        base = candidates[0].spec()
        scene_id, footprint = footprint_window(layout, args.scene, base)
        source = offline_source(base)
        # Every read window must lie on recorded tiles (load refuses others offline).
        tiles = sorted(
            set(source.tiles_for(footprint)).union(
                *(
                    source.tiles_for(w)
                    for c in candidates
                    for w in windows_for(footprint, c.chunk).values()
                )
            )
        )
        print(
            f"scene {scene_id}: footprint window {footprint.shape[0]}×{footprint.shape[1]} px "
            f"at ({footprint.row0}, {footprint.col0}); ArcticDEM 10 m tiles {' '.join(tiles)}"
        )
        todo = []
        for candidate in candidates:
            location = cubes_dir / candidate.dirname
            if location.exists():
                try:
                    cube = Datacube.open(location, candidate.spec(), create=False)
                except CubeMismatchError as error:  # made by an older layout: refilled
                    print(f"not reusing {location}: {error}")
                else:
                    if not cube.missing(tiles):
                        print(f"reusing the {candidate.label} cube at {location}")
                        continue
            todo.append(candidate)
        fills: dict[Candidate, FillResult] = {}
        floors: dict[Candidate, FillFloor] = {}
        if todo:
            fills, floors = run_fills(layout, todo, cubes_dir, tiles, work)
        outcomes: list[Outcome] = []
        for candidate in candidates:
            location = cubes_dir / candidate.dirname
            spec = candidate.spec()
            cube = Datacube.open(location, spec, create=False)
            sizes = cube_sizes(cube, tiles, offline_source(spec))
            print(f"\nreads of {candidate.label}:", flush=True)
            reads = measure_reads(
                candidate,
                location,
                windows_for(footprint, spec.chunk),
                args.runs,
                args.fresh_runs,
                work,
            )
            outcome = Outcome(candidate, sizes, reads, fills.get(candidate), floors.get(candidate))
            report_candidate(outcome)
            outcomes.append(outcome)
        summary_table(outcomes)
        print(f"(load now {os.getloadavg()}; {time.perf_counter() - started:.0f} s in all)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
