"""The Earth Engine stand-in's Sentinel-2 (``COPERNICUS/S2_SR_HARMONIZED``).

Against the stand-in started for real on 127.0.0.1 (the ``sandbox`` fixture): listImages
(paging, time window, region, filter, view) and computePixels (harmonised values,
resampling, the real service's limits, errors, auth, injected faults); plus unit tests of
the filter grammar, the catalogue's one-image-per-acquisition rule and the band cache.
"""

from __future__ import annotations

import io
import json
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import requests
from shapely.geometry import mapping, shape

from darts.net import HttpClient, NetworkSettings
from darts.sandbox.layout import WorldLayout
from darts.sandbox.servers.earthengine import EarthEngineApp
from darts.sandbox.servers.ee_band_cache import BandCache
from darts.sandbox.servers.ee_filter import FilterError, parse_filter
from darts.sandbox.servers.ee_pixels import MAX_RESPONSE_BYTES
from darts.sandbox.servers.ee_sentinel2 import load_images
from darts.sandbox.servers.faults import FaultConfig
from darts.sandbox.service import Sandbox

COLLECTION = "COPERNICUS/S2_SR_HARMONIZED"
LIST_PATH = f"/v1/projects/earthengine-public/assets/{COLLECTION}:listImages"
PIXELS_PATH = "/v1/projects/darts-sandbox/image:computePixels"
REQUIRED_PROPERTIES = {
    "system:index",
    "system:time_start",
    "MGRS_TILE",
    "CLOUDY_PIXEL_PERCENTAGE",
    "SNOW_ICE_PERCENTAGE",
    "PROCESSING_BASELINE",
    "SPACECRAFT_NAME",
    "PRODUCT_ID",
    "MEAN_SOLAR_AZIMUTH_ANGLE",
    "MEAN_SOLAR_ZENITH_ANGLE",
}
pytestmark = pytest.mark.usefixtures("loopback_only")


# -- helpers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token(sandbox: Sandbox) -> str:
    return sandbox.token_issuer.issue()["access_token"]


@pytest.fixture
def session(token: str) -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {token}"
        yield s


def list_images(sandbox: Sandbox, session: requests.Session, **params: Any) -> dict[str, Any]:
    response = session.get(sandbox.url("earthengine") + LIST_PATH, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def all_images(sandbox: Sandbox, session: requests.Session, **params: Any) -> list[dict]:
    images: list[dict] = []
    token = None
    while True:
        page = list_images(sandbox, session, **params, **({"pageToken": token} if token else {}))
        images += page["images"]
        token = page.get("nextPageToken")
        if not token:
            return images


def load(image_id: str) -> dict[str, Any]:
    return {
        "result": "0",
        "values": {
            "0": {
                "functionInvocationValue": {
                    "functionName": "Image.load",
                    "arguments": {"id": {"constantValue": image_id}},
                }
            }
        },
    }


def compute(
    sandbox: Sandbox,
    session: requests.Session,
    image_id: str,
    grid: dict[str, Any],
    bands: list[str] | None,
) -> requests.Response:
    body: dict[str, Any] = {"expression": load(image_id), "fileFormat": "NPY", "grid": grid}
    if bands is not None:
        body["bandIds"] = bands
    return session.post(sandbox.url("earthengine") + PIXELS_PATH, json=body, timeout=60)


def pixels(
    sandbox: Sandbox, session: requests.Session, image_id: str, grid: dict, bands: list[str]
) -> np.ndarray:
    response = compute(sandbox, session, image_id, grid, bands)
    assert response.status_code == 200, response.text
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def error_of(response: requests.Response) -> dict[str, Any]:
    error = response.json()["error"]
    assert error["code"] == response.status_code
    return error


def band_grid(image: dict[str, Any], band: str) -> dict[str, Any]:
    return next(b for b in image["bands"] if b["id"] == band)["grid"]


def shifted(grid: dict[str, Any], rows: int, cols: int, width: int, height: int) -> dict:
    t = dict(grid["affineTransform"])
    t["translateX"] += cols * t["scaleX"]
    t["translateY"] += rows * t["scaleY"]
    return {
        "crsCode": grid["crsCode"],
        "affineTransform": t,
        "dimensions": {"width": width, "height": height},
    }


def cdse_band(world: WorldLayout, product_id: str, asset: str) -> np.ndarray:
    item = json.loads((world.cdse_items / "sentinel-2-l2a" / f"{product_id}.json").read_text())
    bucket, _, key = item["assets"][asset]["href"].removeprefix("s3://").partition("/")
    with rasterio.open(world.s3_object(bucket, key)) as dataset:
        return dataset.read(1)


def cdse_items(world: WorldLayout) -> list[dict[str, Any]]:
    folder = world.cdse_items / "sentinel-2-l2a"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


@pytest.fixture(scope="module")
def main_image(sandbox: Sandbox, sandbox_world: WorldLayout, token: str) -> dict[str, Any]:
    """The main tile's least cloudy image (FULL view)."""
    tile = json.loads(sandbox_world.manifest.read_text())["main_tile"]
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {token}"
        images = all_images(sandbox, s, filter=f'properties.MGRS_TILE = "{tile}"')
    return min(images, key=lambda i: (i["properties"]["CLOUDY_PIXEL_PERCENTAGE"], i["id"]))


# -- listImages ------------------------------------------------------------------------------


def test_images_describe_the_world_acquisitions(
    sandbox: Sandbox, sandbox_world: WorldLayout, session: requests.Session
) -> None:
    images = list_images(sandbox, session)["images"]
    items = {item["id"]: item for item in cdse_items(sandbox_world)}
    # One product per acquisition in this world, so one image per item.
    assert sorted(i["properties"]["PRODUCT_ID"] for i in images) == sorted(items)
    assert [(i["startTime"], i["id"]) for i in images] == sorted(
        (i["startTime"], i["id"]) for i in images
    )
    for image in images:
        props = image["properties"]
        item = items[props["PRODUCT_ID"]]
        p = item["properties"]
        sensing, granule, tile = props["system:index"].split("_")
        assert image["id"] == f"{COLLECTION}/{props['system:index']}"
        assert image["name"] == f"projects/earthengine-public/assets/{image['id']}"
        assert image["type"] == "IMAGE"
        assert set(props) >= REQUIRED_PROPERTIES
        assert sensing == item["id"].split("_")[2] and tile == f"T{props['MGRS_TILE']}"
        assert f"/GRANULE/L2A_{tile}_A" in item["assets"]["B02_10m"]["href"]
        assert (
            item["assets"]["B02_10m"]["href"].split("/GRANULE/")[1].split("/")[0].endswith(granule)
        )
        assert image["startTime"] == p["datetime"] and image["endTime"].endswith("Z")
        assert props["MGRS_TILE"] == p["grid:code"].removeprefix("MGRS-")
        assert props["CLOUDY_PIXEL_PERCENTAGE"] == p["eo:cloud_cover"]
        assert props["SNOW_ICE_PERCENTAGE"] == p["eo:snow_cover"]
        assert props["PROCESSING_BASELINE"] == p["processing:version"]
        assert props["SPACECRAFT_NAME"] == "Sentinel-" + p["platform"][-2:].upper()
        assert props["MEAN_SOLAR_AZIMUTH_ANGLE"] == p["view:sun_azimuth"]
        assert props["MEAN_SOLAR_ZENITH_ANGLE"] == pytest.approx(90 - p["view:sun_elevation"])
        assert isinstance(props["system:time_start"], int)
        assert image["geometry"] == item["geometry"]
        assert [b["id"] for b in image["bands"]] == [
            *("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12", "SCL")
        ]
    image = images[0]
    item = items[image["properties"]["PRODUCT_ID"]]
    for band, asset, maximum in (("B2", "B02_10m", 65535), ("SCL", "SCL_20m", 255)):
        entry = next(b for b in image["bands"] if b["id"] == band)
        assert entry["dataType"] == {"precision": "INT", "range": {"min": 0, "max": maximum}}
        t = entry["grid"]["affineTransform"]
        assert [t[k] for k in ("scaleX", "shearX", "translateX", "shearY", "scaleY")] + [
            t["translateY"]
        ] == item["assets"][asset]["proj:transform"]
        assert entry["grid"]["crsCode"] == item["assets"][asset]["proj:code"]
        dims = entry["grid"]["dimensions"]
        assert [dims["height"], dims["width"]] == item["assets"][asset]["proj:shape"]
    assert band_grid(image, "B1")["affineTransform"]["scaleX"] == 60.0


def test_page_size_one_walks_every_image_once(sandbox: Sandbox, session: requests.Session) -> None:
    everything = [i["id"] for i in list_images(sandbox, session)["images"]]
    assert "nextPageToken" not in list_images(sandbox, session)
    tile_filter = 'properties.MGRS_TILE = "08WNB"'
    expected = [i["id"] for i in list_images(sandbox, session, filter=tile_filter)["images"]]
    assert len(expected) > 3
    walked, token, pages = [], None, 0
    while True:
        params = {"pageSize": 1, "filter": tile_filter, **({"pageToken": token} if token else {})}
        page = list_images(sandbox, session, **params)
        assert len(page["images"]) == 1
        walked.append(page["images"][0]["id"])
        pages += 1
        token = page.get("nextPageToken")
        if not token:
            break
    assert walked == expected and pages == len(expected)
    # Bigger pages over everything: the same images in the same order.
    assert [i["id"] for i in all_images(sandbox, session, pageSize=100)] == everything


def test_a_page_token_belongs_to_its_query(sandbox: Sandbox, session: requests.Session) -> None:
    page = list_images(sandbox, session, pageSize=2)
    url = sandbox.url("earthengine") + LIST_PATH
    for params in (
        {"pageToken": page["nextPageToken"], "filter": 'properties.MGRS_TILE = "08WNB"'},
        {"pageToken": "not-a-token"},
        {"pageSize": "many"},
        {"view": "EVERYTHING"},
        {"startTime": "2023-07-01"},
        {"region": "{not json"},
        {"startime": "2023-07-01T00:00:00Z"},
    ):
        response = session.get(url, params=params, timeout=30)
        assert response.status_code == 400, params
        assert error_of(response)["status"] == "INVALID_ARGUMENT"


def test_time_window_is_start_inclusive_end_exclusive(
    sandbox: Sandbox, session: requests.Session
) -> None:
    images = list_images(sandbox, session)["images"]
    first, second = images[10], images[20]
    window = list_images(
        sandbox, session, startTime=first["startTime"], endTime=second["startTime"]
    )["images"]
    starts = [i["startTime"] for i in window]
    assert starts[0] == first["startTime"] and second["startTime"] not in starts
    assert [i["id"] for i in window] == [
        i["id"] for i in images if first["startTime"] <= i["startTime"] < second["startTime"]
    ]
    year = list_images(
        sandbox, session, startTime="2023-01-01T00:00:00Z", endTime="2024-01-01T00:00:00+00:00"
    )["images"]
    assert year and all(i["startTime"].startswith("2023-") for i in year)
    assert len(year) == sum(i["startTime"].startswith("2023-") for i in images)


def test_region_selects_intersecting_footprints(
    sandbox: Sandbox, session: requests.Session
) -> None:
    images = list_images(sandbox, session)["images"]
    tiles = {i["properties"]["MGRS_TILE"] for i in images}
    assert len(tiles) >= 2
    target = next(i for i in images if i["properties"]["MGRS_TILE"] == "09WUS")
    region = shape(target["geometry"]).representative_point().buffer(0.001)
    found = list_images(sandbox, session, region=json.dumps(mapping(region)))["images"]
    expected = [i["id"] for i in images if shape(i["geometry"]).intersects(region)]
    assert [i["id"] for i in found] == expected
    # The world's tiles overlap (as MGRS tiles do): some but not all images.
    assert target["id"] in expected and 0 < len(expected) < len(images)
    far = {"type": "Point", "coordinates": [10.0, 50.0]}
    assert list_images(sandbox, session, region=json.dumps(far))["images"] == []


def test_filters(sandbox: Sandbox, session: requests.Session) -> None:
    images = list_images(sandbox, session)["images"]

    def ids(predicate: Any) -> list[str]:
        return [i["id"] for i in images if predicate(i["properties"])]

    def filtered(text: str) -> list[str]:
        return [i["id"] for i in list_images(sandbox, session, filter=text)["images"]]

    clear = filtered("properties.CLOUDY_PIXEL_PERCENTAGE <= 10")
    assert clear and clear == ids(lambda p: p["CLOUDY_PIXEL_PERCENTAGE"] <= 10)
    assert filtered('properties.MGRS_TILE = "08WPB"') == ids(lambda p: p["MGRS_TILE"] == "08WPB")
    both = filtered(
        "properties.CLOUDY_PIXEL_PERCENTAGE <= 10 AND "
        '(properties.MGRS_TILE = "08WNB" OR properties.MGRS_TILE = "08WPB")'
    )
    assert both and both == ids(
        lambda p: p["CLOUDY_PIXEL_PERCENTAGE"] <= 10 and p["MGRS_TILE"] in ("08WNB", "08WPB")
    )
    assert filtered(
        'properties.SPACECRAFT_NAME != "Sentinel-2A" AND properties.SNOW_ICE_PERCENTAGE > 0'
    ) == ids(lambda p: p["SPACECRAFT_NAME"] != "Sentinel-2A" and p["SNOW_ICE_PERCENTAGE"] > 0)
    assert filtered('properties.PROCESSING_BASELINE >= "05.10"') == ids(
        lambda p: p["PROCESSING_BASELINE"] >= "05.10"
    )
    start = images[5]["properties"]["system:time_start"]
    assert filtered(f"properties.system:time_start < {start}") == ids(
        lambda p: p["system:time_start"] < start
    )
    assert filtered("properties.NO_SUCH_PROPERTY > 1") == []

    url = sandbox.url("earthengine") + LIST_PATH
    for bad in (
        "CLOUDY_PIXEL_PERCENTAGE < 10",
        "properties.CLOUDY_PIXEL_PERCENTAGE ~ 10",
        'properties.MGRS_TILE = "08WNB" OR properties.MGRS_TILE = "08WPB"',
        '(properties.MGRS_TILE = "08WNB" AND properties.MGRS_TILE = "08WPB")',
        "properties.MGRS_TILE = '08WNB'",
        "properties.CLOUDY_PIXEL_PERCENTAGE < 10 AND",
        "(properties.CLOUDY_PIXEL_PERCENTAGE < 10",
    ):
        response = session.get(url, params={"filter": bad}, timeout=30)
        assert response.status_code == 400, bad
        error = error_of(response)
        assert error["status"] == "INVALID_ARGUMENT" and "filter" in error["message"]


def test_basic_view_omits_properties(sandbox: Sandbox, session: requests.Session) -> None:
    full = list_images(sandbox, session, pageSize=3)["images"]
    basic = list_images(sandbox, session, pageSize=3, view="BASIC")["images"]
    assert all("properties" in i for i in full)
    assert [i["id"] for i in basic] == [i["id"] for i in full]
    for b, f in zip(basic, full, strict=True):
        assert "properties" not in b
        assert {k: v for k, v in f.items() if k != "properties"} == b


def test_list_images_needs_a_token_and_the_collection(
    sandbox: Sandbox, session: requests.Session
) -> None:
    url = sandbox.url("earthengine") + LIST_PATH
    for headers in ({}, {"Authorization": "Bearer ya29.forged"}):
        response = requests.get(url, headers=headers, timeout=30)
        assert response.status_code == 401
        assert error_of(response)["status"] == "UNAUTHENTICATED"
    other = sandbox.url("earthengine") + "/v1/projects/earthengine-public/assets/NOPE:listImages"
    response = session.get(other, timeout=30)
    assert response.status_code == 404 and error_of(response)["status"] == "NOT_FOUND"
    assert session.post(url, timeout=30).status_code == 405


# -- computePixels ---------------------------------------------------------------------------


def test_native_grid_gives_cdse_dn_minus_1000(
    sandbox: Sandbox,
    sandbox_world: WorldLayout,
    session: requests.Session,
    main_image: dict[str, Any],
) -> None:
    cdse = cdse_band(sandbox_world, main_image["properties"]["PRODUCT_ID"], "B02_10m")
    grid = band_grid(main_image, "B2")
    answer = pixels(sandbox, session, main_image["id"], grid, ["B2"])
    assert answer.dtype == np.dtype([("B2", "<u2")]) and answer.shape == cdse.shape
    ee = answer["B2"]
    expected = np.where(cdse > 1000, cdse.astype(np.int64) - 1000, 0)
    np.testing.assert_array_equal(ee, expected)
    # The same reflectance where it is positive.
    bright = cdse > 1000
    assert bright.mean() > 0.5
    np.testing.assert_allclose(ee[bright] / 10000, cdse[bright] * 1e-4 - 0.1, rtol=0, atol=1e-12)
    # A window shifted by whole pixels is a slice, zero outside the image.
    h, w = cdse.shape
    window = pixels(sandbox, session, main_image["id"], shifted(grid, 100, -50, 300, 200), ["B2"])
    np.testing.assert_array_equal(window["B2"][:, 50:], expected[100:300, :250])
    assert not window["B2"][:, :50].any()
    corner = pixels(
        sandbox, session, main_image["id"], shifted(grid, h - 10, w - 10, 20, 20), ["B2"]
    )
    np.testing.assert_array_equal(corner["B2"][:10, :10], expected[h - 10 :, w - 10 :])
    assert not corner["B2"][10:].any() and not corner["B2"][:, 10:].any()


def test_20_m_and_60_m_bands_are_nearest_neighbour_on_the_10_m_grid(
    sandbox: Sandbox,
    sandbox_world: WorldLayout,
    session: requests.Session,
    main_image: dict[str, Any],
) -> None:
    product = main_image["properties"]["PRODUCT_ID"]
    scl = cdse_band(sandbox_world, product, "SCL_20m")
    b1 = cdse_band(sandbox_world, product, "B01_60m")
    grid = band_grid(main_image, "B2")
    answer = pixels(sandbox, session, main_image["id"], grid, ["SCL", "B1", "B4"])
    assert answer.dtype.names == ("SCL", "B1", "B4")
    assert answer.dtype["SCL"] == np.uint8 and answer.dtype["B1"] == np.uint16
    np.testing.assert_array_equal(answer["SCL"], scl.repeat(2, axis=0).repeat(2, axis=1))
    b1_ee = np.where(b1 > 1000, b1.astype(np.int64) - 1000, 0)
    np.testing.assert_array_equal(answer["B1"], b1_ee.repeat(6, axis=0).repeat(6, axis=1))
    # Odd offsets: a 10 m window starting mid-way through a 20 m pixel.
    window = pixels(sandbox, session, main_image["id"], shifted(grid, 7, 13, 64, 32), ["SCL"])
    rows, cols = (np.arange(32) + 7) // 2, (np.arange(64) + 13) // 2
    np.testing.assert_array_equal(window["SCL"], scl[np.ix_(rows, cols)])


def test_other_crs_is_resampled(
    sandbox: Sandbox,
    sandbox_world: WorldLayout,
    session: requests.Session,
    main_image: dict[str, Any],
) -> None:
    cdse = cdse_band(sandbox_world, main_image["properties"]["PRODUCT_ID"], "B02_10m")
    harmonised = np.unique(np.where(cdse > 1000, cdse.astype(np.int64) - 1000, 0))
    centre = shape(main_image["geometry"]).centroid
    step = 0.0002
    grid = {
        "crsCode": "EPSG:4326",
        "affineTransform": {
            "scaleX": step,
            "shearX": 0.0,
            "translateX": centre.x - 50 * step,
            "shearY": 0.0,
            "scaleY": -step / 2,
            "translateY": centre.y + 25 * step,
        },
        "dimensions": {"width": 100, "height": 100},
    }
    answer = pixels(sandbox, session, main_image["id"], grid, ["B2"])["B2"]
    assert (answer > 0).mean() > 0.5
    assert np.isin(answer, harmonised).all()


def test_all_bands_when_band_ids_are_left_out(
    sandbox: Sandbox, session: requests.Session, main_image: dict[str, Any]
) -> None:
    grid = shifted(band_grid(main_image, "B2"), 0, 0, 8, 8)
    response = compute(sandbox, session, main_image["id"], grid, None)
    assert response.status_code == 200, response.text
    answer = np.load(io.BytesIO(response.content))
    assert answer.dtype.names == tuple(b["id"] for b in main_image["bands"])


def test_size_limits(
    sandbox: Sandbox, session: requests.Session, main_image: dict[str, Any]
) -> None:
    grid = band_grid(main_image, "B2")
    # B2 (2 bytes) + SCL (1 byte): 4096² px is exactly the 48 MiB limit.
    assert MAX_RESPONSE_BYTES == 4096 * 4096 * 3
    answer = pixels(
        sandbox, session, main_image["id"], shifted(grid, 0, 0, 4096, 4096), ["B2", "SCL"]
    )
    assert answer.shape == (4096, 4096)
    # The smallest size above it that whole pixels reach: 673 x 24929 px x 3 bytes is
    # the limit + 3 bytes (limit + 1 or + 2 factor into no grid within 32768 px a side).
    over = shifted(grid, 0, 0, 673, 24929)
    assert MAX_RESPONSE_BYTES + 3 == 673 * 24929 * 3
    response = compute(sandbox, session, main_image["id"], over, ["B2", "SCL"])
    assert response.status_code == 400
    error = error_of(response)
    assert error["status"] == "INVALID_ARGUMENT"
    assert (
        str(MAX_RESPONSE_BYTES + 3) in error["message"]
        and str(MAX_RESPONSE_BYTES) in error["message"]
    )
    # A side above 32768 px, however few bytes.
    response = compute(sandbox, session, main_image["id"], shifted(grid, 0, 0, 32769, 1), ["SCL"])
    assert response.status_code == 400 and "32768" in error_of(response)["message"]
    assert (
        compute(
            sandbox, session, main_image["id"], shifted(grid, 0, 0, 32768, 1), ["SCL"]
        ).status_code
        == 200
    )
    response = compute(sandbox, session, main_image["id"], shifted(grid, 0, 0, 1, 1), ["B2"] * 1025)
    assert response.status_code == 400 and "1024" in error_of(response)["message"]


def test_unknown_band_image_and_credentials(
    sandbox: Sandbox, session: requests.Session, main_image: dict[str, Any]
) -> None:
    grid = shifted(band_grid(main_image, "B2"), 0, 0, 4, 4)
    response = compute(sandbox, session, main_image["id"], grid, ["B2", "B99"])
    assert response.status_code == 400
    assert error_of(response) == {
        "code": 400,
        "status": "INVALID_ARGUMENT",
        "message": "Image.select: Pattern 'B99' did not match any bands.",
    }
    missing = f"{COLLECTION}/20990101T000000_20990101T000211_T08WNB"
    response = compute(sandbox, session, missing, grid, ["B2"])
    assert response.status_code == 404
    error = error_of(response)
    assert error["status"] == "NOT_FOUND" and missing in error["message"]
    # The full asset name loads the same image.
    name = f"projects/earthengine-public/assets/{main_image['id']}"
    np.testing.assert_array_equal(
        pixels(sandbox, session, name, grid, ["B2"]),
        pixels(sandbox, session, main_image["id"], grid, ["B2"]),
    )
    url = sandbox.url("earthengine") + PIXELS_PATH
    body = {"expression": load(main_image["id"]), "fileFormat": "NPY", "grid": grid}
    for headers in ({}, {"Authorization": "Bearer ya29.forged"}):
        response = requests.post(url, json=body, headers=headers, timeout=30)
        assert response.status_code == 401
        assert error_of(response)["status"] == "UNAUTHENTICATED"


def test_concurrent_requests_decode_each_band_once(
    sandbox: Sandbox, session: requests.Session, main_image: dict[str, Any], token: str
) -> None:
    app = sandbox.injector("earthengine").app
    assert isinstance(app, EarthEngineApp)
    app.band_cache.clear()
    before = app.band_cache.loads
    bands = ["B2", "B3", "B4", "B8", "SCL"]
    grid = band_grid(main_image, "B2")

    def fetch(i: int) -> np.ndarray:
        with requests.Session() as s:
            s.headers["Authorization"] = f"Bearer {token}"
            return pixels(sandbox, s, main_image["id"], shifted(grid, i * 10, 0, 256, 256), bands)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(fetch, range(8)))
    assert app.band_cache.loads - before == len(bands)
    for i, answer in enumerate(answers[1:], start=1):
        np.testing.assert_array_equal(answer[: 256 - 10 * i], answers[0][10 * i :])


# -- faults ----------------------------------------------------------------------------------


def test_injected_503_then_success(
    sandbox: Sandbox, session: requests.Session, main_image: dict[str, Any], token: str
) -> None:
    settings = NetworkSettings(timeout_s=30, max_retries=8, backoff_base_s=0.01, backoff_max_s=0.02)
    grid = shifted(band_grid(main_image, "B2"), 0, 0, 16, 16)
    url = sandbox.url("earthengine")
    headers = {"Authorization": f"Bearer {token}"}
    expected_list = list_images(sandbox, session, pageSize=5)
    expected_pixels = pixels(sandbox, session, main_image["id"], grid, ["B2"])
    sandbox.clear_requests()
    sandbox.set_faults(
        "earthengine",
        FaultConfig(error_rate=1.0, error_statuses=(503,), match="listImages|computePixels"),
    )
    try:
        response = session.get(url + LIST_PATH, params={"pageSize": 5}, timeout=30)
        assert response.status_code == 503 and error_of(response)["status"] == "UNAVAILABLE"
        response = compute(sandbox, session, main_image["id"], grid, ["B2"])
        assert response.status_code == 503 and error_of(response)["status"] == "UNAVAILABLE"
        # Half of the requests fail: a retrying client gets through.
        sandbox.set_faults(
            "earthengine",
            FaultConfig(error_rate=0.5, error_statuses=(503,), match="listImages|computePixels"),
        )
        with HttpClient(settings) as http:
            for _ in range(4):
                listed = http.get_json(
                    url + LIST_PATH, purpose="test", params={"pageSize": 5}, headers=headers
                )
                assert listed == expected_list
                body = {
                    "expression": load(main_image["id"]),
                    "fileFormat": "NPY",
                    "bandIds": ["B2"],
                    "grid": grid,
                }
                answer = http.request(
                    "POST", url + PIXELS_PATH, purpose="test", json=body, headers=headers
                )
                np.testing.assert_array_equal(np.load(io.BytesIO(answer.content)), expected_pixels)
    finally:
        sandbox.set_faults("earthengine", FaultConfig())
    statuses = [r["status"] for r in sandbox.injector("earthengine").requests()]
    assert statuses.count(503) >= 3 and statuses.count(200) == 8


def test_resets_truncation_and_latency_reach_the_new_routes(
    sandbox: Sandbox, session: requests.Session, main_image: dict[str, Any]
) -> None:
    grid = shifted(band_grid(main_image, "B2"), 0, 0, 64, 64)
    try:
        sandbox.set_faults("earthengine", FaultConfig(reset_rate=1.0, match="computePixels"))
        with pytest.raises(requests.ConnectionError):
            compute(sandbox, session, main_image["id"], grid, ["B2"])
        sandbox.set_faults("earthengine", FaultConfig(truncate_rate=1.0, match="listImages"))
        with pytest.raises(requests.exceptions.RequestException):
            session.get(sandbox.url("earthengine") + LIST_PATH, timeout=30).json()
        sandbox.set_faults("earthengine", FaultConfig(latency_ms=300, match="listImages"))
        started = time.perf_counter()
        list_images(sandbox, session, pageSize=1)
        assert time.perf_counter() - started >= 0.3
    finally:
        sandbox.set_faults("earthengine", FaultConfig())


# -- units ---------------------------------------------------------------------------------


def test_filter_grammar() -> None:
    parsed = parse_filter(
        'properties.A <= 10 AND (properties.B = "x \\"y\\"" OR properties.B = "z") AND '
        "properties.C != -1.5e1"
    )
    assert parsed.matches({"A": 10, "B": 'x "y"', "C": 3})
    assert not parsed.matches({"A": 10.5, "B": "z", "C": 3})
    assert not parsed.matches({"A": 1, "B": "w", "C": 3})
    assert not parsed.matches({"A": 1, "B": "z", "C": -15})
    assert not parsed.matches({"A": "1", "B": "z", "C": 3})  # a string is no number
    assert not parsed.matches({"B": "z", "C": 3})  # a missing property matches nothing
    for bad in ("", "AND", "properties.A", "properties.A = ", "(properties.A = 1", "NOT x = 1"):
        with pytest.raises(FilterError):
            parse_filter(bad)


def test_newest_baseline_wins(sandbox_world: WorldLayout, tmp_path: Path) -> None:
    layout = WorldLayout(tmp_path / "world")
    folder = layout.cdse_items / "sentinel-2-l2a"
    folder.mkdir(parents=True)
    layout.s3_root.symlink_to(sandbox_world.s3_root.resolve())
    source = next(p for p in sorted((sandbox_world.cdse_items / "sentinel-2-l2a").glob("*N0509*")))
    item = json.loads(source.read_text())
    shutil.copy(source, folder / source.name)
    newer = json.loads(json.dumps(item))
    newer["id"] = item["id"].replace("_N0509_", "_N0511_")
    newer["properties"]["processing:version"] = "05.11"
    (folder / f"{newer['id']}.json").write_text(json.dumps(newer))
    images = load_images(layout)
    assert len(images) == 1
    assert images[0].properties["PRODUCT_ID"] == newer["id"]
    assert images[0].properties["PROCESSING_BASELINE"] == "05.11"
    # Bands without a file on disk are not listed.
    newer["assets"]["B02_10m"]["href"] += ".missing"
    (folder / f"{newer['id']}.json").write_text(json.dumps(newer))
    assert "B2" not in [b.id for b in load_images(layout)[0].bands]


def test_band_cache_single_flight_lru_and_errors() -> None:
    cache = BandCache(max_bytes=3 * 800)
    calls: list[str] = []
    lock = threading.Lock()

    def slow(key: Any) -> np.ndarray:
        with lock:
            calls.append(key)
        time.sleep(0.1)
        return np.zeros(100, dtype=np.float64)  # 800 bytes

    with ThreadPoolExecutor(8) as pool:
        arrays = list(pool.map(lambda _: cache.get("a", slow), range(8)))
    assert calls == ["a"] and all(a is arrays[0] for a in arrays)
    assert not arrays[0].flags.writeable
    cache.get_many(["b", "c"], slow)
    assert cache.nbytes == 2400
    cache.get("a", slow)  # a is now the most recent
    cache.get("d", slow)  # evicts b
    assert cache.nbytes == 2400
    calls.clear()
    cache.get_many(["a", "c", "d"], slow)
    assert calls == []
    cache.get("b", slow)
    assert calls == ["b"]

    def broken(key: Any) -> np.ndarray:
        raise OSError("cannot decode")

    with pytest.raises(OSError):
        cache.get("e", broken)
    assert cache.get("e", slow).nbytes == 800  # a failure is not remembered
    big = BandCache(max_bytes=100)
    assert big.get("x", slow).nbytes == 800 and big.nbytes == 0
