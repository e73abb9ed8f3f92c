"""Source ``cdse-mosaic``: quarterly mosaics found on the CDSE STAC stand-in, fetched
from its S3 stand-in, and staged through the generic stager. Every stored pixel is
compared with the COG the world wrote."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import xarray as xr

from darts.errors import ConfigError
from darts.net import HttpClient, NetworkSettings, S3Client, S3Settings, forbid_sockets
from darts.net.s3 import parse_s3_href
from darts.pipelines.optical import QUALITY_BAND, load_optical
from darts.pipelines.staged_scenes import StagedScenes
from darts.pipelines.staging import stage_scene
from darts.processing.quality import quality_mask_from_observations
from darts.sandbox.layout import WorldLayout
from darts.sandbox.service import Sandbox
from darts.sources.cdse import DiscoveryError
from darts.sources.cdse_mosaic import CdseMosaicSource, mosaic_grid
from darts.sources.query import SceneFilters, SceneSelection
from darts.store.scenes import BandEncoding, SceneStore

TODAY = date(2026, 12, 1)
KEYS = ["B02_10m", "B03_10m", "B04_10m", "B08_10m", "observations"]
FIXTURE = (
    Path(__file__).resolve().parents[1]
    / "src/darts/sandbox/fixtures/cdse/search-sentinel-2-global-mosaics-31SDV.json"
)


@pytest.fixture
def source(sandbox: Sandbox) -> Iterator[CdseMosaicSource]:
    net = NetworkSettings(timeout_s=10.0, max_retries=1, backoff_base_s=0.0)
    s3 = S3Client(
        S3Settings(
            endpoint_url=sandbox.endpoints.cdse_s3_endpoint,
            access_key_id=sandbox.credentials.access_key_id,
            secret_access_key=sandbox.credentials.secret_access_key,
        ),
        net,
    )
    with HttpClient(net) as http:
        yield CdseMosaicSource(stac_url=sandbox.endpoints.cdse_stac_url, http=http, s3=s3)


def world_item(world: WorldLayout, mosaic_id: str) -> dict[str, Any]:
    path = world.cdse_items / "sentinel-2-global-mosaics" / f"{mosaic_id}.json"
    return json.loads(path.read_text())


def read_cog(world: WorldLayout, item: dict[str, Any], asset: str) -> np.ndarray:
    location = parse_s3_href(item["assets"][asset]["href"])
    with rasterio.open(world.s3_object(location.bucket, location.key)) as dataset:
        return dataset.read(1)


def test_band_names() -> None:
    source = CdseMosaicSource()
    assert source.band_keys(None, None) == KEYS
    assert source.band_keys(["red", "b8", "observations"], None) == [
        "B04_10m",
        "B08_10m",
        "observations",
    ]
    assert source.band_keys(["all"], None) == KEYS
    for wrong in (["SCL"], ["B05"], ["B02_20m"]):
        with pytest.raises(ConfigError, match="not in the quarterly mosaics"):
            source.band_keys(wrong, None)


def test_grid_of_the_recorded_item_comes_from_its_bbox() -> None:
    item = json.loads(FIXTURE.read_text())["features"][0]
    assert "proj:transform" not in item["assets"]["B02"]
    grid = mosaic_grid(item)
    assert grid.shape == (10008, 10008)
    assert grid.transform == (10.0, 0.0, 399960, 0.0, -10.0, 4000020)
    assert grid.crs_code == "EPSG:32631"


def test_quality_from_observations() -> None:
    counts = xr.DataArray(np.array([[0, 1, 3, 4, 40]], dtype=np.uint16), dims=("y", "x"))
    assert quality_mask_from_observations(counts).values.tolist() == [[0, 1, 1, 2, 2]]


def test_notes_name_the_filters_that_do_not_apply() -> None:
    notes = CdseMosaicSource().notes(SceneFilters.from_strings(months=(7,)))
    assert len(notes) == 1
    assert "--max-cloud-cover 10" in notes[0] and "--months" in notes[0]
    assert CdseMosaicSource().notes(SceneFilters(max_cloud_cover=100, max_snow_cover=100)) == []


def test_discovery_by_tile_years_quarters_and_ids(
    source: CdseMosaicSource, sandbox_world: WorldLayout
) -> None:
    tiles = SceneSelection(tile_ids=("08WNB",))
    # Cloud and snow filters do not apply: the default 10 % must not drop mosaics.
    found = source.discover(tiles, SceneFilters(years=(2024,)), today=TODAY)
    assert [i["id"] for i in found] == [
        "Sentinel-2_mosaic_2024_Q2_08WNB_0_0",
        "Sentinel-2_mosaic_2024_Q3_08WNB_0_0",
    ]
    q3 = source.discover(tiles, SceneFilters(years=(2024,), quarters=(3,)), today=TODAY)
    assert [i["id"] for i in q3] == ["Sentinel-2_mosaic_2024_Q3_08WNB_0_0"]
    every = source.discover(tiles, SceneFilters(), today=TODAY)
    assert len(every) == 3
    by_id = source.discover(
        SceneSelection(scene_ids=("Sentinel-2_mosaic_2023_Q3_08WPB_0_0",)), SceneFilters()
    )
    expected = world_item(sandbox_world, "Sentinel-2_mosaic_2023_Q3_08WPB_0_0")
    assert [i["id"] for i in by_id] == [expected["id"]]
    assert by_id[0]["assets"]["B02"]["href"] == expected["assets"]["B02"]["href"]
    with pytest.raises(DiscoveryError, match="Sentinel-2_mosaic_2019_Q1_08WNB_0_0"):
        source.discover(
            SceneSelection(scene_ids=("Sentinel-2_mosaic_2019_Q1_08WNB_0_0",)), SceneFilters()
        )
    with pytest.raises(ConfigError, match="CDSE product id form"):
        source.offline_ids(
            SceneSelection(
                scene_ids=("S2A_MSIL2A_20180714T203849_N0500_R029_T08WNB_20230606T065712",)
            )
        )


def test_staged_pixels_equal_the_cogs_and_read_back_offline(
    source: CdseMosaicSource, sandbox_world: WorldLayout, tmp_path: Path
) -> None:
    item = world_item(sandbox_world, "Sentinel-2_mosaic_2024_Q3_08WNB_0_0")
    store = SceneStore(tmp_path / "store", BandEncoding(chunk=512), fsync=False)
    described = source.describe(item, KEYS)
    assert described.bytes_exact
    assert described.download_bytes == sum(
        item["assets"][a]["file:size"] for a in ("B02", "B03", "B04", "B08", "observations")
    )
    result = stage_scene(source, item, None, store)
    assert result.status == "downloaded", result.error
    assert result.bytes_downloaded == described.download_bytes
    assert stage_scene(source, item, None, store).status == "cached"
    stored = store.open(item["id"], KEYS, load=True)
    for key, asset in zip(KEYS, ["B02", "B03", "B04", "B08", "observations"], strict=True):
        np.testing.assert_array_equal(stored[key].values, read_cog(sandbox_world, item, asset))
    assert stored.attrs["proj:shape"] == list(mosaic_grid(item).shape)

    with forbid_sockets() as audit:
        optical = load_optical(StagedScenes(CdseMosaicSource(), store), item, None, store)
    assert audit.blocked == []
    dn = stored["B04_10m"].values
    red = optical["B04_10m"].values
    valid = dn != -32768
    np.testing.assert_allclose(red[valid], dn[valid] * 1e-4, atol=1e-6)
    assert np.isnan(red[~valid]).all()
    observations = stored["observations"].values
    quality = optical[QUALITY_BAND].values
    assert (quality[observations == 0] == 0).all()
    assert (quality[(observations > 0) & (observations < 4)] == 1).all()
    assert (quality[observations >= 4] == 2).all()
