"""The built synthetic world: determinism, item shapes, file integrity, consistency.

The small world comes from the session's shared, cached fixture
(``darts.sandbox.testing.sandbox_world``); the build lock and determinism are checked on
a reduced spec, built by two threads at once and once more sequentially.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pystac
import pytest
import rasterio
from rasterio.features import geometry_mask
from shapely.geometry import shape

from darts.sandbox.layout import (
    CDSE_BUCKET,
    PGC_DATA_PLACEHOLDER,
    TCVIS_DATA_PLACEHOLDER,
    WorldLayout,
)
from darts.sandbox.world import build as build_module
from darts.sandbox.world import build_world
from darts.sandbox.world.build import build_spec_into
from darts.sandbox.world.encode import multihash_sha3
from darts.sandbox.world.spec import MAIN, ZONE9, MosaicSpec, TileWindow, WorldSpec, small_spec

FIXTURE = Path(__file__).resolve().parents[1] / "src/darts/sandbox/fixtures/cdse"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def world(sandbox_world: WorldLayout) -> WorldLayout:
    """The small world, built once per session (and cached) by darts.sandbox.testing."""
    return sandbox_world


@pytest.fixture(scope="session")
def manifest(world: WorldLayout) -> dict[str, Any]:
    return json.loads(world.manifest.read_text())


def _items(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def _s3_path(world: WorldLayout, href: str) -> Path:
    prefix = f"s3://{CDSE_BUCKET}/"
    assert href.startswith(prefix)
    return world.s3_object(CDSE_BUCKET, href[len(prefix) :])


def _check_file(path: Path, asset: dict[str, Any]) -> None:
    data = path.read_bytes()
    assert len(data) == asset["file:size"], path
    if "file:checksum" in asset:
        assert multihash_sha3(data) == asset["file:checksum"], path


def _main_scenes(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in manifest["scenes"] if s["tile"] == MAIN.tile]


# --- the manifest and the build --------------------------------------------------------


def test_build_is_idempotent_and_fast_when_cached(world: WorldLayout) -> None:
    import time

    start = time.perf_counter()
    again = build_world(world.root.parent, "small", 0)
    assert again == world and time.perf_counter() - start < 1.0


def test_manifest_describes_the_world(world: WorldLayout, manifest: dict[str, Any]) -> None:
    assert manifest["name"] == "small" and manifest["seed"] == 0
    assert [t["id"] for t in manifest["tiles"]] == ["08WNB", "08WPB", "09WUS"]
    assert 8 <= len(_main_scenes(manifest)) <= 10
    assert sum(s["tile"] == ZONE9.tile for s in manifest["scenes"]) >= 230
    assert 8 <= manifest["slumps_in_main_window"] <= 20
    assert len(manifest["dem_tiles"]["10m"]) >= 2 and manifest["dem_tiles"]["2m"]
    assert len(manifest["tcvis_items"]) == 4 and manifest["mosaics"]
    files = [p for p in world.root.rglob("*") if p.is_file() and p != world.manifest]
    assert manifest["file_count"] == len(files)
    assert manifest["total_bytes"] == sum(p.stat().st_size for p in files)


def test_main_scenes_differ_in_cloud_and_snow(manifest: dict[str, Any]) -> None:
    scenes = _main_scenes(manifest)
    clouds = [s["eo:cloud_cover"] for s in scenes]
    assert min(clouds) < 1 and max(clouds) > 40
    assert sum(c < 10 for c in clouds) >= 3
    assert max(s["eo:snow_cover"] for s in scenes) > 20


# --- Sentinel-2 items -----------------------------------------------------------------


def test_l2a_items_have_the_recorded_shape(world: WorldLayout) -> None:
    recorded = json.loads((FIXTURE / "search-sentinel-2-l2a-T36NYH.json").read_text())
    template = recorded["features"][0]
    items = _items(world.cdse_items / "sentinel-2-l2a")
    for item in items[:: max(1, len(items) // 12)]:
        assert set(item) == set(template)
        assert set(item["properties"]) == set(template["properties"])
        assert list(item["assets"]) == list(template["assets"])
        for key, asset in item["assets"].items():
            assert set(asset) == set(template["assets"][key]), key
        props = item["properties"]
        tile = props["grid:code"].removeprefix("MGRS-")
        assert f"_T{tile}_" in item["id"]
        assert item["id"].split("_")[2] == props["datetime"][:19].replace("-", "").replace(":", "")
        assert f"_R{props['sat:relative_orbit']:03d}_" in item["id"]
        assert item["id"].startswith("S2" + props["platform"][-1].upper())
        assert props["processing:version"].replace(".", "") == item["id"].split("_")[3][1:]
        pystac.Item.from_dict(item)


def test_l2a_assets_resolve_with_matching_size_and_checksum(
    world: WorldLayout, manifest: dict[str, Any]
) -> None:
    ids = [s["id"] for s in _main_scenes(manifest)[:2]]
    ids += [s["id"] for s in manifest["scenes"] if s["tile"] == ZONE9.tile][:1]
    for item_id in ids:
        item = pystac.Item.from_file(str(world.cdse_items / "sentinel-2-l2a" / f"{item_id}.json"))
        for key, asset in item.assets.items():
            raw = asset.to_dict()
            if key == "Product":
                assert raw["href"].startswith("https://")
                continue
            href = raw["alternate"]["s3"]["href"] if key == "thumbnail" else raw["href"]
            _check_file(_s3_path(world, href), raw)


def test_band_files_match_their_projection_fields(
    world: WorldLayout, manifest: dict[str, Any]
) -> None:
    item = json.loads(
        (
            world.cdse_items / "sentinel-2-l2a" / f"{_main_scenes(manifest)[0]['id']}.json"
        ).read_text()
    )
    for key in ("B02_10m", "B05_20m", "B09_60m", "SCL_20m", "TCI_10m"):
        asset = item["assets"][key]
        with rasterio.open(_s3_path(world, asset["href"])) as ds:
            assert ds.driver == "JP2OpenJPEG"
            assert f"EPSG:{ds.crs.to_epsg()}" == asset["proj:code"]
            assert list(ds.shape) == asset["proj:shape"]
            assert list(ds.transform)[:6] == asset["proj:transform"]
            assert ds.dtypes[0] == asset["data_type"]


def _read(world: WorldLayout, item: dict[str, Any], key: str) -> np.ndarray:
    with rasterio.open(_s3_path(world, item["assets"][key]["href"])) as ds:
        return ds.read()


def test_scl_statistics_agree_with_scl_pixels(world: WorldLayout, manifest: dict[str, Any]) -> None:
    for scene in _main_scenes(manifest):
        item = json.loads((world.cdse_items / "sentinel-2-l2a" / f"{scene['id']}.json").read_text())
        scl = _read(world, item, "SCL_20m")[0]
        counts = np.bincount(scl.ravel(), minlength=12)
        valid = counts[1:].sum()
        props = item["properties"]
        stats = props["statistics"]
        assert stats["nodata"] == pytest.approx(100 * counts[0] / counts.sum(), abs=1e-5)
        assert stats["vegetation"] == pytest.approx(100 * counts[4] / valid, abs=1e-5)
        assert stats["water"] == pytest.approx(100 * counts[6] / valid, abs=1e-5)
        assert stats["not_vegetated"] == pytest.approx(100 * counts[5] / valid, abs=1e-5)
        cloud = 100 * (counts[8] + counts[9] + counts[10]) / valid
        assert props["eo:cloud_cover"] == pytest.approx(cloud, abs=0.006)
        assert props["eo:snow_cover"] == pytest.approx(100 * counts[11] / valid, abs=0.006)
        classes = {
            c["value"]: c["percentage"] for c in item["assets"]["SCL_20m"]["classification:classes"]
        }
        assert classes[4] == stats["vegetation"]


def test_reflectances_are_plausible(world: WorldLayout, manifest: dict[str, Any]) -> None:
    clear = min(_main_scenes(manifest), key=lambda s: s["eo:cloud_cover"])
    item = json.loads((world.cdse_items / "sentinel-2-l2a" / f"{clear['id']}.json").read_text())
    scl = _read(world, item, "SCL_20m")[0].repeat(2, axis=0).repeat(2, axis=1)
    red = _read(world, item, "B04_10m")[0] * 1e-4 - 0.1
    nir = _read(world, item, "B08_10m")[0] * 1e-4 - 0.1
    tundra = scl == 4
    assert 0.25 <= np.median(nir[tundra]) <= 0.35
    assert 0.03 <= np.median(red[tundra]) <= 0.06
    assert np.median(nir[scl == 6]) < 0.05


def test_swath_edge_scene_has_nodata_and_a_cut_footprint(
    world: WorldLayout, manifest: dict[str, Any]
) -> None:
    edge = next(s for s in _main_scenes(manifest) if s["datetime"].startswith("2020-07-21"))
    item = json.loads((world.cdse_items / "sentinel-2-l2a" / f"{edge['id']}.json").read_text())
    band = _read(world, item, "B02_10m")[0]
    assert (band == 0).mean() > 0.1 and (band != 0).mean() > 0.5
    footprint = shape(item["geometry"])
    full = json.loads(
        (
            world.cdse_items / "sentinel-2-l2a" / f"{_main_scenes(manifest)[0]['id']}.json"
        ).read_text()
    )
    assert footprint.area < 0.9 * shape(full["geometry"]).area


# --- slumps across layers -------------------------------------------------------------


def _ring_masks(polygon, transform, shape_: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    inside = ~geometry_mask([polygon.buffer(-15)], shape_, transform)
    ring = ~geometry_mask([polygon.buffer(60)], shape_, transform) & geometry_mask(
        [polygon.buffer(20)], shape_, transform
    )
    return inside, ring


def test_slumps_are_visible_in_optical_and_dem(
    world: WorldLayout, manifest: dict[str, Any]
) -> None:
    truth = gpd.read_parquet(world.truth)
    assert list(truth.columns) == ["id", "area_m2", "geometry"] and truth.crs.to_epsg() == 4326
    assert (truth.area_m2 > 30 * 100).all()
    clear = min(_main_scenes(manifest), key=lambda s: s["eo:cloud_cover"])
    item = json.loads((world.cdse_items / "sentinel-2-l2a" / f"{clear['id']}.json").read_text())
    with rasterio.open(_s3_path(world, item["assets"]["B04_10m"]["href"])) as ds:
        red, transform, crs = ds.read(1) * 1e-4 - 0.1, ds.transform, ds.crs
    window = shape(item["geometry"])
    in_scene = truth[truth.within(window)]
    assert 8 <= len(in_scene) <= 20
    brighter = deeper = 0
    for polygon in in_scene.to_crs(crs).geometry:
        inside, ring = _ring_masks(polygon, transform, red.shape)
        brighter += red[inside].mean() > red[ring].mean() + 0.03
    dem_files = sorted((world.pgc_data / "arcticdem/mosaics/v4.1/10m").rglob("*_dem.tif"))
    for polygon in in_scene.to_crs(3413).geometry:
        left, bottom, right, top = polygon.buffer(100).bounds
        for path in dem_files:
            with rasterio.open(path) as ds:
                b = ds.bounds
                if not (
                    b.left <= left and right <= b.right and b.bottom <= bottom and top <= b.top
                ):
                    continue  # slumps cut by a DEM tile edge are skipped
                win = ds.window(left, bottom, right, top).round_offsets().round_lengths()
                dem = ds.read(1, window=win)
                inside, ring = _ring_masks(polygon, ds.window_transform(win), dem.shape)
                deeper += dem[inside].mean() < dem[ring].mean() - 0.5
    assert brighter == len(in_scene)
    assert deeper >= 0.6 * len(in_scene)


def test_tcvis_shows_slumps(world: WorldLayout) -> None:
    truth = gpd.read_parquet(world.truth)
    for period in ("2000-2019", "2005-2024"):
        path = next((world.tcvis_data / period).glob("*.tif"))
        with rasterio.open(path) as ds:
            assert ds.count == 3 and ds.dtypes == ("uint8",) * 3 and ds.crs.to_epsg() == 4326
            assert ds.descriptions == ("tc_brightness", "tc_greenness", "tc_wetness")
            data = ds.read()
            inside = np.zeros(ds.shape, dtype=bool)
            for polygon in truth.geometry:
                inside |= ~geometry_mask([polygon.buffer(-0.0005)], ds.shape, ds.transform)
            assert data[0][inside].mean() > data[0][~inside].mean() + 20
            assert data[1][inside].mean() < data[1][~inside].mean() - 20


# --- other collections ----------------------------------------------------------------


def test_mosaic_items(world: WorldLayout) -> None:
    recorded = json.loads((FIXTURE / "search-sentinel-2-global-mosaics-31SDV.json").read_text())
    template = recorded["features"][0]
    items = _items(world.cdse_items / "sentinel-2-global-mosaics")
    assert len(items) >= 3
    for item in items:
        assert list(item["assets"]) == list(template["assets"])
        assert set(item["properties"]) == set(template["properties"])
        assert item["id"].startswith("Sentinel-2_mosaic_") and item["id"].endswith("_0_0")
        pystac.Item.from_dict(item)
        for key in ("B04", "observations"):
            asset = item["assets"][key]
            path = _s3_path(world, asset["href"])
            assert "Global-Mosaics/Sentinel-2/S2MSI_L3__MCQ/" in asset["href"]
            _check_file(path, asset)
            with rasterio.open(path) as ds:
                assert ds.dtypes[0] == asset["data_type"] and ds.nodata == asset["nodata"]
                assert list(ds.shape) == asset["proj:shape"]


def test_arcticdem_items_files_and_index(world: WorldLayout, manifest: dict[str, Any]) -> None:
    for res in (2, 10, 32):
        collection = f"arcticdem-mosaics-v4.1-{res}m"
        items = _items(world.pgc_items / collection)
        assert sorted(i["id"] for i in items) == manifest["dem_tiles"][f"{res}m"]
        for item in items:
            pystac.Item.from_dict(item)
            for asset in item["assets"].values():
                assert asset["href"].startswith(PGC_DATA_PLACEHOLDER)
                _check_file(world.pgc_data / asset["href"][len(PGC_DATA_PLACEHOLDER) :], asset)
            dem = item["assets"]["dem"]
            with rasterio.open(world.pgc_data / dem["href"][len(PGC_DATA_PLACEHOLDER) :]) as ds:
                assert ds.crs.to_epsg() == 3413 and ds.nodata == -9999 and ds.dtypes[0] == "float32"
                assert ds.shape == {2: (25000, 25000), 10: (10000, 10000), 32: (3125, 3125)}[res]
                assert ds.overviews(1)
            assert dem["file:size"] < 30_000_000  # sparse
        index = world.pgc_index / f"ArcticDEM_Mosaic_Index_v4_1_{res}m.parquet"
        table = pq.read_table(index)
        assert {"dem_id", "tile", "supertile", "gsd", "fileurl", "s3url", "geometry"} <= set(
            table.column_names
        )
        frame = gpd.read_parquet(index)
        assert frame.crs.to_epsg() == 3413
        assert sorted(frame.dem_id) == manifest["dem_tiles"][f"{res}m"]
        assert all(u.startswith(PGC_DATA_PLACEHOLDER) for u in frame.fileurl)
        for url in frame.s3url:
            assert (world.pgc_data / url[len(PGC_DATA_PLACEHOLDER) :]).is_file()


def test_tcvis_items(world: WorldLayout) -> None:
    folders = sorted(p.name for p in world.tcvis_items.iterdir())
    assert folders == ["tcvis-2000-2019", "tcvis-2001-2020", "tcvis-2003-2022", "tcvis-2005-2024"]
    for folder in folders:
        (item,) = _items(world.tcvis_items / folder)
        assert item["properties"]["tcvis:period"] == folder.removeprefix("tcvis-")
        pystac.Item.from_dict(item)
        asset = item["assets"]["data"]
        assert asset["href"].startswith(TCVIS_DATA_PLACEHOLDER)
        _check_file(world.tcvis_data / asset["href"][len(TCVIS_DATA_PLACEHOLDER) :], asset)


# --- determinism ----------------------------------------------------------------------


def _tiny_spec() -> WorldSpec:
    """Two windows, a few scenes (two sharing pixels), one mosaic: every writer runs."""
    main = TileWindow("08WNB", col_off=9000, row_off=2400, width=240, height=240)
    zone9 = replace(ZONE9, width=120, height=120)
    base = small_spec(0)
    main_acqs = [replace(a, window=main) for a in base.acquisitions if a.window == MAIN][2:4]
    zone9_acqs = [replace(a, window=zone9) for a in base.acquisitions if a.window == ZONE9]
    pattern = zone9_acqs[0].weather.pattern
    zone9_acqs = [a for a in zone9_acqs if a.weather.pattern == pattern][:2]
    return WorldSpec(
        name="tiny",
        windows=(main, zone9),
        acquisitions=(*main_acqs, *zone9_acqs),
        mosaics=(MosaicSpec(main, 2024, 3),),
        slump_counts={"main": 2},
        dem_margin_m=300.0,
        dem_2m_half_size_m=200.0,
        tcvis_margin_m=300.0,
        surroundings_slumps_per_km2=0.0,
    )


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_concurrent_builds_build_once_and_same_seed_gives_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _tiny_spec()
    monkeypatch.setattr(build_module, "world_spec", lambda name, seed: spec)
    root = tmp_path / "sandbox"
    messages: list[str] = []
    layouts: list[WorldLayout] = []

    def build() -> None:
        layouts.append(build_world(root, "small", 3, messages.append))

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(layouts) == 2 and layouts[0] == layouts[1] and layouts[0].is_built()
    assert sum("placing slumps" in m for m in messages) == 1  # built once
    assert sorted(p.name for p in root.iterdir()) == ["small-seed3", "small-seed3.lock"]

    # A sequential build (the one above used a process pool) gives the same bytes.
    again = WorldLayout(tmp_path / "again")
    build_spec_into(again, spec, 3, workers=1)
    digests = _digest_tree(layouts[0].root)
    assert len(digests) > 100
    assert digests == _digest_tree(again.root)
