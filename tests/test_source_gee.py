"""Source ``gee``: the parts that need no server (request planning, filters, the scene
document), then discovery and staging against the Earth Engine stand-in, compared
pixel for pixel with the same acquisition from the CDSE stand-in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from darts.errors import ConfigError
from darts.net import HttpClient, NetworkSettings, S3Client, S3Settings, forbid_sockets
from darts.net.errors import OfflineError
from darts.pipelines.optical import QUALITY_BAND, load_optical
from darts.pipelines.staged_scenes import StagedScenes
from darts.pipelines.staging import stage_scene
from darts.sandbox.layout import WorldLayout
from darts.sandbox.servers.faults import FaultConfig
from darts.sandbox.service import Sandbox
from darts.sources.cdse import DiscoveryError
from darts.sources.cdse_source import CdseSource
from darts.sources.gee import (
    MAX_REQUEST_BYTES,
    MAX_REQUEST_EDGE,
    GeeSource,
    image_expression,
    property_filter,
    request_blocks,
    request_plan,
)
from darts.sources.gee_scene import ee_band, scene_document
from darts.sources.query import SceneFilters, SceneSelection
from darts.store.scenes import BandEncoding, SceneStore

TODAY = date(2026, 12, 1)
KEYS = ["B02_10m", "B03_10m", "B04_10m", "B08_10m", "SCL_20m"]
IMAGE = {
    "name": "projects/earthengine-public/assets/COPERNICUS/S2_SR_HARMONIZED/"
    "20230701T194909_20230701T195350_T11XNA",
    "startTime": "2023-07-01T19:49:09Z",
    "geometry": {
        "type": "Polygon",
        "coordinates": [[[-117, 78], [-112, 78], [-112, 79], [-117, 79], [-117, 78]]],
    },
    "properties": {
        "system:index": "20230701T194909_20230701T195350_T11XNA",
        "MGRS_TILE": "11XNA",
        "CLOUDY_PIXEL_PERCENTAGE": 3.5,
        "SNOW_ICE_PERCENTAGE": 0.25,
        "MEAN_SOLAR_AZIMUTH_ANGLE": 200.0,
        "MEAN_SOLAR_ZENITH_ANGLE": 55.0,
        "SPACECRAFT_NAME": "Sentinel-2B",
    },
    "bands": [
        {
            "id": band,
            "grid": {
                "crsCode": "EPSG:32611",
                "affineTransform": {
                    "scaleX": res,
                    "shearX": 0,
                    "translateX": 499980,
                    "shearY": 0,
                    "scaleY": -res,
                    "translateY": 8800020,
                },
                "dimensions": {"width": 109800 // res, "height": 109800 // res},
            },
        }
        for band, res in (("B2", 10), ("B3", 10), ("B4", 10), ("B8", 10), ("SCL", 20), ("B1", 60))
    ],
}


# -- without a server -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "bpp"), [((10980, 10980), 9), ((10980, 10980), 2), ((1200, 1200), 9), ((40000, 3), 1)]
)
def test_request_blocks_cover_the_scene_within_the_limits(shape: tuple[int, int], bpp: int) -> None:
    blocks = request_blocks(shape, bpp)
    covered = np.zeros(shape, dtype=np.uint8)
    for r0, r1, c0, c1 in blocks:
        assert (r1 - r0) * (c1 - c0) * bpp <= MAX_REQUEST_BYTES
        assert r1 - r0 <= MAX_REQUEST_EDGE and c1 - c0 <= MAX_REQUEST_EDGE
        covered[r0:r1, c0:c1] += 1
    assert (covered == 1).all()


def test_a_full_scene_of_four_bands_and_scl_takes_27_requests() -> None:
    plan = request_plan(KEYS, (10980, 10980))
    assert [len(plan[key]) for key in KEYS] == [6, 6, 6, 6, 3]


def test_property_filter() -> None:
    assert property_filter((), SceneFilters(max_cloud_cover=100, max_snow_cover=100)) is None
    assert property_filter(("33UUP",), SceneFilters(max_cloud_cover=20, max_snow_cover=100)) == (
        'properties.MGRS_TILE = "33UUP" AND properties.CLOUDY_PIXEL_PERCENTAGE <= 20'
    )
    assert property_filter(("33UUP", "33UVP"), SceneFilters()) == (
        '(properties.MGRS_TILE = "33UUP" OR properties.MGRS_TILE = "33UVP") AND '
        "properties.CLOUDY_PIXEL_PERCENTAGE <= 10 AND properties.SNOW_ICE_PERCENTAGE <= 10"
    )


def test_scene_document_of_an_image() -> None:
    document = scene_document(IMAGE)
    assert document["id"] == "20230701T194909_20230701T195350_T11XNA"
    properties = document["properties"]
    assert properties["datetime"] == "2023-07-01T19:49:09Z"
    assert properties["grid:code"] == "MGRS-11XNA"
    assert properties["eo:cloud_cover"] == 3.5 and properties["eo:snow_cover"] == 0.25
    assert properties["view:sun_azimuth"] == 200.0 and properties["view:sun_elevation"] == 35.0
    assert properties["platform"] == "sentinel-2b"
    assert sorted(document["assets"]) == ["B01_60m", *KEYS]
    blue = document["assets"]["B02_10m"]
    assert blue["proj:transform"] == [10.0, 0.0, 499980.0, 0.0, -10.0, 8800020.0]
    assert blue["proj:shape"] == [10980, 10980]
    assert (blue["raster:scale"], blue["raster:offset"], blue["nodata"]) == (1e-4, 0.0, 0)
    assert "raster:scale" not in document["assets"]["SCL_20m"]
    source = GeeSource()
    described = source.describe(document, KEYS)
    assert described.grid.shape == (10980, 10980)
    assert described.download_bytes == 10980 * 10980 * 9  # 4 × uint16 + uint8


def test_band_names() -> None:
    source = GeeSource()
    assert source.band_keys(None, None) == KEYS
    assert source.band_keys(["red", "B05"], None) == ["B04_10m", "B05_20m", "SCL_20m"]
    assert [ee_band(k) for k in source.band_keys(["all"], None)][:3] == ["B1", "B2", "B3"]
    with pytest.raises(ConfigError, match="native resolution only"):
        source.band_keys(["B02_20m"], None)


def test_expression_loads_the_image() -> None:
    node = image_expression("X")["values"]["0"]["functionInvocationValue"]
    assert node["functionName"] == "Image.load"
    assert node["arguments"]["id"]["constantValue"] == "COPERNICUS/S2_SR_HARMONIZED/X"


def test_a_source_without_credentials_opens_nothing_offline() -> None:
    """Offline runs build the source but never its client: no key file is read."""
    source = GeeSource(credentials_file=Path("/no/such/key.json"), project="p")
    with forbid_sockets() as audit:
        assert source.offline_ids(
            SceneSelection(scene_ids=("20230701T194909_20230701T195350_T11XNA",))
        ) == ["20230701T194909_20230701T195350_T11XNA"]
        with pytest.raises(ConfigError, match="CDSE product id form"):
            source.offline_ids(
                SceneSelection(
                    scene_ids=("S2B_MSIL2A_20230701T194909_N0509_R085_T11XNA_20230701T222815",)
                )
            )
    assert audit.blocked == []


# -- against the Earth Engine stand-in ----------------------------------------------------


@pytest.fixture
def key_file(sandbox: Sandbox, tmp_path: Path) -> Path:
    path = tmp_path / "ee-key.json"
    path.write_text(json.dumps(sandbox.ee_key_file()))
    return path


@pytest.fixture
def source(sandbox: Sandbox, key_file: Path) -> Iterator[GeeSource]:
    net = NetworkSettings(timeout_s=20.0, max_retries=3, backoff_base_s=0.0)
    with HttpClient(net) as http:
        yield GeeSource(
            http=http,
            base_url=sandbox.url("earthengine"),
            project=sandbox.endpoints.ee_project,
            credentials_file=key_file,
            max_concurrency=3,
        )


def clear_main_scene(world: WorldLayout) -> tuple[str, dict[str, Any]]:
    """(Earth Engine id, CDSE item) of the clear 2024 scene of the main tile."""
    from darts.sandbox.servers.ee_sentinel2 import load_images

    manifest = json.loads(world.manifest.read_text())
    scene = next(
        s
        for s in manifest["scenes"]
        if s["tile"] == manifest["main_tile"]
        and s["datetime"].startswith("2024")
        and s["eo:cloud_cover"] <= 10
    )
    image = next(i for i in load_images(world) if i.product_id == scene["id"])
    item = json.loads((world.cdse_items / "sentinel-2-l2a" / f"{scene['id']}.json").read_text())
    return image.id, item


def compute_pixel_requests(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [r for r in sandbox.injector("earthengine").requests() if "computePixels" in r["path"]]


def test_discovery_by_tile_filters_and_ids(source: GeeSource, sandbox_world: WorldLayout) -> None:
    ee_id, item = clear_main_scene(sandbox_world)
    tile = item["properties"]["grid:code"].removeprefix("MGRS-")
    found = source.discover(
        SceneSelection(tile_ids=(tile,)), SceneFilters(years=(2024,)), today=TODAY
    )
    assert [d["id"] for d in found] == [ee_id]
    assert found[0]["properties"]["s2:product_id"] == item["id"]
    assert found[0]["properties"]["grid:code"] == f"MGRS-{tile}"
    cloudy = source.discover(
        SceneSelection(tile_ids=(tile,)),
        SceneFilters(max_cloud_cover=100, max_snow_cover=100),
        today=TODAY,
    )
    assert len(cloudy) > len(found)
    moments = [d["properties"]["datetime"] for d in cloudy]
    assert moments == sorted(moments)
    by_id = source.discover(SceneSelection(scene_ids=(ee_id,)), SceneFilters())
    assert [d["id"] for d in by_id] == [ee_id]
    wrong = ee_id[:9] + "000000" + ee_id[15:]
    with pytest.raises(DiscoveryError, match=wrong):
        source.discover(SceneSelection(scene_ids=(ee_id, wrong)), SceneFilters())


def test_staged_reflectance_equals_cdse_on_the_same_grid(
    source: GeeSource, sandbox: Sandbox, sandbox_world: WorldLayout, tmp_path: Path
) -> None:
    ee_id, item = clear_main_scene(sandbox_world)
    (document,) = source.discover(SceneSelection(scene_ids=(ee_id,)), SceneFilters())
    store = SceneStore(tmp_path / "gee", BandEncoding(chunk=512), fsync=False)
    sandbox.clear_requests()
    result = stage_scene(source, document, None, store)
    assert result.status == "downloaded", result.error
    plan = request_plan(KEYS, tuple(document["assets"]["B02_10m"]["proj:shape"]))
    assert len(compute_pixel_requests(sandbox)) == sum(len(blocks) for blocks in plan.values())
    assert stage_scene(source, document, None, store).status == "cached"

    s3 = S3Client(
        S3Settings(
            endpoint_url=sandbox.endpoints.cdse_s3_endpoint,
            access_key_id=sandbox.credentials.access_key_id,
            secret_access_key=sandbox.credentials.secret_access_key,
        ),
        NetworkSettings(max_retries=1, backoff_base_s=0.0),
    )
    cdse_store = SceneStore(tmp_path / "cdse", BandEncoding(chunk=512), fsync=False)
    cdse = load_optical(CdseSource(s3=s3), item, None, cdse_store)
    with forbid_sockets() as audit:
        gee = load_optical(StagedScenes(GeeSource(), store), document, None, store)
    assert audit.blocked == []
    assert gee.attrs["proj:transform"] == cdse.attrs["proj:transform"]
    for key in ("B02_10m", "B03_10m", "B04_10m", "B08_10m"):
        ours, theirs = gee[key].values, cdse[key].values
        positive = theirs > 0  # the harmonized collection cannot express reflectance <= 0
        np.testing.assert_array_equal(ours[positive], theirs[positive])
        assert np.isnan(ours[~positive]).all()
    np.testing.assert_array_equal(gee["SCL_20m"].values, cdse["SCL_20m"].values)
    np.testing.assert_array_equal(gee[QUALITY_BAND].values, cdse[QUALITY_BAND].values)


def test_refused_and_failing_requests(
    source: GeeSource, sandbox: Sandbox, sandbox_world: WorldLayout, tmp_path: Path
) -> None:
    ee_id, _item = clear_main_scene(sandbox_world)
    (document,) = source.discover(SceneSelection(scene_ids=(ee_id,)), SceneFilters())
    store = SceneStore(tmp_path / "gee", BandEncoding(chunk=512), fsync=False)
    try:
        # Transient 503s are retried by the network layer: the scene still stages.
        sandbox.set_faults("earthengine", FaultConfig(error_rate=0.3, error_statuses=(503,)))
        assert stage_scene(source, document, ["B04"], store).ok
        # Every request refused: one failed scene, the store untouched, the run goes on.
        sandbox.set_faults("earthengine", FaultConfig(error_rate=1.0, error_statuses=(503,)))
        failed = stage_scene(source, document, ["B08"], store)
        assert failed.status == "failed" and "503" in (failed.error or "")
        assert store.stored_bands(ee_id) == {"B04_10m", "SCL_20m"}
    finally:
        sandbox.set_faults("earthengine", FaultConfig())
    # Offline, the first request is refused before any connection (a run error).
    with HttpClient(NetworkSettings(offline=True)) as http, forbid_sockets() as audit:
        offline = GeeSource(
            http=http,
            base_url=sandbox.url("earthengine"),
            project=sandbox.endpoints.ee_project,
            credentials_file=source.credentials_file,
        )
        with pytest.raises(OfflineError, match="band B03_10m of Sentinel-2 image"):
            stage_scene(offline, document, ["B03"], store)
    assert audit.blocked == []


def test_high_volume_endpoint_is_used_when_asked(
    sandbox: Sandbox, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from darts.cli.main import main

    dead = "http://127.0.0.1:9"  # nothing listens: any request there fails at once
    args = [
        "inference",
        "prep-data",
        "sentinel2",
        "--raw-data-source",
        "gee",
        "--tile-ids",
        "08WNB",
        "--years",
        "2024",
        "--optical",
        "--dry-run",
        "--earth-engine-url",
        dead,
        "--earth-engine-highvolume-url",
        sandbox.url("earthengine"),
        "--max-retries",
        "0",
    ]
    sandbox.clear_requests()
    assert main([*args, "--ee-use-highvolume"]) == 0, capsys.readouterr()
    listed = [r for r in sandbox.injector("earthengine").requests() if "listImages" in r["path"]]
    assert listed
    capsys.readouterr()
    assert main(args) == 3  # the network's exit code
    err = capsys.readouterr().err
    assert "darts: error: the gee catalogue could not be searched" in err
    assert "127.0.0.1:9" in err and "Traceback" not in err and "internal error" not in err
