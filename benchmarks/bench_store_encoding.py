"""Which Zarr encoding for a cached Sentinel-2 band? Write, read and size, measured.

Usage::

    .venv/bin/python benchmarks/bench_store_encoding.py [--size 10980] [--runs 7]
        [--only "3660,2196"] [--no-store] [--workdir DIR]

One realistic-texture 10980² uint16 band (smooth fields at several scales on a
60 m-like base upsampled ×6, 1.5 % multiplicative noise, a 40 % nodata swath as
at an orbit edge) is written with each encoding into a fresh folder. Candidates
are interleaved run by run and dirty pages are flushed (untimed) before each
measurement, so the machine's slow phases and the previous write's write-back
do not land on one candidate. Reported: min / median wall seconds and median CPU
seconds (all threads; on a shared machine the CPU figure is the steadier one):

* write: ``zarr.create_array`` + one assignment, ``write_empty_chunks=False``
  with fill value = nodata (all-nodata chunks are not written);
* read: the whole band from the (warm) page cache;
* 1024²: one patch-sized window, the cost of reading far less than a chunk;
* size on disk and number of chunk files;

and each one's ratio to the reference encoding (Blosc zstd 3 bit-shuffle,
4096² chunks). Then the ``SceneStore.write_bands`` path with the default
encoding, adding the SHA-256 manifest, the read-back verification and fsync one
at a time, and ``open(load=True)`` / ``verify``: what the crash safety costs.
The chosen encoding and the numbers behind it are in ``darts/store/encoding.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
from bench_common import work_folder
from zarr.storage import LocalStore

from darts.store.encoding import DEFAULT_ENCODING, BandEncoding
from darts.store.scenes import SceneStore

NODATA = 0


@dataclass(frozen=True)
class Candidate:
    label: str
    encoding: BandEncoding


CANDIDATES = [
    Candidate("zstd3 bitshuffle 4096² (reference)", BandEncoding(4096, "zstd", 3, "bitshuffle", 0)),
    Candidate("zstd3 bitshuffle 2048²", BandEncoding(2048, "zstd", 3, "bitshuffle", 0)),
    Candidate("zstd3 bitshuffle 3660²", BandEncoding(3660, "zstd", 3, "bitshuffle", 0)),
    Candidate("zstd3 bitshuffle 2196²", BandEncoding(2196, "zstd", 3, "bitshuffle", 0)),
    Candidate("zstd3 bitshuffle 2196², 1 MiB blocks (default)", BandEncoding()),
    Candidate("zstd1 bitshuffle 3660²", BandEncoding(3660, "zstd", 1, "bitshuffle", 0)),
    Candidate("zstd5 bitshuffle 3660²", BandEncoding(3660, "zstd", 5, "bitshuffle", 0)),
    Candidate("lz4 shuffle 3660²", BandEncoding(3660, "lz4", 5, "shuffle", 0)),
    Candidate("lz4 bitshuffle 3660²", BandEncoding(3660, "lz4", 5, "bitshuffle", 0)),
    Candidate("lz4 bitshuffle 2048²", BandEncoding(2048, "lz4", 5, "bitshuffle", 0)),
]


# -- a realistic band ------------------------------------------------------------------


def _upsample(field: np.ndarray, size: int) -> np.ndarray:
    """Separable bilinear resampling of a square field to ``size``² (pixel centres)."""

    def axis(a: np.ndarray, ax: int) -> np.ndarray:
        n = a.shape[ax]
        pos = (np.arange(size) + 0.5) * n / size - 0.5
        i0 = np.clip(np.floor(pos).astype(int), 0, n - 1)
        i1 = np.clip(i0 + 1, 0, n - 1)
        w = (pos - i0).clip(0, 1).astype(np.float32)
        shape = [1, 1]
        shape[ax] = size
        w = w.reshape(shape)
        return np.take(a, i0, axis=ax) * (1 - w) + np.take(a, i1, axis=ax) * w

    return axis(axis(field.astype(np.float32), 0), 1)


def synthesize_band(size: int, seed: int = 0) -> np.ndarray:
    """uint16 DN: smooth land-cover-like fields + 60 m texture, ×6 upsampled, noise, nodata."""
    rng = np.random.default_rng(seed)
    coarse = max(size // 6, 8)
    base = np.full((coarse, coarse), 2600.0, dtype=np.float32)  # DN incl. the +1000 offset
    for cells, amplitude in ((4, 900.0), (16, 450.0), (64, 250.0), (256, 120.0)):
        n = max(coarse // cells, 2)
        base += amplitude * _upsample(rng.normal(0, 1, (n, n)), coarse)
    base += rng.normal(0, 60, base.shape).astype(np.float32)  # per-60 m-pixel texture
    field = _upsample(base, size)
    field *= 1 + rng.normal(0, 0.015, field.shape).astype(np.float32)
    band = field.clip(1, 65535).astype(np.uint16)
    # Orbit-edge swath: a slanted boundary with 40 % of the pixels on the nodata side.
    rows, cols = np.ogrid[0:size, 0:size]
    slant = cols + 0.25 * rows
    band[slant < np.quantile(slant, 0.40)] = NODATA
    return band


# -- measurements ----------------------------------------------------------------------


@dataclass
class Timing:
    """Wall-clock and CPU seconds (all threads) per run."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, fn: Callable[[], object]) -> None:
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        self.wall.append(time.perf_counter() - start)
        self.cpu.append(time.process_time() - start_cpu)

    def __str__(self) -> str:
        return (
            f"{min(self.wall):5.2f} / {statistics.median(self.wall):5.2f} s "
            f"(cpu {statistics.median(self.cpu):5.2f})"
        )


@dataclass
class Result:
    write: Timing = field(default_factory=Timing)
    read: Timing = field(default_factory=Timing)
    window: Timing = field(default_factory=Timing)
    size: int = 0
    chunk_files: int = 0


def settle() -> None:
    """Flush dirty pages now, untimed, so one measurement does not pay for the
    write-back of the previous one (the largest source of noise here)."""
    os.sync()


def write_band(band: np.ndarray, enc: BandEncoding, target: Path) -> None:
    array = zarr.create_array(
        store=LocalStore(target),
        shape=band.shape,
        chunks=enc.chunks_for(band.shape),
        dtype=band.dtype,
        fill_value=NODATA,
        compressors=[enc.codec(band.dtype)],
        config={"write_empty_chunks": False},
    )
    array[:] = band


def bench_encodings(
    band: np.ndarray, candidates: list[Candidate], work: Path, runs: int
) -> list[Result]:
    """Candidates interleaved run by run, so slow phases of a noisy machine hit all alike."""
    results = [Result() for _ in candidates]
    windows = np.random.default_rng(1).integers(0, band.shape[0] - 1024, (runs, 4, 2))
    for run in range(runs):
        for candidate, result in zip(candidates, results, strict=True):
            target = work / "band.zarr"
            settle()
            result.write.add(lambda e=candidate.encoding, t=target: write_band(band, e, t))
            array = zarr.open_array(LocalStore(target, read_only=True), mode="r")
            result.read.add(lambda a=array: a[:])  # from the page cache
            for r, c in windows[run]:
                result.window.add(lambda a=array, r=r, c=c: a[r : r + 1024, c : c + 1024])
            if run == 0:
                assert np.array_equal(array[:], band), f"{candidate.label}: round trip failed"
                files = [p for p in target.rglob("*") if p.is_file()]
                result.size = sum(p.stat().st_size for p in files)
                result.chunk_files = sum(1 for p in files if p.name != "zarr.json")
            shutil.rmtree(target)
    return results


def bench_store(band: np.ndarray, work: Path, runs: int) -> dict[str, Timing]:
    size = band.shape[0]
    data = xr.DataArray(
        band,
        dims=("y", "x"),
        coords={"y": 300000.0 - 5 - 10 * np.arange(size), "x": 600005.0 + 10 * np.arange(size)},
        attrs={"raster:scale": 1e-4, "raster:offset": -0.1, "nodata": NODATA},
    )
    item = {"id": "bench", "properties": {"proj:code": "EPSG:32636"}}
    variants = {
        "raw zarr write (as above)": None,
        "write_bands: sha256 manifest only": (False, False),
        "write_bands: + read-back verify": (False, True),
        "write_bands: + read-back verify + fsync": (True, True),
    }
    results = {label: Timing() for label in variants}
    results["open(load=True)"] = Timing()
    results["verify (sha256 of every file)"] = Timing()
    for _ in range(runs):
        for label, options in variants.items():
            root = work / "store"
            settle()
            if options is None:
                raw = root / "raw.zarr"
                results[label].add(lambda t=raw: write_band(band, DEFAULT_ENCODING, t))
            else:
                fsync, verify = options
                store = SceneStore(root, DEFAULT_ENCODING, fsync=fsync, verify_writes=verify)
                results[label].add(lambda s=store: s.write_bands("bench", item, {"B02": data}))
            if options == (True, True):
                results["open(load=True)"].add(lambda s=store: s.open("bench", ["B02"], load=True))
                results["verify (sha256 of every file)"].add(lambda s=store: s.verify("bench"))
            shutil.rmtree(root)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10980)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None, help="on the disk the store uses")
    parser.add_argument(
        "--only", default="", help="comma-separated label parts to keep (reference always kept)"
    )
    parser.add_argument("--no-store", action="store_true", help="skip the SceneStore timings")
    args = parser.parse_args()
    keep = [part.strip() for part in args.only.split(",") if part.strip()]
    candidates = [
        c for i, c in enumerate(CANDIDATES) if i == 0 or not keep or any(k in c.label for k in keep)
    ]

    start = time.perf_counter()
    band = synthesize_band(args.size)
    print(
        f"band {args.size}² uint16, {band.nbytes / 1e6:.0f} MB, "
        f"{(band == NODATA).mean():.0%} nodata, synthesized in "
        f"{time.perf_counter() - start:.1f} s; {args.runs} runs: min / median wall (median cpu)"
    )
    with tempfile.TemporaryDirectory(dir=work_folder(args.workdir)) as tmp:
        work = Path(tmp)
        results = bench_encodings(band, candidates, work, args.runs)
        ref = results[0]
        print(
            f"{'encoding':36} {'MB':>5} {'files':>5} {'write':>27} {'read':>27} {'1024²':>6}"
            "   vs reference: size, write wall, write cpu, read wall, read cpu, window"
        )
        med = statistics.median
        for candidate, r in zip(candidates, results, strict=True):
            ratios = [
                r.size / ref.size,
                med(r.write.wall) / med(ref.write.wall),
                med(r.write.cpu) / med(ref.write.cpu),
                med(r.read.wall) / med(ref.read.wall),
                med(r.read.cpu) / med(ref.read.cpu),
                med(r.window.wall) / med(ref.window.wall),
            ]
            print(
                f"{candidate.label:36} {r.size / 1e6:5.1f} {r.chunk_files:5d} {r.write!s:>27} "
                f"{r.read!s:>27} {med(r.window.wall):6.3f}   "
                + " ".join(f"{x:.2f}" for x in ratios)
            )
        if args.no_store:
            return
        print(f"\nSceneStore, one band, default encoding {DEFAULT_ENCODING}:")
        for label, timing in bench_store(band, work, args.runs).items():
            print(f"  {label:42} {timing}")


if __name__ == "__main__":
    main()
