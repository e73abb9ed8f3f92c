"""Scene export: COGs, polygons with zonal statistics, extent, completion record."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.enums
import shapely
import xarray as xr
from affine import Affine
from scipy import ndimage

import darts
from darts.grid.scene import Grid
from darts.processing.export import (
    DEFAULT_EXPORTS,
    EXPORT_KEYS,
    STAC_ITEM_NAME,
    ExportError,
    ModelRef,
    Provenance,
    export_scene,
    is_complete,
    scene_output_dir,
)
from darts.processing.export_rasters import write_cog
from darts.processing.export_staging import staged, staged_name
from darts.processing.export_vectors import POLYGON_CONNECTIVITY, label_objects, segments_frame
from darts.processing.run_metadata import RECORD_NAME
from darts.processing.testing import strip_recording_variable
from darts.sources.decode import grid_coords

SHAPE = (300, 400)
TRANSFORM = (10.0, 0.0, 500000.0, 0.0, -10.0, 7600000.0)
METADATA = {"scene_id": "S2A_TEST", "parameters": {"binarization_threshold": 0.5}}
PROVENANCE = Provenance(
    scene_id="S2A_TEST",
    source="cdse",
    models=(ModelRef("unet.pt", "ab" * 32), ModelRef("unetpp.pt", "cd" * 32)),
    parameters={"postprocess": {"binarization_threshold": 0.5}},
    tile_id="08WMA",
    acquired=datetime(2018, 7, 14, 20, 38, 49, 24000, tzinfo=UTC),
    source_href="https://stac.example/collections/sentinel-2-l2a/items/S2A_TEST",
)


def make_grid(shape: tuple[int, int] = SHAPE) -> Grid:
    from pyproj import CRS

    return Grid(shape, TRANSFORM, "EPSG:32608", CRS.from_epsg(32608).to_wkt())


def make_scene(*, with_objects: bool = True) -> xr.Dataset:
    """Two blobs, one object made of two squares touching at a corner, a NaN strip."""
    rng = np.random.default_rng(42)
    rows, cols = SHAPE
    p = (rng.random(SHAPE) * 0.3).astype(np.float32)
    if with_objects:
        yy, xx = np.mgrid[0:rows, 0:cols]
        disk = (yy - 80) ** 2 + (xx - 100) ** 2 <= 20**2
        p[disk] = 0.6 + 0.35 * rng.random(int(disk.sum())).astype(np.float32)
        p[150:180, 250:300] = 0.7 + 0.2 * rng.random((30, 50)).astype(np.float32)
        p[240:242, 40:42] = 0.8
        p[242:244, 42:44] = 0.9
    p[:, 350:] = np.nan
    valid = np.isfinite(p).astype(np.uint8)
    binarized = ((p >= 0.5) & (valid == 1)).astype(np.uint8)
    base = np.linspace(0.02, 0.3, cols, dtype=np.float32)[None, :].repeat(rows, 0)
    coords = grid_coords(make_grid())
    dims = ("y", "x")
    return xr.Dataset(
        {
            "probabilities": (dims, p),
            "binarized": (dims, binarized),
            "valid": (dims, valid),
            "red": (dims, base),
            "green": (dims, base * 1.1),
            "blue": (dims, base * 0.9),
        },
        coords=coords,
    )


def read_band(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as src:
        info = {
            "crs": src.crs.to_epsg(),
            "transform": src.transform,
            "nodata": src.nodata,
            "dtypes": src.dtypes,
            "layout": src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT"),
            "compression": src.tags(ns="IMAGE_STRUCTURE").get("COMPRESSION"),
            "tiled": src.profile.get("tiled"),
            "descriptions": src.descriptions,
        }
        return src.read(), info


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[xr.Dataset, Path, dict]:
    scene = make_scene()
    out = tmp_path_factory.mktemp("export") / "S2A_TEST"
    written = export_scene(scene, out, metadata=METADATA, provenance=PROVENANCE)
    return scene, out, written


def test_default_exports_write_the_documented_files(exported) -> None:
    _scene, out, written = exported
    assert set(written) == {*DEFAULT_EXPORTS, "stac", "metadata"}
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "probabilities.tif",
            "binarized.tif",
            "prediction_segments.gpkg",
            "prediction_segments.parquet",
            "prediction_extent.gpkg",
            "prediction_extent.parquet",
            "thumbnail.png",
            STAC_ITEM_NAME,
            RECORD_NAME,
        ]
    )


def test_probabilities_cog(exported) -> None:
    scene, out, _ = exported
    data, info = read_band(out / "probabilities.tif")
    assert info["crs"] == 32608
    assert info["transform"] == Affine(*TRANSFORM)
    assert info["dtypes"] == ("uint8",)
    assert info["nodata"] == 255
    assert info["layout"] == "COG"
    assert info["compression"] == "DEFLATE"
    assert info["tiled"]
    p = scene["probabilities"].values
    expected = np.where(np.isfinite(p), np.rint(np.nan_to_num(p) * 100), 255).astype(np.uint8)
    np.testing.assert_array_equal(data[0], expected)
    assert data[0][:, 350:].max() == 255 and data[0][:, :350].max() <= 100


def test_binarized_cog(exported) -> None:
    scene, out, _ = exported
    data, info = read_band(out / "binarized.tif")
    assert (info["crs"], info["dtypes"], info["nodata"], info["layout"]) == (
        32608,
        ("uint8",),
        255,
        "COG",
    )
    assert info["transform"] == Affine(*TRANSFORM)
    expected = np.where(scene["valid"].values == 1, scene["binarized"].values, 255)
    np.testing.assert_array_equal(data[0], expected)


def test_large_cog_gets_overviews(tmp_path: Path) -> None:
    grid = make_grid((1500, 1300))
    band = (np.arange(1500 * 1300) % 101).astype(np.uint8).reshape(1500, 1300)
    path = write_cog(
        tmp_path / "big.tif",
        [band],
        grid,
        nodata=255,
        descriptions=["x"],
        overview_resampling="AVERAGE",
    )
    with rasterio.open(path) as src:
        assert src.overviews(1) == [2, 4]
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert (src.block_shapes[0]) == (512, 512)
        np.testing.assert_array_equal(src.read(1), band)


def object_pixels(scene: xr.Dataset) -> list[np.ndarray]:
    """Object masks from numpy/scipy alone, ordered by first pixel in row-major order."""
    labels, count = ndimage.label(scene["binarized"].values == 1, structure=np.ones((3, 3)))
    masks = [labels == k for k in range(1, count + 1)]
    return sorted(masks, key=lambda m: int(np.flatnonzero(m.ravel())[0]))


def test_segments_one_row_per_object_with_stats(exported) -> None:
    scene, out, _ = exported
    frame = gpd.read_file(out / "prediction_segments.gpkg")
    masks = object_pixels(scene)
    assert len(frame) == len(masks) == 3
    assert frame.crs.to_epsg() == 32608
    assert list(frame["object_id"]) == [1, 2, 3]
    p = scene["probabilities"].values
    for row, mask in zip(frame.itertuples(), masks, strict=True):
        values = p[mask].astype(np.float64)
        assert row.pixel_count == mask.sum()
        assert row.area_m2 == pytest.approx(mask.sum() * 100.0)
        assert row.geometry.area == pytest.approx(row.area_m2)
        assert row.geometry.geom_type == "MultiPolygon" and row.geometry.is_valid
        assert row.prob_min == pytest.approx(values.min())
        assert row.prob_max == pytest.approx(values.max())
        assert row.prob_mean == pytest.approx(values.mean())
        assert row.prob_median == pytest.approx(np.median(values))
        assert row.prob_std == pytest.approx(values.std())
        # The polygon covers exactly the object's pixel centres.
        ys, xs = np.nonzero(mask)
        centres = shapely.points(scene.x.values[xs], scene.y.values[ys])
        assert shapely.contains(row.geometry, centres).all()


def test_object_order_is_by_top_left_pixel(exported) -> None:
    _scene, out, _ = exported
    frame = gpd.read_file(out / "prediction_segments.gpkg")
    # Disk near row 80, rectangle at row 150, the diagonal pair at row 240.
    tops = [g.bounds[3] for g in frame.geometry]
    assert tops == sorted(tops, reverse=True)


def test_diagonal_touch_is_one_object(exported) -> None:
    _scene, out, _ = exported
    frame = gpd.read_file(out / "prediction_segments.gpkg")
    diagonal = frame[frame["object_id"] == 3].iloc[0]
    assert diagonal.pixel_count == 8
    assert len(diagonal.geometry.geoms) == 2
    assert diagonal.prob_min == pytest.approx(0.8) and diagonal.prob_max == pytest.approx(0.9)
    assert POLYGON_CONNECTIVITY == 8


def test_label_order_does_not_follow_the_labeller() -> None:
    mask = np.zeros((6, 6), dtype=bool)
    mask[0, 5] = mask[1, 4] = mask[2, 3] = True  # one diagonal object starting top right
    mask[1, 0] = True
    mask[5, 5] = True
    labels, count = label_objects(mask)
    assert count == 3
    assert labels[0, 5] == 1 and labels[2, 3] == 1 and labels[1, 0] == 2 and labels[5, 5] == 3


def assert_same_vectors(gpkg: Path, parquet: Path) -> None:
    a = gpd.read_file(gpkg)
    b = gpd.read_parquet(parquet)
    assert list(a.columns) == list(b.columns)
    assert a.crs == b.crs
    pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
    assert shapely.equals_exact(a.geometry.values, b.geometry.values, tolerance=0).all()


def test_gpkg_and_parquet_hold_the_same(exported) -> None:
    _scene, out, _ = exported
    assert_same_vectors(out / "prediction_segments.gpkg", out / "prediction_segments.parquet")
    assert_same_vectors(out / "prediction_extent.gpkg", out / "prediction_extent.parquet")


def test_extent_is_the_valid_footprint(exported) -> None:
    scene, out, _ = exported
    frame = gpd.read_parquet(out / "prediction_extent.parquet")
    assert len(frame) == 1
    valid_count = int(scene["valid"].values.sum())
    assert frame.iloc[0].pixel_count == valid_count
    assert frame.geometry.iloc[0].area == pytest.approx(valid_count * 100.0)
    assert frame.iloc[0].area_m2 == pytest.approx(valid_count * 100.0)
    assert frame.crs.to_epsg() == 32608
    # The NaN strip (columns 350..399) is outside: x from 503500 on.
    assert frame.geometry.iloc[0].bounds == (500000.0, 7597000.0, 503500.0, 7600000.0)


def test_record_lists_files_with_size_and_checksum(exported) -> None:
    import hashlib

    _scene, out, written = exported
    record = json.loads((out / RECORD_NAME).read_text())
    assert record["scene_id"] == "S2A_TEST"
    assert record["parameters"] == METADATA["parameters"]
    listed = {e["file"]: e for e in record["outputs"]}
    produced = [p for key, paths in written.items() if key != "metadata" for p in paths]
    assert set(listed) == {p.name for p in produced}
    for path in produced:
        assert listed[path.name]["size"] == path.stat().st_size
        assert listed[path.name]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [e["file"] for e in record["outputs"]] == sorted(listed)
    assert is_complete(out)


def test_is_complete_false_when_a_file_is_missing_or_truncated(tmp_path: Path) -> None:
    scene = make_scene()
    out = tmp_path / "scene"
    assert not is_complete(out)
    export_scene(
        scene, out, exports=["probabilities", "binarized"], metadata=METADATA, provenance=PROVENANCE
    )
    assert is_complete(out)
    tif = out / "binarized.tif"
    original = tif.read_bytes()
    tif.write_bytes(original[:-10])
    assert not is_complete(out)
    tif.unlink()
    assert not is_complete(out)
    tif.write_bytes(original)
    assert is_complete(out)
    (out / RECORD_NAME).write_text('{"outputs": [')
    assert not is_complete(out)


def test_crash_before_the_record_leaves_the_scene_incomplete(tmp_path: Path) -> None:
    scene = make_scene()
    out = tmp_path / "scene"
    export_scene(scene, out, metadata=METADATA, provenance=PROVENANCE)
    assert is_complete(out)
    # A re-export that fails part-way (no DEM layers) must not keep the old record.
    with pytest.raises(ExportError, match="dem"):
        export_scene(
            scene, out, exports=["probabilities", "dem"], metadata=METADATA, provenance=PROVENANCE
        )
    assert not (out / RECORD_NAME).exists()
    assert not is_complete(out)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_outputs_do_not_depend_on_export_order(tmp_path: Path) -> None:
    scene = make_scene()
    keys = [*DEFAULT_EXPORTS, "optical"]
    a = export_scene(scene, tmp_path / "a", exports=keys, metadata=METADATA, provenance=PROVENANCE)
    b = export_scene(
        scene,
        tmp_path / "b",
        exports=list(reversed(keys)),
        metadata=METADATA,
        provenance=PROVENANCE,
    )
    assert a.keys() == b.keys()
    for key in a:
        for path_a, path_b in zip(a[key], b[key], strict=True):
            assert path_a.name == path_b.name
            assert path_a.read_bytes() == path_b.read_bytes(), path_a.name


def test_input_dataset_is_not_modified(tmp_path: Path) -> None:
    scene = make_scene()
    before = scene.copy(deep=True)
    export_scene(
        scene, tmp_path / "s", exports=EXPORT_KEYS[:6], metadata=METADATA, provenance=PROVENANCE
    )
    xr.testing.assert_identical(scene, before)
    assert scene["probabilities"].dtype == np.float32


def test_scene_without_detections(tmp_path: Path) -> None:
    scene = make_scene(with_objects=False)
    out = tmp_path / "empty"
    export_scene(scene, out, metadata=METADATA, provenance=PROVENANCE)
    frame = gpd.read_file(out / "prediction_segments.gpkg")
    assert len(frame) == 0
    assert {"object_id", "pixel_count", "area_m2", "prob_mean"} <= set(frame.columns)
    assert len(gpd.read_parquet(out / "prediction_segments.parquet")) == 0
    assert is_complete(out)


def test_optional_exports(tmp_path: Path) -> None:
    scene = make_scene()
    scene["slope"] = scene["red"] * 100
    scene["tc_brightness"] = xr.full_like(scene["valid"], 7)
    written = export_scene(
        scene,
        tmp_path / "s",
        exports=["optical", "dem", "tcvis"],
        metadata=METADATA,
        provenance=PROVENANCE,
    )
    data, info = read_band(written["optical"][0])
    assert info["descriptions"] == ("red", "green", "blue")
    assert info["dtypes"] == ("float32",) * 3 and np.isnan(info["nodata"])
    np.testing.assert_array_equal(data[1], scene["green"].values)
    data, info = read_band(written["dem"][0])
    assert info["descriptions"] == ("slope",)
    data, info = read_band(written["tcvis"][0])
    assert info["dtypes"] == ("uint8",) and (data == 7).all()
    assert info["layout"] == "COG"


def test_layers_override_names(tmp_path: Path) -> None:
    scene = make_scene()
    written = export_scene(
        scene,
        tmp_path / "s",
        exports=["dem"],
        metadata=METADATA,
        provenance=PROVENANCE,
        layers={"dem": ["blue"]},
    )
    _data, info = read_band(written["dem"][0])
    assert info["descriptions"] == ("blue",)


def test_bad_requests_are_refused(tmp_path: Path) -> None:
    scene = make_scene()
    with pytest.raises(ExportError, match="unknown export"):
        export_scene(
            scene,
            tmp_path / "x",
            exports=["probabilities", "png"],
            metadata={},
            provenance=PROVENANCE,
        )
    with pytest.raises(ExportError, match="outputs"):
        export_scene(
            scene,
            tmp_path / "x",
            exports=["binarized"],
            metadata={"outputs": []},
            provenance=PROVENANCE,
        )
    with pytest.raises(ExportError, match="valid"):
        export_scene(scene.drop_vars("valid"), tmp_path / "x", metadata={}, provenance=PROVENANCE)
    with pytest.raises(ExportError, match="georeferenced"):
        export_scene(
            scene.drop_vars("spatial_ref"), tmp_path / "x", metadata={}, provenance=PROVENANCE
        )


def test_stale_temp_files_are_cleared(tmp_path: Path) -> None:
    out = tmp_path / "s"
    out.mkdir()
    stale = staged_name(out / "probabilities.tif")
    stale.write_bytes(b"half a file")
    export_scene(
        make_scene(), out, exports=["probabilities"], metadata=METADATA, provenance=PROVENANCE
    )
    assert not stale.exists()
    assert is_complete(out)


def test_scene_output_dir(tmp_path: Path) -> None:
    assert scene_output_dir(tmp_path, "S2A_X") == tmp_path / "S2A_X"
    for bad in ("", "..", "a/b"):
        with pytest.raises(ExportError):
            scene_output_dir(tmp_path, bad)


def test_failed_writer_leaves_neither_final_nor_temp_file(tmp_path: Path) -> None:
    final = tmp_path / "probabilities.tif"
    with pytest.raises(RuntimeError), staged(final) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_checksum_verification_catches_same_size_corruption(tmp_path: Path) -> None:
    out = tmp_path / "s"
    export_scene(make_scene(), out, exports=["binarized"], metadata=METADATA, provenance=PROVENANCE)
    tif = out / "binarized.tif"
    data = bytearray(tif.read_bytes())
    data[-1] ^= 0xFF
    tif.write_bytes(bytes(data))
    assert is_complete(out)
    assert not is_complete(out, verify_checksums=True)


def test_geographic_crs_areas_are_measured_on_the_ellipsoid() -> None:
    from pyproj import CRS

    grid = Grid((20, 20), (0.001, 0.0, 10.0, 0.0, -0.001, 70.0), "EPSG:4326", CRS(4326).to_wkt())
    binarized = np.zeros((20, 20), dtype=np.uint8)
    binarized[5:10, 5:10] = 1
    dims = ("y", "x")
    scene = xr.Dataset(
        {
            "probabilities": (dims, binarized.astype(np.float32)),
            "binarized": (dims, binarized),
            "valid": (dims, np.ones((20, 20), dtype=np.uint8)),
        },
        coords=grid_coords(grid),
    )
    frame = segments_frame(scene, grid, PROVENANCE)
    # 25 pixels of 0.001° at 70° N: ~111.6 m north-south × ~38.2 m east-west each.
    assert frame.iloc[0].area_m2 == pytest.approx(25 * 111.6 * 38.2, rel=0.01)


# -- bounded memory: strips of rows ------------------------------------------------------


def test_encodings_and_relabelling_in_strips_equal_the_whole_scene(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from darts.processing import export_rasters, export_vectors

    scene = make_scene()
    p, valid, binarized = (scene[n].values for n in ("probabilities", "valid", "binarized"))
    whole = (
        export_rasters.encode_probabilities(p, valid),
        export_rasters.encode_binarized(binarized, valid),
        label_objects(binarized == 1),
    )
    keep = np.isfinite(p) & (valid == 1)
    expected = np.where(keep, np.rint(np.clip(np.nan_to_num(p), 0, 1) * 100), 255)
    np.testing.assert_array_equal(whole[0], expected.astype(np.uint8))
    np.testing.assert_array_equal(whole[1], np.where(valid == 1, binarized, 255))
    monkeypatch.setattr(export_rasters, "_ROWS", 7)
    monkeypatch.setattr(export_vectors, "_RELABEL_ROWS", 5)
    np.testing.assert_array_equal(export_rasters.encode_probabilities(p, valid), whole[0])
    np.testing.assert_array_equal(export_rasters.encode_binarized(binarized, valid), whole[1])
    labels, count = label_objects(binarized == 1)
    assert count == whole[2][1] and count > 2
    np.testing.assert_array_equal(labels, whole[2][0])


def test_lazy_layers_are_written_a_strip_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from darts.processing import export_rasters

    monkeypatch.setattr(export_rasters, "_ROWS", 64)
    scene = make_scene()
    eager = export_scene(
        scene, tmp_path / "eager", exports=["optical"], metadata=METADATA, provenance=PROVENANCE
    )
    lazy = scene.copy()
    readers = {}
    for name in ("red", "green", "blue"):
        # float64: converted per strip on the way out
        lazy[name], readers[name] = strip_recording_variable(scene[name].values.astype(np.float64))
    written = export_scene(
        lazy, tmp_path / "lazy", exports=["optical"], metadata=METADATA, provenance=PROVENANCE
    )
    for name, reader in readers.items():
        assert sum(reader.rows) == SHAPE[0] and max(reader.rows) <= 64, name
    (a, info), (b, _info) = read_band(eager["optical"][0]), read_band(written["optical"][0])
    assert info["dtypes"] == ("float32",) * 3
    np.testing.assert_array_equal(a, b)


# -- provenance in every output ----------------------------------------------------------


def test_polygons_of_two_scenes_concatenate_into_one_geoparquet(tmp_path: Path) -> None:
    """The provenance columns have one type whatever the scene (also without objects),
    so layers of several scenes merge into one table that says where each row is from."""
    import pyarrow.parquet as pq

    other = replace(
        PROVENANCE,
        scene_id="S2B_OTHER",
        tile_id="08WMB",
        acquired=datetime(2019, 8, 1, 21, 0, 0, tzinfo=UTC),
        models=(ModelRef("unet.pt", "ab" * 32),),
    )
    empty = replace(PROVENANCE, scene_id="S2A_EMPTY", tile_id=None)
    export_scene(make_scene(), tmp_path / "a", metadata=METADATA, provenance=PROVENANCE)
    export_scene(make_scene(), tmp_path / "b", metadata=METADATA, provenance=other)
    export_scene(
        make_scene(with_objects=False), tmp_path / "c", metadata=METADATA, provenance=empty
    )
    layers = [tmp_path / name / "prediction_segments.parquet" for name in ("a", "b", "c")]
    schemas = [pq.read_schema(path).remove_metadata() for path in layers]
    assert schemas[0].equals(schemas[1]) and schemas[0].equals(schemas[2])
    assert str(schemas[2].field("scene_id").type) == "large_string"
    assert str(schemas[2].field("scene_datetime").type) == "timestamp[ms, tz=UTC]"

    merged = pd.concat([gpd.read_parquet(path) for path in layers], ignore_index=True)
    merged.to_parquet(tmp_path / "merged.parquet")
    back = gpd.read_parquet(tmp_path / "merged.parquet")
    assert list(back.columns[:5]) == [
        "scene_id",
        "tile_id",
        "scene_datetime",
        "source",
        "models",
    ]
    assert back.crs.to_epsg() == 32608
    assert back["scene_id"].value_counts().to_dict() == {"S2A_TEST": 3, "S2B_OTHER": 3}
    first, second = back.iloc[0], back.iloc[3]
    assert (first.scene_id, first.tile_id, first.source) == ("S2A_TEST", "08WMA", "cdse")
    assert first.scene_datetime == pd.Timestamp("2018-07-14T20:38:49.024Z")
    assert first.models == f"unet.pt@{'ab' * 6}; unetpp.pt@{'cd' * 6}"
    assert (second.scene_id, second.tile_id) == ("S2B_OTHER", "08WMB")
    assert second.scene_datetime == pd.Timestamp("2019-08-01T21:00:00Z")
    assert second.models == f"unet.pt@{'ab' * 6}"
    assert list(back.loc[back.scene_id == "S2B_OTHER", "object_id"]) == [1, 2, 3]

    # The GeoPackage has the same columns, and the extent layer names its scene too.
    gpkg = gpd.read_file(tmp_path / "b" / "prediction_segments.gpkg")
    assert list(gpkg.columns) == list(back.columns)
    extent = gpd.read_parquet(tmp_path / "c" / "prediction_extent.parquet")
    assert list(extent["scene_id"]) == ["S2A_EMPTY"] and extent["tile_id"].isna().all()


def test_geotiffs_carry_provenance_tags_scale_and_colour_table(exported) -> None:
    import hashlib

    _scene, out, _ = exported
    canonical = json.dumps(
        PROVENANCE.parameters, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    expected = {
        "scene_id": "S2A_TEST",
        "tile_id": "08WMA",
        "datetime": "2018-07-14T20:38:49.024Z",
        "source": "cdse",
        "models": f"unet.pt@{'ab' * 32}; unetpp.pt@{'cd' * 32}",
        "darts_version": darts.__version__,
        "parameters_sha256": hashlib.sha256(canonical.encode()).hexdigest(),
    }
    for name in ("probabilities.tif", "binarized.tif"):
        with rasterio.open(out / name) as src:
            tags = src.tags()
            assert {key: tags.get(key) for key in expected} == expected, name
    with rasterio.open(out / "probabilities.tif") as src:
        assert src.scales == (0.01,) and src.offsets == (0.0,)
        assert src.descriptions == ("probability_percent",)
        # What a GIS shows after applying the scale: the probability.
        p = src.read(1, masked=True)
        assert float(p.min()) * src.scales[0] >= 0.0 and float(p.max()) * src.scales[0] <= 1.0
    with rasterio.open(out / "binarized.tif") as src:
        assert src.colorinterp[0] == rasterio.enums.ColorInterp.palette
        colours = src.colormap(1)
        assert colours[1] == (255, 0, 255, 255)
        assert colours[0] == (0, 0, 0, 255)
        assert colours[255] != colours[1] and colours[255] != colours[0]
        assert src.descriptions == ("detection",) and src.scales == (1.0,)
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"


def test_optional_layers_carry_the_provenance_too(tmp_path: Path) -> None:
    written = export_scene(
        make_scene(), tmp_path / "s", exports=["optical"], metadata=METADATA, provenance=PROVENANCE
    )
    with rasterio.open(written["optical"][0]) as src:
        assert src.tags()["scene_id"] == "S2A_TEST"
        assert src.tags()["parameters_sha256"] == PROVENANCE.parameters_sha256


def test_stac_item_describes_every_output_and_is_in_the_record(exported) -> None:
    import hashlib

    import pystac
    from pyproj import Transformer
    from pystac.validation import validate_dict

    _scene, out, written = exported
    item_path = out / STAC_ITEM_NAME
    document = json.loads(item_path.read_text())
    # The core schema, bundled with pystac (the extension schemas would need the network).
    validate_dict(document, extensions=[])
    assert document["stac_version"] == "1.1.0"
    assert document["id"] == "S2A_TEST"
    assert document["properties"]["datetime"] == "2018-07-14T20:38:49.024Z"
    assert document["properties"]["grid:code"] == "MGRS-08WMA"
    assert document["properties"]["darts:models"] == [
        {"name": "unet.pt", "sha256": "ab" * 32},
        {"name": "unetpp.pt", "sha256": "cd" * 32},
    ]
    assert document["properties"]["darts:parameters"] == dict(PROVENANCE.parameters)
    assert document["properties"]["darts:parameters_sha256"] == PROVENANCE.parameters_sha256
    assert document["links"] == [
        {
            "rel": "derived_from",
            "href": PROVENANCE.source_href,
            "title": "cdse scene S2A_TEST",
            "type": "application/geo+json",
        }
    ]

    # Every output but the record, with size and SHA-256 multihash; the record too.
    assets = document["assets"]
    produced = [
        p for key, paths in written.items() if key not in ("stac", "metadata") for p in paths
    ]
    by_href = {a["href"]: a for a in assets.values()}
    assert set(by_href) == {f"./{p.name}" for p in produced} | {f"./{RECORD_NAME}"}
    for path in produced:
        asset = by_href[f"./{path.name}"]
        assert asset["file:size"] == path.stat().st_size
        assert asset["file:checksum"] == "1220" + hashlib.sha256(path.read_bytes()).hexdigest()
        assert asset["roles"] == (["thumbnail"] if path.suffix == ".png" else ["data"])
    assert by_href[f"./{RECORD_NAME}"]["roles"] == ["metadata"]
    assert {"prediction_segments_gpkg", "prediction_segments_parquet"} <= set(assets)
    probabilities = assets["probabilities"]
    assert probabilities["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
    assert probabilities["proj:code"] == "EPSG:32608"
    assert probabilities["proj:shape"] == list(SHAPE)
    assert probabilities["proj:transform"] == list(TRANSFORM)
    assert probabilities["bands"] == [{"name": "probability_percent"}]
    assert probabilities["raster:bands"] == [
        {"data_type": "uint8", "nodata": 255, "scale": 0.01, "offset": 0.0}
    ]
    assert assets["binarized"]["raster:bands"] == [{"data_type": "uint8", "nodata": 255}]

    # Without a footprint from the source: the grid's outline in EPSG:4326.
    to_lonlat = Transformer.from_crs(32608, 4326, always_xy=True)
    west, south = to_lonlat.transform(500000.0, 7597000.0)
    east, north = to_lonlat.transform(504000.0, 7600000.0)
    lon0, lat0, lon1, lat1 = document["bbox"]
    eps = 1e-7  # coordinates are kept to 7 decimals (~1 cm)
    assert lon0 <= west + eps and lat0 <= south + eps
    assert lon1 >= east - eps and lat1 >= north - eps
    assert lon1 - lon0 < 0.2 and lat1 - lat0 < 0.05

    # pystac reads it, resolves the relative hrefs beside the file and understands the
    # extension fields.
    from pystac.extensions.file import FileExtension
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import RasterExtension

    item = pystac.Item.from_file(str(item_path))
    asset = item.assets["probabilities"]
    assert Path(asset.get_absolute_href()) == out / "probabilities.tif"
    assert RasterExtension.ext(asset).bands[0].scale == 0.01
    assert ProjectionExtension.ext(asset).code == "EPSG:32608"
    assert FileExtension.ext(asset).size == (out / "probabilities.tif").stat().st_size
    assert item.datetime == datetime(2018, 7, 14, 20, 38, 49, 24000, tzinfo=UTC)

    # The record lists the STAC item with its checksum; the item holds no local path.
    record = json.loads((out / RECORD_NAME).read_text())
    entry = {e["file"]: e for e in record["outputs"]}[STAC_ITEM_NAME]
    assert entry["export"] == "stac"
    assert entry["sha256"] == hashlib.sha256(item_path.read_bytes()).hexdigest()
    assert str(out) not in item_path.read_text()


def test_stac_item_takes_the_source_footprint_and_a_composite_span(tmp_path: Path) -> None:
    footprint = {
        "type": "Polygon",
        "coordinates": [[[-135.0, 68.4], [-134.9, 68.4], [-134.9, 68.5], [-135.0, 68.4]]],
    }
    mosaic = replace(
        PROVENANCE,
        source="cdse-mosaic",
        source_href=None,
        footprint=footprint,
        acquired=datetime(2024, 7, 1, tzinfo=UTC),
        period_start=datetime(2024, 7, 1, tzinfo=UTC),
        period_end=datetime(2024, 10, 1, tzinfo=UTC),
    )
    out = tmp_path / "m"
    export_scene(make_scene(), out, exports=["binarized"], metadata=METADATA, provenance=mosaic)
    document = json.loads((out / STAC_ITEM_NAME).read_text())
    assert document["geometry"]["coordinates"][0][0] == [-135.0, 68.4]
    assert document["bbox"] == [-135.0, 68.4, -134.9, 68.5]
    assert document["properties"]["start_datetime"] == "2024-07-01T00:00:00Z"
    assert document["properties"]["end_datetime"] == "2024-10-01T00:00:00Z"
    # No self link in the source document: the source item is named by its id.
    assert document["links"][0]["href"] == "S2A_TEST"
    assert document["properties"]["darts:source"] == "cdse-mosaic"


def test_provenance_digest_and_times() -> None:
    same = replace(
        PROVENANCE,
        scene_id="S2B_OTHER",
        parameters={"postprocess": {"binarization_threshold": 0.5}},
    )
    assert same.parameters_sha256 == PROVENANCE.parameters_sha256  # one run, one digest
    other = replace(PROVENANCE, parameters={"postprocess": {"binarization_threshold": 0.6}})
    assert other.parameters_sha256 != PROVENANCE.parameters_sha256
    naive = replace(PROVENANCE, acquired=datetime(2018, 7, 14, 20, 38, 49))
    assert naive.acquired_text() == "2018-07-14T20:38:49Z"
    with pytest.raises(ValueError, match="plain JSON"):
        replace(PROVENANCE, parameters={"path": Path("/x")})
