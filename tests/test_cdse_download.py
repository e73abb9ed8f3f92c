"""Staging CDSE Sentinel-2 scenes: band names, decoding, the staging pipeline, loading.

The staging tests run against the sandbox's small world: its STAC items and JP2 band
files, served by the S3 stand-in on 127.0.0.1 (which checks SigV4 signatures). Every
pixel that reaches the store is compared with the source JP2 read directly.
"""

from __future__ import annotations

import copy
import itertools
import json
import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from pyproj import CRS

from darts.errors import ConfigError, DartsError
from darts.grid.scene import Grid, grid_of_item
from darts.net import CredentialsError, NetworkSettings, S3Client, S3Settings, forbid_sockets
from darts.net.s3 import parse_s3_href
from darts.pipelines.staged_scenes import StagedScenes
from darts.pipelines.staging import (
    SceneNotStagedError,
    StageProgress,
    StageResult,
    load_scene,
    stage_scene,
)
from darts.sandbox.layout import WorldLayout
from darts.sandbox.servers.faults import FaultConfig
from darts.sandbox.service import Sandbox
from darts.sources import cdse_download
from darts.sources.cdse_bands import (
    DEFAULT_BANDS,
    SCL_KEY,
    MissingAssetError,
    normalize_bands,
    resolve_bands,
)
from darts.sources.cdse_download import ENCODED_AHEAD
from darts.sources.cdse_source import CdseSource
from darts.sources.decode import replicate, resample_nearest
from darts.store.scenes import BandEncoding, SceneStore

pytest_plugins = ["darts.sandbox.testing"]

MAIN_TILE = "_T08WNB_"
DEFAULT_KEYS = [*DEFAULT_BANDS, SCL_KEY]


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _aws_stays_local(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials come only from the test: no user files, no instance metadata."""
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def requests_log(sandbox: Sandbox) -> Iterator[Any]:
    """The S3 stand-in's request log, cleared; faults are reset afterwards."""
    sandbox.clear_requests()
    yield sandbox.injector("s3")
    sandbox.set_faults("s3", FaultConfig())


def s3_settings(sandbox: Sandbox, secret: str | None = None) -> S3Settings:
    return S3Settings(
        endpoint_url=sandbox.endpoints.cdse_s3_endpoint,
        access_key_id=sandbox.credentials.access_key_id,
        secret_access_key=secret or sandbox.credentials.secret_access_key,
    )


def quick_net(**overrides: Any) -> NetworkSettings:
    values: dict[str, Any] = {"timeout_s": 10.0, "max_retries": 2, "backoff_base_s": 0.0}
    values.update(overrides)
    return NetworkSettings(**values)


@pytest.fixture
def s3(sandbox: Sandbox) -> Iterator[S3Client]:
    with S3Client(s3_settings(sandbox), quick_net()) as client:
        yield client


def make_store(root: Path) -> SceneStore:
    # Small chunks: several per band, so chunking is exercised; fsync is not needed.
    return SceneStore(root, BandEncoding(chunk=256), fsync=False)


@pytest.fixture
def store(tmp_path: Path) -> SceneStore:
    return make_store(tmp_path / "scenes")


def main_items(world: WorldLayout) -> list[dict[str, Any]]:
    folder = world.cdse_items / "sentinel-2-l2a"
    return [json.loads(p.read_text()) for p in sorted(folder.glob(f"*{MAIN_TILE}*.json"))]


@pytest.fixture
def item(sandbox_world: WorldLayout) -> dict[str, Any]:
    """The clearest scene of the main tile (most valid pixels)."""
    return min(main_items(sandbox_world), key=lambda i: i["properties"]["eo:cloud_cover"])


def source_file(world: WorldLayout, item: dict[str, Any], key: str) -> Path:
    location = parse_s3_href(item["assets"][key]["href"])
    return world.s3_object(location.bucket, location.key)


def read_source(world: WorldLayout, item: dict[str, Any], key: str) -> np.ndarray:
    with rasterio.open(source_file(world, item, key)) as dataset:
        return dataset.read(1)


def upsample(array: np.ndarray, factor: int) -> np.ndarray:
    """The reference for nearest upsampling of a nested grid: plain np.repeat."""
    return np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


def band_gets(log: Any) -> list[str]:
    """The object keys of the GET requests the stand-in saw."""
    return [r["path"] for r in log.requests() if r["method"] == "GET"]


def stage_cdse(
    item: Any, bands: Any, store: SceneStore | None, s3: Any, **kwargs: Any
) -> StageResult:
    """The generic stager with the ``cdse`` source reading through ``s3``."""
    return stage_scene(CdseSource(s3=s3), item, bands, store, **kwargs)


def load_cdse(item: Any, bands: Any, store: SceneStore | None, s3: Any, *, offline: bool) -> Any:
    """`load_scene` from CDSE; offline, from the source an offline run gets (the store)."""
    source = CdseSource(s3=s3)
    if offline:
        return load_scene(StagedScenes(source, store), item, bands, store)
    return load_scene(source, item, bands, store)


# -- band names -------------------------------------------------------------------------


def test_default_bands_and_scl_always_added() -> None:
    assert normalize_bands(None) == DEFAULT_KEYS
    assert normalize_bands([]) == DEFAULT_KEYS
    assert normalize_bands(["B05"]) == ["B05_20m", SCL_KEY]
    assert normalize_bands(["SCL", "B02"]) == [SCL_KEY, "B02_10m"]


def test_band_spellings() -> None:
    assert normalize_bands(["b2", "B02", "B02_10m", "blue"]) == ["B02_10m", SCL_KEY]
    assert normalize_bands(["red", "green", "nir", "B8A", "b8a_60m", "B01"]) == [
        "B04_10m",
        "B03_10m",
        "B08_10m",
        "B8A_20m",
        "B8A_60m",
        "B01_60m",
        SCL_KEY,
    ]
    assert normalize_bands("B02_20m") == ["B02_20m", SCL_KEY]
    assert normalize_bands(["all"]) == [
        "B01_60m",
        "B02_10m",
        "B03_10m",
        "B04_10m",
        "B05_20m",
        "B06_20m",
        "B07_20m",
        "B08_10m",
        "B8A_20m",
        "B09_60m",
        "B11_20m",
        "B12_20m",
        SCL_KEY,
    ]


@pytest.mark.parametrize("name", ["B10", "B13", "B02_30m", "purple", "", "TCI_10m"])
def test_unknown_band_is_a_config_error_listing_valid_names(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        normalize_bands([name])
    message = str(caught.value)
    assert repr(name) in message
    for valid in ("B02", "B8A", "SCL", "red", "nir", "all"):
        assert valid in message


def test_resolve_against_item(item: dict[str, Any]) -> None:
    assert resolve_bands(["all"], item)[-1] == SCL_KEY
    # A band named without resolution falls back to the finest asset the item has.
    trimmed = copy.deepcopy(item)
    del trimmed["assets"]["B05_20m"]
    assert resolve_bands(["B05"], trimmed) == ["B05_60m", SCL_KEY]
    # One named with a resolution must exist as named.
    with pytest.raises(MissingAssetError, match="B05_20m"):
        resolve_bands(["B05_20m"], trimmed)


# -- decoding and resampling -------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "uint32", "float32"])
@pytest.mark.parametrize("factor", [1, 2, 3, 4, 6])
def test_replicate_equals_repeat(dtype: str, factor: int) -> None:
    rng = np.random.default_rng(factor)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else np.finfo(dtype)
    array = rng.integers(int(max(info.min, -30000)), int(min(info.max, 60000)), (301, 97))
    array = array.astype(dtype)
    np.testing.assert_array_equal(replicate(array, factor), upsample(array, factor))


def _grid(shape: tuple[int, int], transform: Affine) -> Grid:
    t = transform
    return Grid(shape, (t.a, t.b, t.c, t.d, t.e, t.f), "EPSG:32608", CRS(32608).to_wkt())


def test_resample_nearest_general_path_matches_pixel_centres() -> None:
    """A source that is offset by a fraction of a pixel and covers only part of the
    target: every target pixel gets the source pixel under its centre, or nodata."""
    rng = np.random.default_rng(0)
    source = rng.integers(1, 5000, (40, 30), dtype=np.uint16)
    source_transform = Affine(20, 0, 1030, 0, -20, 5000 - 50)
    target = _grid((100, 90), Affine(10, 0, 1000, 0, -10, 5000))
    out = resample_nearest(source, source_transform, target, nodata=0)
    assert out.dtype == np.uint16
    for row in range(100):
        for col in range(90):
            x, y = 1000 + (col + 0.5) * 10, 5000 - (row + 0.5) * 10
            src_col, src_row = ~source_transform @ (x, y)
            r, c = int(np.floor(src_row)), int(np.floor(src_col))
            inside = 0 <= r < 40 and 0 <= c < 30
            assert out[row, col] == (source[r, c] if inside else 0)


def test_resample_nearest_fast_paths() -> None:
    source = np.arange(12, dtype=np.uint8).reshape(3, 4)
    same = _grid((3, 4), Affine(10, 0, 0, 0, -10, 0))
    assert resample_nearest(source, Affine(10, 0, 0, 0, -10, 0), same) is source
    nested = _grid((9, 12), Affine(10, 0, 0, 0, -10, 0))
    np.testing.assert_array_equal(
        resample_nearest(source, Affine(30, 0, 0, 0, -30, 0), nested), upsample(source, 3)
    )


# -- staging into the store ----------------------------------------------------------------


def test_stage_pixels_equal_the_source_files(
    sandbox_world: WorldLayout, item: dict[str, Any], store: SceneStore, s3: S3Client
) -> None:
    bands = ["B02", "B03", "B04", "B08", "B05", "B01"]
    result = stage_cdse(item, bands, store, s3)
    keys = [*DEFAULT_BANDS, "B05_20m", "B01_60m", SCL_KEY]
    assert result.status == "downloaded", result.error
    assert sorted(result.bands_downloaded) == sorted(keys)
    assert result.bytes_downloaded == sum(item["assets"][k]["file:size"] for k in keys)

    grid = grid_of_item(item)
    dataset = store.open(item["id"], keys, load=True)
    assert list(dataset.data_vars) == keys
    for key in keys:
        factor = int(key.split("_")[1][:-1]) // 10
        expected = upsample(read_source(sandbox_world, item, key), factor)
        stored = dataset[key]
        assert stored.shape == grid.shape
        assert stored.dtype == expected.dtype
        np.testing.assert_array_equal(stored.values, expected, err_msg=key)
        assert stored.attrs["nodata"] == 0
        assert stored.attrs["proj:code"] == item["assets"]["B02_10m"]["proj:code"]
        assert stored.attrs["proj:transform"] == item["assets"]["B02_10m"]["proj:transform"]
        assert stored.attrs["darts:asset"] == key
    assert dataset["B02_10m"].attrs["raster:scale"] == pytest.approx(0.0001)
    assert dataset["B02_10m"].attrs["raster:offset"] == pytest.approx(-0.1)
    assert dataset["B02_10m"].dtype == np.uint16
    # Coordinates are pixel centres of the item's 10 m grid.
    a, _, c, _, e, f = item["assets"]["B02_10m"]["proj:transform"]
    np.testing.assert_allclose(dataset.x.values[:2], [c + a / 2, c + 1.5 * a])
    np.testing.assert_allclose(dataset.y.values[:2], [f + e / 2, f + 1.5 * e])
    assert store.verify(item["id"]) == []


def test_scl_is_resampled_by_nearest_neighbour_exactly(
    sandbox_world: WorldLayout, item: dict[str, Any], store: SceneStore, s3: S3Client
) -> None:
    assert stage_cdse(item, ["SCL"], store, s3).status == "downloaded"
    scl = store.open(item["id"], [SCL_KEY], load=True)[SCL_KEY].values
    source = read_source(sandbox_world, item, SCL_KEY)
    assert scl.dtype == np.uint8
    assert scl.shape == (source.shape[0] * 2, source.shape[1] * 2)
    # Every 2×2 block is its 20 m pixel's class: no class is ever interpolated.
    for dy in (0, 1):
        for dx in (0, 1):
            np.testing.assert_array_equal(scl[dy::2, dx::2], source)
    assert set(np.unique(scl)) == set(np.unique(source))
    assert len(np.unique(source)) > 2  # the scene really has several classes


def test_only_20m_bands_still_land_on_the_10m_grid(
    item: dict[str, Any], store: SceneStore, s3: S3Client
) -> None:
    assert stage_cdse(item, ["B11"], store, s3).status == "downloaded"
    dataset = store.open(item["id"], ["B11_20m", SCL_KEY])
    assert dataset["B11_20m"].shape == tuple(item["assets"]["B02_10m"]["proj:shape"])


def test_band_append_fetches_only_the_new_band_and_a_rerun_nothing(
    item: dict[str, Any], store: SceneStore, s3: S3Client, requests_log: Any
) -> None:
    first = stage_cdse(item, ["B02"], store, s3)
    assert first.status == "downloaded"
    assert sorted(first.bands_downloaded) == ["B02_10m", SCL_KEY]
    assert len(band_gets(requests_log)) == 2

    requests_log.clear_requests()
    second = stage_cdse(item, ["B02", "B03"], store, s3)
    assert second.status == "downloaded"
    assert second.bands_downloaded == ("B03_10m",)
    gets = band_gets(requests_log)
    assert len(gets) == 1 and gets[0].endswith("_B03_10m.jp2")
    assert store.stored_bands(item["id"]) == {"B02_10m", "B03_10m", SCL_KEY}

    requests_log.clear_requests()
    third = stage_cdse(item, ["B02", "B03"], store, s3)
    assert (third.status, third.bands_downloaded, third.bytes_downloaded) == ("cached", (), 0)
    assert requests_log.requests() == []


def test_progress_reports_bytes_and_bands(
    item: dict[str, Any], store: SceneStore, s3: S3Client
) -> None:
    events: list[StageProgress] = []
    lock = threading.Lock()

    def record(event: StageProgress) -> None:
        with lock:
            events.append(event)

    result = stage_cdse(item, None, store, s3, progress=record)
    total = sum(item["assets"][k]["file:size"] for k in DEFAULT_KEYS)
    assert sorted(e.band for e in events if e.event == "fetched") == sorted(DEFAULT_KEYS)
    # The 20 m SCL goes through the pipeline first (its write hides behind a decode).
    assert [e.band for e in events if e.event == "stored"] == [SCL_KEY, *DEFAULT_BANDS]
    assert max(e.bytes_done for e in events) == total == result.bytes_downloaded
    assert all(e.bytes_total == total and e.bands_total == 5 for e in events)
    assert events[-1].bands_done == 5


def test_checksum_mismatch_is_retried_then_fails(
    item: dict[str, Any], store: SceneStore, s3: S3Client, requests_log: Any
) -> None:
    wrong = copy.deepcopy(item)
    wrong["assets"]["B03_10m"]["file:checksum"] = "1620" + "00" * 32
    result = stage_cdse(wrong, ["B02", "B03"], store, s3)
    assert result.status == "partial"
    assert (result.error or "").startswith("band B03_10m: sha3-256 mismatch")
    assert "B03_10m" not in result.bands_downloaded
    assert "B02_10m" in result.bands_downloaded  # written before the failure: kept
    b03 = [p for p in band_gets(requests_log) if p.endswith("_B03_10m.jp2")]
    assert len(b03) == 1 + s3.net.max_retries  # retried, then given up
    assert "B03_10m" not in store.stored_bands(item["id"])
    assert store.verify(item["id"]) == []


def test_truncated_downloads_are_retried_then_fail(
    sandbox: Sandbox, item: dict[str, Any], store: SceneStore, s3: S3Client, requests_log: Any
) -> None:
    sandbox.set_faults("s3", FaultConfig(truncate_rate=1.0))
    result = stage_cdse(item, ["B02"], store, s3)
    assert result.status == "failed"
    assert result.bands_downloaded == ()
    assert len(band_gets(requests_log)) >= 1 + s3.net.max_retries
    assert store.stored_bands(item["id"]) == set()


def test_missing_object_fails_the_scene_and_stops_the_pipeline(
    item: dict[str, Any], store: SceneStore, s3: S3Client
) -> None:
    broken = copy.deepcopy(item)
    broken["assets"]["B03_10m"]["href"] += ".missing"
    result = stage_cdse(broken, None, store, s3)
    assert result.status == "partial"  # SCL and B02 came before the missing B03
    assert (result.error or "").startswith("band B03_10m: ")
    assert "NoSuchKey" in (result.error or "")
    assert result.bands_downloaded == (SCL_KEY, "B02_10m")
    # No worker of the staging pipeline left behind (other tests' cube readers may live).
    pipeline = ("darts-fetch", "darts-decode")
    alive = [t.name for t in threading.enumerate() if t.name.startswith(pipeline)]
    assert alive == []


def test_undecodable_or_mismatching_files_fail_the_scene(
    item: dict[str, Any], store: SceneStore, s3: S3Client
) -> None:
    not_jp2 = copy.deepcopy(item)
    asset = not_jp2["assets"][SCL_KEY]
    asset["href"] = item["assets"]["granule_metadata"]["href"]  # an XML file
    del asset["file:size"], asset["file:checksum"]
    result = stage_cdse(not_jp2, ["SCL"], store, s3)
    assert result.status == "failed"
    assert (result.error or "").startswith("band SCL_20m: cannot decode the JPEG2000 file")

    wrong_shape = copy.deepcopy(item)
    wrong_shape["assets"]["B03_10m"]["proj:shape"] = [10980, 10980]
    result = stage_cdse(wrong_shape, ["B03"], store, s3)
    assert result.status == "partial"  # SCL_20m went first and is stored
    assert (result.error or "").startswith("band B03_10m: the file is 1200×1200 px")
    assert store.stored_bands(item["id"]) == {SCL_KEY}


def test_wrong_credentials_raise_one_clear_error_without_secrets(
    sandbox: Sandbox, item: dict[str, Any], store: SceneStore
) -> None:
    secret = "this-is-the-wrong-secret-key"
    client = S3Client(s3_settings(sandbox, secret=secret), quick_net())
    with client, pytest.raises(CredentialsError) as caught:
        stage_cdse(item, ["B02"], store, client)
    message = str(caught.value)
    assert "refused" in message and "AWS_ACCESS_KEY_ID" in message
    assert secret not in message
    assert sandbox.credentials.access_key_id not in message
    # No chained botocore error either: its text can echo the string-to-sign.
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert store.stored_bands(item["id"]) == set()


def test_missing_credentials_raise_a_credentials_error(
    sandbox: Sandbox, item: dict[str, Any], store: SceneStore
) -> None:
    settings = S3Settings(endpoint_url=sandbox.endpoints.cdse_s3_endpoint)
    with S3Client(settings, quick_net()) as client, pytest.raises(CredentialsError) as caught:
        stage_cdse(item, ["B02"], store, client)
    assert "No S3 credentials found" in str(caught.value)


# -- without a store -------------------------------------------------------------------------


def tree(root: Path) -> list[tuple[str, int, int]]:
    return sorted(
        (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    )


def test_no_store_returns_the_bands_and_writes_nothing(
    sandbox_world: WorldLayout, item: dict[str, Any], store: SceneStore, s3: S3Client
) -> None:
    other = main_items(sandbox_world)[0]
    assert stage_cdse(other, ["B02"], store, s3).ok
    before = tree(store.root)

    result = stage_cdse(item, ["B04", "B05"], None, s3)
    assert tree(store.root) == before
    assert result.status == "downloaded"
    dataset = result.dataset
    assert isinstance(dataset, xr.Dataset)
    assert list(dataset.data_vars) == ["B04_10m", "B05_20m", SCL_KEY]
    np.testing.assert_array_equal(
        dataset["B05_20m"].values, upsample(read_source(sandbox_world, item, "B05_20m"), 2)
    )
    np.testing.assert_array_equal(
        dataset["B04_10m"].values, read_source(sandbox_world, item, "B04_10m")
    )
    assert "spatial_ref" in dataset.coords and dataset.attrs["proj:code"] == "EPSG:32608"

    loaded = load_cdse(item, ["B04"], None, s3, offline=False)
    assert list(loaded.data_vars) == ["B04_10m", SCL_KEY]
    assert tree(store.root) == before


# -- loading ---------------------------------------------------------------------------------


def test_load_scene_stages_missing_bands_and_returns_exactly_the_request(
    item: dict[str, Any], store: SceneStore, s3: S3Client
) -> None:
    assert stage_cdse(item, ["B02", "B03", "B04"], store, s3).ok
    dataset = load_cdse(item, ["B04", "nir"], store, s3, offline=False)
    assert list(dataset.data_vars) == ["B04_10m", "B08_10m", SCL_KEY]  # no B02/B03 leak
    assert store.stored_bands(item["id"]) >= {"B08_10m"}


def test_offline_load_with_a_missing_band_names_it_and_opens_no_socket(
    item: dict[str, Any], store: SceneStore, s3: S3Client
) -> None:
    assert stage_cdse(item, ["B02", "B04"], store, s3).ok
    with forbid_sockets() as audit:
        dataset = load_cdse(item, ["B02"], store, None, offline=True)
        assert list(dataset.data_vars) == ["B02_10m", SCL_KEY]
        assert int(dataset["B02_10m"].max()) > 0
        with pytest.raises(SceneNotStagedError) as caught:
            load_cdse(item, ["B02", "B03", "B05"], store, s3, offline=True)
        with pytest.raises(SceneNotStagedError):
            load_cdse(item, ["B02"], None, s3, offline=True)
    assert audit.blocked == [] and audit.allowed == []
    message = str(caught.value)
    assert "B03_10m" in message and "B05_20m" in message and "offline" in message
    assert "B02_10m, B04_10m, SCL_20m" in message  # what the store does have
    assert isinstance(caught.value, DartsError)
    assert caught.value.missing == ["B03_10m", "B05_20m"]


# -- the pipeline ---------------------------------------------------------------------------


class RecordingS3:
    """Serves band files from the world folder, logging when each fetch starts/ends."""

    def __init__(self, world: WorldLayout, events: list[tuple[str, str, float]]) -> None:
        self.world = world
        self.events = events
        self.lock = threading.Lock()

    def log(self, what: str, key: str) -> None:
        with self.lock:
            self.events.append((what, key, time.perf_counter()))

    def get_object_bytes(self, href: str, **_: Any) -> bytes:
        location = parse_s3_href(href)
        key = location.key.rsplit("_", 2)[-2] + "_" + location.key.rsplit("_", 1)[-1][:-4]
        self.log("fetch-start", key)
        time.sleep(0.03)
        data = self.world.s3_object(location.bucket, location.key).read_bytes()
        self.log("fetch-end", key)
        return data


def test_pipeline_overlaps_steps_and_bounds_buffers(
    monkeypatch: pytest.MonkeyPatch,
    sandbox_world: WorldLayout,
    item: dict[str, Any],
    store: SceneStore,
) -> None:
    events: list[tuple[str, str, float]] = []
    fake = RecordingS3(sandbox_world, events)
    real_decode = cdse_download.decode_band
    real_write = store.write_bands

    def slow_decode(data: bytes, key: str, *args: Any, **kwargs: Any) -> xr.DataArray:
        fake.log("decode-start", key)
        time.sleep(0.15)
        array = real_decode(data, key, *args, **kwargs)
        fake.log("decode-end", key)
        return array

    def slow_write(scene_id: str, item: Any, bands: dict[str, xr.DataArray]) -> list[str]:
        (key,) = bands
        fake.log("write-start", key)
        time.sleep(0.15)
        written = real_write(scene_id, item, bands)
        fake.log("write-end", key)
        return written

    monkeypatch.setattr(cdse_download, "decode_band", slow_decode)
    monkeypatch.setattr(store, "write_bands", slow_write)
    bands = ["B02", "B03", "B04", "B08", "B05", "B11"]
    result = stage_cdse(item, bands, store, fake)  # type: ignore[arg-type]
    assert result.status == "downloaded", result.error
    keys = ["B05_20m", "B11_20m", SCL_KEY, "B02_10m", "B03_10m", "B04_10m", "B08_10m"]

    def when(what: str, key: str) -> float:
        return next(t for w, k, t in events if (w, k) == (what, key))

    # Decoding and writing happen in one order: coarse bands first.
    assert [k for w, k, _ in events if w == "write-start"] == keys
    assert [k for w, k, _ in events if w == "decode-start"] == keys
    for previous, current in itertools.pairwise(keys):
        # The next file is already there when a decode finishes: downloads run ahead.
        assert when("fetch-end", current) < when("decode-end", previous)
        # Band k decodes while band k-1 is being written.
        assert when("decode-start", current) < when("write-end", previous)
    # Never more than ENCODED_AHEAD encoded files held (fetch started, decode not done).
    held = peak = 0
    for what, _, _ in sorted(events, key=lambda e: e[2]):
        held += {"fetch-start": 1, "decode-end": -1}.get(what, 0)
        peak = max(peak, held)
    assert peak <= ENCODED_AHEAD
    assert sorted(store.stored_bands(item["id"])) == sorted(keys)


class JitteryS3(RecordingS3):
    """Downloads finish in random order: later bands often before earlier ones."""

    def __init__(self, world: WorldLayout, seed: int) -> None:
        super().__init__(world, [])
        self.rng = np.random.default_rng(seed)

    def get_object_bytes(self, href: str, **_: Any) -> bytes:
        with self.lock:
            delay = float(self.rng.uniform(0, 0.03))
        time.sleep(delay)
        location = parse_s3_href(href)
        return self.world.s3_object(location.bucket, location.key).read_bytes()


def test_pipeline_never_deadlocks_on_out_of_order_downloads(
    sandbox_world: WorldLayout, item: dict[str, Any]
) -> None:
    outcomes: list[Any] = []

    def run() -> None:
        for seed in range(4):
            result = stage_cdse(item, ["all"], None, JitteryS3(sandbox_world, seed))  # type: ignore[arg-type]
            outcomes.append((result.status, len(result.bands_downloaded)))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "staging hung"
    assert outcomes == [("downloaded", 13)] * 4


def test_slots_are_granted_in_turn_order() -> None:
    slots = cdse_download._Slots(1)
    order: list[int] = []
    slots.acquire(0)
    threads = [
        threading.Thread(target=lambda t=t: (slots.acquire(t), order.append(t))) for t in (2, 1)
    ]
    for thread in threads:
        thread.start()
    for _ in (1, 2):
        time.sleep(0.05)
        slots.release()
    for thread in threads:
        thread.join(5)
    assert order == [1, 2]
    slots.close()
    with pytest.raises(cdse_download._PipelineStopped):
        slots.acquire(3)


# -- two processes --------------------------------------------------------------------------


def _stage_in_child(config: dict[str, Any], go: Any, results: Any) -> None:
    settings = S3Settings(
        endpoint_url=config["endpoint"],
        access_key_id=config["key"],
        secret_access_key=config["secret"],
    )
    item = json.loads(Path(config["item"]).read_text())
    with S3Client(settings, NetworkSettings(max_retries=0)) as client:
        go.wait(30)
        result = stage_cdse(item, None, make_store(Path(config["root"])), client)
    results.put((result.status, sorted(result.bands_downloaded), result.error))


def test_two_processes_staging_one_scene_download_it_once(
    sandbox: Sandbox, item: dict[str, Any], tmp_path: Path, requests_log: Any
) -> None:
    # Slow answers keep the first stager busy while the second one arrives.
    sandbox.set_faults("s3", FaultConfig(latency_ms=150))
    item_file = tmp_path / "item.json"
    item_file.write_text(json.dumps(item))
    config = {
        "endpoint": sandbox.endpoints.cdse_s3_endpoint,
        "key": sandbox.credentials.access_key_id,
        "secret": sandbox.credentials.secret_access_key,
        "item": str(item_file),
        "root": str(tmp_path / "scenes"),
    }
    context = multiprocessing.get_context("spawn")
    go, results = context.Event(), context.Queue()
    children = [
        context.Process(target=_stage_in_child, args=(config, go, results)) for _ in range(2)
    ]
    for child in children:
        child.start()
    go.set()
    outcomes = sorted(results.get(timeout=120) for _ in children)
    for child in children:
        child.join(30)
        assert child.exitcode == 0

    assert outcomes == [("cached", [], None), ("downloaded", sorted(DEFAULT_KEYS), None)]
    gets = band_gets(requests_log)
    assert len(gets) == len(DEFAULT_KEYS) == len(set(gets))
    store = make_store(tmp_path / "scenes")
    assert store.stored_bands(item["id"]) == set(DEFAULT_KEYS)
    assert store.verify(item["id"]) == []
