"""SceneStore: round trips, append, exact band selection, errors, integrity checks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr
from pyproj import CRS

from darts.store.scenes import (
    BandEncoding,
    DamagedSceneError,
    GridMismatchError,
    MissingBandsError,
    SceneStore,
    StoreError,
    StoreLockTimeout,
)

FIXTURE = (
    Path(__file__).parents[1] / "src/darts/sandbox/fixtures/cdse/search-sentinel-2-l2a-T36NYH.json"
)
SCENE = "S2B_MSIL2A_20200322T074609_N0500_R135_T36NYH_20230612T214223"
SIZE = 600
# Upper-left corner of T36NYH (from the recorded item's proj:transform).
X0, Y0, RES = 699960.0, 300000.0, 10.0
REFLECTANCE_ATTRS = {"raster:scale": 0.0001, "raster:offset": -0.1, "nodata": 0}


@pytest.fixture(scope="module")
def item() -> dict[str, Any]:
    """A real CDSE item: its CRS is only given per asset, as in production."""
    document = json.loads(FIXTURE.read_text())
    found = next(f for f in document["features"] if f["id"] == SCENE)
    return found


@pytest.fixture
def store(tmp_path: Path) -> SceneStore:
    return SceneStore(tmp_path / "sentinel2" / "cdse", BandEncoding(chunk=256))


def make_band(
    values: np.ndarray, attrs: dict[str, Any] | None = None, res: float = RES
) -> xr.DataArray:
    rows, cols = values.shape
    return xr.DataArray(
        values,
        dims=("y", "x"),
        coords={
            "y": Y0 - res / 2 - res * np.arange(rows),
            "x": X0 + res / 2 + res * np.arange(cols),
        },
        attrs=dict(attrs or {}),
    )


def reflectance(seed: int, nodata_cols: int = 240) -> np.ndarray:
    """Smooth field + noise, with a nodata swath on the left like an orbit edge."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    field = 2500 + 800 * np.sin(xx / 37.0) * np.cos(yy / 53.0)
    values = (field + rng.normal(0, 60, field.shape)).clip(1, 65535).astype("uint16")
    values[:, :nodata_cols] = 0
    return values


def scl(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 12, (SIZE, SIZE), dtype="uint8")


def chunk_files(store: SceneStore, band: str) -> list[Path]:
    root = store.scene_path(SCENE) / band / "c"
    return sorted(p for p in root.rglob("*") if p.is_file())


# -- round trip ------------------------------------------------------------------------


def test_round_trip_preserves_pixels_dtypes_attrs_and_georeference(
    store: SceneStore, item: dict[str, Any]
) -> None:
    b02, classes = reflectance(1), scl(2)
    extra = {"long_name": "blue", "eo:center_wavelength": np.float32(0.492)}
    written = store.write_bands(
        SCENE,
        item,
        {"B02": make_band(b02, {**REFLECTANCE_ATTRS, **extra}), "SCL": make_band(classes)},
    )
    assert written == ["B02", "SCL"]

    ds = store.open(SCENE, ["B02", "SCL"])
    assert not ds["B02"].variable._in_memory  # lazy by default
    assert ds["B02"].dtype == np.uint16 and ds["SCL"].dtype == np.uint8
    np.testing.assert_array_equal(ds["B02"].values, b02)
    np.testing.assert_array_equal(ds["SCL"].values, classes)
    attrs = ds["B02"].attrs
    assert attrs["raster:scale"] == 0.0001 and attrs["raster:offset"] == -0.1
    assert attrs["nodata"] == 0 and attrs["long_name"] == "blue"
    assert attrs["eo:center_wavelength"] == pytest.approx(0.492)
    assert attrs["proj:code"] == "EPSG:32636"
    assert attrs["proj:transform"] == [RES, 0.0, X0, 0.0, -RES, Y0]
    assert attrs["GeoTransform"] == f"{X0!r} {RES!r} 0.0 {Y0!r} 0.0 {-RES!r}"

    # Enough to rebuild the georeference with xarray + pyproj alone.
    expected = make_band(b02)
    np.testing.assert_array_equal(ds.x.values, expected.x.values)
    np.testing.assert_array_equal(ds.y.values, expected.y.values)
    ref = ds["spatial_ref"].attrs
    assert CRS.from_wkt(ref["crs_wkt"]) == CRS.from_epsg(32636)
    assert ref["spatial_ref"] == ref["crs_wkt"] and ref["GeoTransform"] == attrs["GeoTransform"]
    assert "spatial_ref" in ds.coords and list(ds.data_vars) == ["B02", "SCL"]

    eager = store.open(SCENE, ["SCL"], load=True)
    assert eager["SCL"].variable._in_memory
    np.testing.assert_array_equal(eager["SCL"].values, classes)
    assert store.verify(SCENE) == []
    assert store.item(SCENE) == item
    assert store.scenes() == [SCENE]


def test_plain_zarr_and_xarray_see_exactly_the_committed_bands(
    store: SceneStore, item: dict[str, Any]
) -> None:
    store.write_bands(SCENE, item, {"B02": make_band(reflectance(1), REFLECTANCE_ATTRS)})
    store.write_bands(SCENE, item, {"SCL": make_band(scl(2))})
    path = store.scene_path(SCENE)
    (path / ".staging").mkdir()  # something zarr would otherwise trip over

    ds = xr.open_zarr(path, chunks=None)
    assert sorted(ds.data_vars) == ["B02", "SCL"]
    # Nothing decodes DN behind the reader's back.
    assert ds["B02"].dtype == np.uint16
    assert int(ds["B02"][0, 0]) == 0
    group = zarr.open_group(path, mode="r")
    assert sorted(group.array_keys()) == ["B02", "SCL", "spatial_ref", "x", "y"]


def test_cf_packing_attributes_are_stored_as_stac_and_not_decoded(
    store: SceneStore, item: dict[str, Any]
) -> None:
    values = reflectance(3)
    cf = {"scale_factor": 0.0001, "add_offset": -0.1, "_FillValue": 0}
    store.write_bands(SCENE, item, {"B03": make_band(values, cf)})
    attrs = store.open(SCENE, ["B03"])["B03"].attrs
    assert attrs["raster:scale"] == 0.0001 and attrs["raster:offset"] == -0.1
    assert attrs["nodata"] == 0
    assert not {"scale_factor", "add_offset", "_FillValue"} & set(attrs)
    plain = xr.open_zarr(store.scene_path(SCENE), chunks=None)  # default decoding on
    assert plain["B03"].dtype == np.uint16
    np.testing.assert_array_equal(plain["B03"].values, values)


def test_nodata_chunks_are_not_written_and_read_back_as_nodata(
    store: SceneStore, item: dict[str, Any]
) -> None:
    values = reflectance(4, nodata_cols=300)  # 600² in 256² chunks: column 0 is all nodata
    store.write_bands(SCENE, item, {"B04": make_band(values, REFLECTANCE_ATTRS)})
    assert len(chunk_files(store, "B04")) == 6  # of 9
    np.testing.assert_array_equal(store.open(SCENE, ["B04"], load=True)["B04"].values, values)


def test_float_band_with_nan_nodata_round_trips(store: SceneStore, item: dict[str, Any]) -> None:
    values = np.random.default_rng(5).random((SIZE, SIZE)).astype("float32")
    values[:100] = np.nan
    store.write_bands(SCENE, item, {"prob": make_band(values, {"nodata": float("nan")})})
    ds = store.open(SCENE, ["prob"], load=True)
    np.testing.assert_array_equal(ds["prob"].values, values)
    assert ds["prob"].attrs["nodata"] == "nan"


# -- append and selection ----------------------------------------------------------------


def test_append_adds_only_new_bands_and_keeps_existing_ones(
    store: SceneStore, item: dict[str, Any]
) -> None:
    first = reflectance(1)
    assert store.write_bands(SCENE, item, {"B02": make_band(first, REFLECTANCE_ATTRS)}) == ["B02"]
    record_before = store.commit_record(SCENE)
    assert record_before is not None

    other = reflectance(99)
    written = store.write_bands(
        SCENE,
        item,
        {"B02": make_band(other, REFLECTANCE_ATTRS), "B03": make_band(other, REFLECTANCE_ATTRS)},
    )
    assert written == ["B03"]
    assert store.stored_bands(SCENE) == {"B02", "B03"}
    record = store.commit_record(SCENE)
    assert record is not None and record.bands["B02"] == record_before.bands["B02"]
    np.testing.assert_array_equal(store.open(SCENE, ["B02"], load=True)["B02"].values, first)
    # Nothing new: nothing is rewritten, not even the record.
    assert store.write_bands(SCENE, item, {"B03": make_band(other)}) == []
    assert store.commit_record(SCENE) == record


def test_open_returns_exactly_the_requested_bands_in_order(
    store: SceneStore, item: dict[str, Any]
) -> None:
    bands = {name: make_band(reflectance(i), REFLECTANCE_ATTRS) for i, name in enumerate("234")}
    store.write_bands(SCENE, item, {f"B0{k}": v for k, v in bands.items()})
    store.write_bands(SCENE, item, {"SCL": make_band(scl(7))})
    ds = store.open(SCENE, ["B04", "B02", "B04"])
    assert list(ds.data_vars) == ["B04", "B02"]
    assert set(ds.coords) == {"x", "y", "spatial_ref"}
    assert store.missing_bands(SCENE, ["B08", "B02", "B8A", "B08"]) == ["B08", "B8A"]


def test_missing_bands_raise_a_clear_error(store: SceneStore, item: dict[str, Any]) -> None:
    with pytest.raises(MissingBandsError) as absent_scene:
        store.open(SCENE, ["B02"])
    assert "not in the store" in str(absent_scene.value)

    store.write_bands(SCENE, item, {"B02": make_band(reflectance(1), REFLECTANCE_ATTRS)})
    with pytest.raises(KeyError) as caught:  # KeyError-like for generic callers
        store.open(SCENE, ["B02", "B08", "SCL"])
    error = caught.value
    assert isinstance(error, MissingBandsError) and isinstance(error, StoreError)
    assert error.missing == ["B08", "SCL"] and error.stored == ["B02"]
    assert "B08, SCL" in str(error) and SCENE in str(error)


def test_band_on_another_grid_is_refused_and_nothing_is_written(
    store: SceneStore, item: dict[str, Any]
) -> None:
    store.write_bands(SCENE, item, {"B02": make_band(reflectance(1), REFLECTANCE_ATTRS)})
    twenty_m = make_band(scl(1)[::2, ::2], res=20.0)  # SCL at its native 20 m
    with pytest.raises(GridMismatchError, match="resample"):
        store.write_bands(SCENE, item, {"SCL": twenty_m})
    shifted = make_band(scl(1)).assign_coords(x=lambda d: d.x + 5.0)
    with pytest.raises(GridMismatchError):
        store.write_bands(SCENE, item, {"SCL": shifted})
    with pytest.raises(GridMismatchError, match="EPSG:32636"):
        store.write_bands(SCENE, item, {"SCL": make_band(scl(1), {"proj:code": "EPSG:32635"})})
    assert store.stored_bands(SCENE) == {"B02"}
    assert store.verify(SCENE) == []


def test_bands_of_another_product_are_refused(store: SceneStore, item: dict[str, Any]) -> None:
    store.write_bands(SCENE, item, {"B02": make_band(reflectance(1), REFLECTANCE_ATTRS)})
    reprocessed = {**item, "id": SCENE.replace("N0500", "N0510")}
    with pytest.raises(StoreError, match="refusing"):
        store.write_bands(SCENE, reprocessed, {"B03": make_band(reflectance(2))})


def test_invalid_names_and_pure_paths(store: SceneStore, item: dict[str, Any]) -> None:
    path = store.scene_path(SCENE)
    assert path == store.root / f"{SCENE}.zarr" and not store.root.exists()
    # In the store's one hidden folder: beside the scene, not inside it.
    assert store.lock_path(SCENE) == store.root / ".darts" / "locks" / f"{SCENE}.lock"
    for bad in ("../etc", "a/b", "", ".hidden"):
        with pytest.raises(StoreError):
            store.scene_path(bad)
    for bad_band in ("x", "spatial_ref", "B 02", "../B02"):
        with pytest.raises(StoreError):
            store.write_bands(SCENE, item, {bad_band: make_band(scl(1))})
    assert store.stored_bands(SCENE) == set() and store.scenes() == []


# -- integrity ------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["delete", "truncate", "overwrite"])
def test_verify_detects_damaged_chunk_files(
    store: SceneStore, item: dict[str, Any], damage: str
) -> None:
    values = reflectance(1)
    store.write_bands(SCENE, item, {"B02": make_band(values, REFLECTANCE_ATTRS)})
    target = chunk_files(store, "B02")[-1]
    rel = target.relative_to(store.scene_path(SCENE) / "B02").as_posix()
    if damage == "delete":
        target.unlink()
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:10])
    else:  # same size, different bytes: only the content hash sees it
        target.write_bytes(bytes(len(target.read_bytes())))

    problems = store.verify(SCENE)
    assert len(problems) == 1 and "'B02'" in problems[0] and rel in problems[0]
    if damage == "overwrite":
        assert store.verify(SCENE, content=False) == []
    else:
        # open's cheap check refuses instead of returning nodata for the lost chunk.
        with pytest.raises(DamagedSceneError, match=rel):
            store.open(SCENE, ["B02"])

    # Recovery: discard the damaged band, stage it again.
    store.discard_bands(SCENE, ["B02"])
    assert store.missing_bands(SCENE, ["B02"]) == ["B02"]
    store.write_bands(SCENE, item, {"B02": make_band(values, REFLECTANCE_ATTRS)})
    assert store.verify(SCENE) == []
    np.testing.assert_array_equal(store.open(SCENE, ["B02"], load=True)["B02"].values, values)


def test_verify_reports_and_cleanup_removes_leftovers(
    store: SceneStore, item: dict[str, Any]
) -> None:
    store.write_bands(SCENE, item, {"B02": make_band(reflectance(1), REFLECTANCE_ATTRS)})
    path = store.scene_path(SCENE)
    (path / ".staging" / "B03.123.abcd" / "c").mkdir(parents=True)
    (path / ".darts_scene.json.123.abcd.tmp").write_text("{")
    (path / "B04").mkdir()

    problems = store.verify(SCENE)
    assert len(problems) == 3 and all(p.startswith("leftover:") for p in problems)
    assert store.cleanup_leftovers(SCENE) == 3
    assert store.verify(SCENE) == []
    assert sorted(os.listdir(path)) == [
        "B02",
        "darts_scene.json",
        "spatial_ref",
        "x",
        "y",
        "zarr.json",
    ]
    assert store.cleanup_leftovers(SCENE) == 0


def test_lock_is_reentrant_in_a_thread_and_times_out_for_others(
    store: SceneStore, item: dict[str, Any]
) -> None:
    import threading

    with store.lock(SCENE):
        # write_bands takes the lock itself: no self-deadlock for check-then-write callers.
        store.write_bands(SCENE, item, {"B02": make_band(reflectance(1), REFLECTANCE_ATTRS)})
        caught: list[BaseException] = []

        def other_thread() -> None:
            try:
                with store.lock(SCENE, timeout=0.2):
                    pass
            except BaseException as error:
                caught.append(error)

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert len(caught) == 1 and isinstance(caught[0], StoreLockTimeout)
    assert SCENE in str(caught[0]) and "0.2 s" in str(caught[0])
    with store.lock(SCENE, timeout=0.2):  # free again
        pass


def test_the_lock_of_the_earlier_layout_goes_on_the_next_write(
    store: SceneStore, item: dict[str, Any]
) -> None:
    # darts kept `<scene>.zarr.lock` beside each scene; the next write removes it (no
    # process holds it), and the store root then shows the scenes and one hidden folder.
    store.root.mkdir(parents=True)
    legacy = store.root / f"{SCENE}.zarr.lock"
    legacy.touch()
    store.write_bands(SCENE, item, {"B02": make_band(reflectance(1), REFLECTANCE_ATTRS)})
    assert not legacy.exists()
    assert sorted(p.name for p in store.root.iterdir()) == [".darts", f"{SCENE}.zarr"]
    assert [p.name for p in (store.root / ".darts" / "locks").iterdir()] == [f"{SCENE}.lock"]
