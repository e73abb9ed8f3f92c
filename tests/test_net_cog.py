"""RemoteCog: remote GeoTIFFs fetched through HttpClient, decoded by GDAL from memory.

Every read is compared with rasterio reading the same file from disk, for the layouts
GDAL writes (COG with overviews and block leaders, BigTIFF, strips, band-separate
planes, sparse blocks, directories larger than the first request), with and without
injected faults; plus request counts, the range-length check and refusals.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.io import MemoryFile
from rasterio.shutil import copy as rio_copy
from rasterio.windows import Window
from test_net_support import Scripted, fast_settings, ok, serve

from darts.net import HttpClient, NetworkGate, OfflineError
from darts.net.cog import HEADER_BYTES, CogReadError, RemoteCog
from darts.net.errors import ChecksumMismatch
from darts.net.tiff_layout import merge_ranges
from darts.sandbox.servers.faults import FaultInjector
from darts.sandbox.servers.runner import ServerThread
from darts.sandbox.servers.static import range_file_app

PROFILE: dict[str, Any] = {"driver": "GTiff", "crs": "EPSG:3413", "compress": "deflate"}
GRID = Affine(10.0, 0.0, -2400000.0, 0.0, -10.0, -100000.0)


def _pixels(height: int, width: int, count: int, dtype: str) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    bands = [(rows // 4 + cols // 8 * (b + 1)) % 251 for b in range(count)]
    data = np.stack(bands).astype(dtype)
    if np.issubdtype(data.dtype, np.floating):
        data[:, ::7, ::5] = np.nan  # NaNs must survive the trip too
    return data


def _write(path: Path, data: np.ndarray, **options: Any) -> Path:
    count, height, width = data.shape
    profile = {
        **PROFILE,
        "width": width,
        "height": height,
        "count": count,
        "dtype": data.dtype.name,
        "transform": GRID,
        **options,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def _cog(path: Path, data: np.ndarray, **options: Any) -> Path:
    """A real COG (GDAL's COG driver: ghost area, block leaders/trailers, overviews)."""
    count, height, width = data.shape
    profile = {
        **PROFILE,
        "width": width,
        "height": height,
        "count": count,
        "dtype": data.dtype.name,
        "transform": GRID,
    }
    with MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(data)
        rio_copy(memory.name, str(path), driver="COG", **options)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cogs")
    _cog(root / "dem.tif", _pixels(1500, 1300, 1, "float32"), BLOCKSIZE=256)
    _cog(root / "rgb.tif", _pixels(300, 400, 3, "uint8"), BLOCKSIZE=256)
    _write(
        root / "big.tif", _pixels(600, 500, 1, "int16"), tiled=True, blockxsize=128,
        blockysize=128, BIGTIFF="YES",
    )  # fmt: skip
    _write(root / "strips.tif", _pixels(301, 257, 2, "uint16"), tiled=False, ROWSPERSTRIP=7)
    _write(
        root / "planes.tif", _pixels(520, 530, 3, "float32"), tiled=True, blockxsize=256,
        blockysize=256, interleave="band",
    )  # fmt: skip
    # 65,536 blocks: directories of ~512 KiB, beyond the first request.
    _cog(root / "many.tif", _pixels(4096, 4096, 1, "uint8"), BLOCKSIZE=16, OVERVIEWS="NONE")
    # Sparse: only the top-left block is written; the others have no bytes at all.
    sparse = root / "sparse.tif"
    with rasterio.open(
        sparse, "w", **PROFILE, width=512, height=512, count=1, dtype="uint8", nodata=0,
        transform=Affine(1.0, 0.0, 0.0, 0.0, -1.0, 512.0), tiled=True, blockxsize=128,
        blockysize=128, sparse_ok=True,
    ) as dst:  # fmt: skip
        dst.write(np.full((128, 128), 9, np.uint8), 1, window=Window(0, 0, 128, 128))
    (root / "not-a-tiff.tif").write_bytes(b"<html>PGC is down for maintenance</html>")
    return root


@pytest.fixture
def server(files: Path) -> Iterator[tuple[str, FaultInjector]]:
    injector = FaultInjector(range_file_app(files), "cogs")
    with ServerThread(injector) as running:
        yield running.url, injector


def client(**overrides: Any) -> HttpClient:
    return HttpClient(fast_settings(**{"max_retries": 8, **overrides}), gate=NetworkGate())


def _windows(width: int, height: int) -> list[Window]:
    return [
        Window(0, 0, width, height),
        Window(width // 3, height // 5, width // 2, height // 3),  # not block-aligned
        Window(width - 1, height - 1, 1, 1),
    ]


def _check_file(url: str, path: Path, http: HttpClient) -> None:
    with RemoteCog.open(http, url, purpose="test") as cog, rasterio.open(path) as local:
        assert cog.dataset.profile == local.profile
        assert cog.dataset.descriptions == local.descriptions
        indexes = list(range(1, local.count + 1))
        for window in _windows(local.width, local.height):
            expected = local.read(indexes, window=window)
            np.testing.assert_array_equal(cog.read(indexes, window), expected)
        # Strips of a planned window, into preallocated output, band 1 alone.
        whole = Window(0, 0, local.width, local.height)
        cog.plan(whole, 1)
        rows = 100
        out = np.empty((rows, local.width), local.dtypes[0])
        for row0 in range(0, local.height, rows):
            n = min(rows, local.height - row0)
            window = Window(0, row0, local.width, n)
            got = cog.read(1, window, out=out[:n])
            np.testing.assert_array_equal(got, local.read(1, window=window))


NAMES = ["dem.tif", "rgb.tif", "big.tif", "strips.tif", "planes.tif", "many.tif", "sparse.tif"]


@pytest.mark.parametrize("name", NAMES)
def test_reads_equal_a_local_read(
    server: tuple[str, FaultInjector], files: Path, name: str
) -> None:
    url, _ = server
    with client() as http:
        _check_file(f"{url}/{name}", files / name, http)


def test_reads_are_identical_under_faults_and_cost_one_request_per_fault(
    server: tuple[str, FaultInjector], files: Path
) -> None:
    url, injector = server
    with client() as http:
        for name in NAMES:
            _check_file(f"{url}/{name}", files / name, http)
        clean = len(injector.requests())
    injector.clear_requests()
    injector.set_config(error_rate=0.1, reset_rate=0.1, truncate_rate=0.1)
    with client() as http:
        for name in NAMES:
            _check_file(f"{url}/{name}", files / name, http)
        stats = http.counter.snapshot()
    log = injector.requests()
    faults = sum(entry["fault"] is not None for entry in log)
    assert {entry["fault"] for entry in log} == {None, "error", "reset", "truncate"}
    # Each fault costs exactly one more request: the retry of that range, nothing else.
    assert len(log) == clean + faults == stats.requests
    assert stats.retries == faults


def test_a_planned_read_of_a_small_cog_costs_two_requests(
    server: tuple[str, FaultInjector], files: Path
) -> None:
    url, injector = server
    assert (files / "dem.tif").stat().st_size > HEADER_BYTES
    with client() as http, RemoteCog.open(http, f"{url}/dem.tif", purpose="test") as cog:
        width, height = cog.dataset.width, cog.dataset.height
        cog.plan(Window(0, 0, width, height), 1)
        for row0 in range(0, height, 256):
            cog.read(1, Window(0, row0, width, min(256, height - row0)))
    # The header, then the rest of the full-resolution blocks in one piece.
    assert len(injector.requests()) == 2
    injector.clear_requests()
    assert (files / "rgb.tif").stat().st_size < HEADER_BYTES
    with client() as http, RemoteCog.open(http, f"{url}/rgb.tif", purpose="test") as cog:
        cog.read([1, 2, 3], Window(0, 0, 400, 300))
    assert len(injector.requests()) == 1  # a small file arrives whole with the header


def test_a_short_range_answer_is_refetched() -> None:
    data = (bytes(range(256)) * 40)[:10_000]

    def short(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        # Claims the whole range in Content-Range, sends (and declares) fewer bytes:
        # no transport error, only the length check can notice.
        start_response(
            "206 Partial Content",
            [("Content-Range", f"bytes 100-199/{len(data)}"), ("Content-Length", "60")],
        )
        return [data[100:160]]

    app = Scripted(short, then=ok(data, "image/tiff"))
    with serve(app) as url, client() as http:
        body = http.get_range(url, 100, 200, purpose="test")
    assert body.data == data[100:200] and body.total_size == len(data)
    assert app.hits == 2
    app = Scripted(then=short)
    with serve(app) as url, client(max_retries=2) as http, pytest.raises(ChecksumMismatch):
        http.get_range(url, 100, 200, purpose="test")
    assert app.hits == 3


def test_not_a_tiff_is_one_clear_error(server: tuple[str, FaultInjector]) -> None:
    url, _ = server
    with client() as http, pytest.raises(CogReadError) as info:
        RemoteCog.open(http, f"{url}/not-a-tiff.tif", purpose="test")
    message = str(info.value)
    assert "not-a-tiff.tif is not a readable GeoTIFF" in message and "\n" not in message


def test_offline_opens_nothing(server: tuple[str, FaultInjector]) -> None:
    url, injector = server
    with (
        HttpClient(fast_settings(offline=True), gate=NetworkGate()) as http,
        pytest.raises(OfflineError, match="ArcticDEM tile 1_1"),
    ):
        RemoteCog.open(http, f"{url}/dem.tif", purpose="ArcticDEM tile 1_1")
    assert injector.requests() == []


def test_merge_ranges() -> None:
    assert merge_ranges([(10, 20), (0, 5), (22, 30)], gap=2) == [(0, 5), (10, 30)]
    assert merge_ranges([(0, 10), (5, 8), (9, 12)], gap=0) == [(0, 12)]
    # Too long to merge: split where the first ends, nothing fetched twice.
    assert merge_ranges([(0, 10), (8, 20)], gap=0, max_length=15) == [(0, 10), (10, 20)]
    assert merge_ranges([(0, 100)], gap=0, max_length=10) == [(0, 100)]
