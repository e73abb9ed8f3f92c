"""`SceneStore.open(load=True)` reads chunk files directly (`darts.store.band_reader`):
the same values, dtypes, coordinates and attributes as reading through zarr, for
chunked, partial-edge and never-written (all-nodata) chunks; other layouts fall back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from darts.store.band_reader import read_bands
from darts.store.scenes import BandEncoding, DamagedSceneError, SceneStore

ITEM = {"id": "S2A_TEST", "properties": {"datetime": "2024-07-15T20:38:49Z"}}


def band(values: np.ndarray, nodata: int = 0) -> xr.DataArray:
    rows, cols = values.shape
    return xr.DataArray(
        values,
        dims=("y", "x"),
        coords={"y": 7_000_005.0 - 10 * np.arange(rows), "x": 500_005.0 + 10 * np.arange(cols)},
        attrs={"nodata": nodata, "proj:code": "EPSG:32608", "raster:scale": 1e-4},
    )


@pytest.fixture
def store(tmp_path: Path) -> SceneStore:
    return SceneStore(tmp_path / "store", BandEncoding(chunk=64), fsync=False)


def test_direct_read_equals_zarr(store: SceneStore) -> None:
    rng = np.random.default_rng(0)
    blue = rng.integers(1, 10_000, size=(150, 130), dtype=np.uint16)
    blue[:64, :64] = 0  # one chunk entirely nodata: never written
    scl = rng.integers(0, 12, size=(150, 130), dtype=np.uint8)
    store.write_bands("S2A_TEST", ITEM, {"B02_10m": band(blue), "SCL_20m": band(scl)})
    record = store.commit_record("S2A_TEST")
    assert record is not None and "c/0/0" not in record.bands["B02_10m"].files

    fast = store.open("S2A_TEST", ["B02_10m", "SCL_20m"], load=True)
    slow = store.open("S2A_TEST", ["B02_10m", "SCL_20m"]).load()
    xr.testing.assert_identical(fast, slow)
    np.testing.assert_array_equal(fast["B02_10m"].values, blue)
    np.testing.assert_array_equal(fast["SCL_20m"].values, scl)
    assert fast["B02_10m"].dtype == np.uint16 and fast["SCL_20m"].dtype == np.uint8
    assert fast["B02_10m"].encoding == slow["B02_10m"].encoding


def test_other_layouts_fall_back_to_zarr(store: SceneStore) -> None:
    values = np.arange(100 * 90, dtype=np.uint16).reshape(100, 90)
    store.write_bands("S2A_TEST", ITEM, {"B04_10m": band(values)})
    scene_dir = store.scene_path("S2A_TEST")
    record = store.commit_record("S2A_TEST")
    assert record is not None
    meta_path = scene_dir / "B04_10m" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["codecs"].append({"name": "crc32c"})  # a second checksum: not a chain it decodes
    meta_path.write_text(json.dumps(meta))
    assert read_bands(scene_dir, {"B04_10m": record.bands["B04_10m"]}, "S2A_TEST") is None


def test_a_lost_chunk_file_is_an_error_not_nodata(store: SceneStore) -> None:
    values = np.full((100, 90), 7, dtype=np.uint16)
    store.write_bands("S2A_TEST", ITEM, {"B04_10m": band(values)})
    (store.scene_path("S2A_TEST") / "B04_10m" / "c" / "1" / "1").unlink()
    with pytest.raises(DamagedSceneError, match="c/1/1"):
        store.open("S2A_TEST", ["B04_10m"], load=True)
    # Without the stat check the read itself fails: never fill values for a lost chunk.
    with pytest.raises(FileNotFoundError):
        store.open("S2A_TEST", ["B04_10m"], load=True, check=False)
