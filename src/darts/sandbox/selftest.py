"""``darts sandbox selftest``: prove every stand-in answers like the real service.

Each check drives a stand-in through the same client code the pipeline uses (the
``darts.net`` layer, pystac-client, GDAL), so a pass means the sandbox and the clients
agree on the protocol — not merely that a port is open.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from darts.net import HttpClient, NetworkSettings, RemoteError, S3Client, S3Settings, open_stac
from darts.net.gdal import remote_raster_env
from darts.sandbox.service import Sandbox

if TYPE_CHECKING:
    from darts.net.google_auth import EarthEngineCredentials


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    seconds: float


def run_checks(sandbox: Sandbox) -> list[CheckResult]:
    manifest = json.loads(sandbox.layout.manifest.read_text())
    context = _Context(sandbox, manifest)
    checks: list[tuple[str, Callable[[], str]]] = [
        ("CDSE STAC search, one tile, paged", context.stac_search_tile),
        ("CDSE STAC search, > 200 items over pages", context.stac_search_paging),
        ("CDSE S3 JP2 band, whole GET + checksum", context.s3_band_checksum),
        ("CDSE S3 JP2 band read by GDAL (s3://)", context.s3_band_gdal),
        ("CDSE S3 refuses requests without keys", context.s3_refuses_anonymous),
        ("PGC mosaic index zip", context.pgc_index),
        ("PGC STAC search + ArcticDEM COG range read", context.pgc_dem),
        ("TCVIS mirror STAC + COG range read", context.tcvis),
        # One check for both Earth Engine collections: the TCVIS mosaic, then a
        # Sentinel-2 listImages call and a small computePixels of one image.
        ("Earth Engine token exchange + computePixels, S2 listImages", context.earth_engine),
    ]
    results = []
    for name, check in checks:
        started = time.perf_counter()
        try:
            detail = check()
            ok = True
        except Exception as exc:  # a failed check is reported, not raised
            detail = f"{type(exc).__name__}: {exc}"
            ok = False
        results.append(CheckResult(name, ok, detail, time.perf_counter() - started))
    return results


class _Context:
    def __init__(self, sandbox: Sandbox, manifest: dict) -> None:
        self.sandbox = sandbox
        self.manifest = manifest
        self.endpoints = sandbox.endpoints
        self.net = NetworkSettings(timeout_s=30, max_retries=2, backoff_base_s=0.1)
        self.s3_settings = S3Settings(
            endpoint_url=self.endpoints.cdse_s3_endpoint,
            access_key_id=sandbox.credentials.access_key_id,
            secret_access_key=sandbox.credentials.secret_access_key,
        )
        self.http = HttpClient(self.net)

    def _first_item(self) -> dict:
        tile = self.manifest["main_tile"]
        client = open_stac(self.endpoints.cdse_stac_url, self.net, purpose="selftest")
        search = client.search(
            collections=["sentinel-2-l2a"],
            filter={"op": "=", "args": [{"property": "grid:code"}, f"MGRS-{tile}"]},
            filter_lang="cql2-json",
            max_items=1,
        )
        items = list(search.items_as_dicts())
        if not items:
            raise AssertionError(f"no item for tile {tile}")
        return items[0]

    def stac_search_tile(self) -> str:
        tile = self.manifest["main_tile"]
        expected = sum(1 for s in self.manifest["scenes"] if s["tile"] == tile)
        client = open_stac(self.endpoints.cdse_stac_url, self.net, purpose="selftest")
        search = client.search(
            collections=["sentinel-2-l2a"],
            filter={"op": "=", "args": [{"property": "grid:code"}, f"MGRS-{tile}"]},
            filter_lang="cql2-json",
            limit=3,
        )
        ids = [item["id"] for item in search.items_as_dicts()]
        if len(ids) != expected or len(set(ids)) != expected:
            raise AssertionError(f"expected {expected} items, got {len(ids)}")
        return f"{len(ids)} items for MGRS-{tile} in pages of 3"

    def stac_search_paging(self) -> str:
        counts: dict[str, int] = {}
        for scene in self.manifest["scenes"]:
            counts[scene["tile"]] = counts.get(scene["tile"], 0) + 1
        tile, expected = max(counts.items(), key=lambda kv: kv[1])
        client = open_stac(self.endpoints.cdse_stac_url, self.net, purpose="selftest")
        search = client.search(
            collections=["sentinel-2-l2a"],
            filter=f"\"grid:code\" = 'MGRS-{tile}'",
            filter_lang="cql2-text",
            limit=200,
        )
        pages = list(search.pages_as_dicts())
        ids = [item["id"] for page in pages for item in page["features"]]
        if len(ids) != expected or len(set(ids)) != expected:
            raise AssertionError(f"expected {expected} unique items, got {len(ids)}")
        return f"{len(ids)} items for MGRS-{tile} in {len(pages)} pages"

    def s3_band_checksum(self) -> str:
        asset = self._first_item()["assets"]["B04_10m"]
        data = S3Client(self.s3_settings, self.net).get_object_bytes(
            asset["href"],
            expected_size=asset["file:size"],
            checksum=asset["file:checksum"],
            purpose="selftest",
        )
        return f"{len(data) / 1e6:.2f} MB, size and SHA3-256 verified"

    def s3_band_gdal(self) -> str:
        import rasterio

        asset = self._first_item()["assets"]["B08_10m"]
        with (
            remote_raster_env(asset["href"], purpose="selftest", s3=self.s3_settings, net=self.net),
            rasterio.open(asset["href"]) as src,
        ):
            band = src.read(1)
            crs = src.crs.to_string()
        valid = band[band > 0]
        if list(band.shape) != asset["proj:shape"] or crs != asset["proj:code"]:
            raise AssertionError(f"grid {band.shape} {crs} differs from the item")
        reflectance = float(np.median(valid)) * 1e-4 - 0.1
        return f"{band.shape[1]}x{band.shape[0]} px {crs}, median NIR reflectance {reflectance:.2f}"

    def s3_refuses_anonymous(self) -> str:
        asset = self._first_item()["assets"]["B02_10m"]
        key = asset["href"].removeprefix("s3://")
        try:
            self.http.get_bytes(f"{self.endpoints.cdse_s3_endpoint}/{key}", purpose="selftest")
        except RemoteError as exc:
            if exc.status == 403:
                return "anonymous GET answered 403"
            raise
        raise AssertionError("an anonymous GET was served")

    def pgc_index(self) -> str:
        import geopandas as gpd

        data = self.http.get_bytes(self.endpoints.arcticdem_index_url, purpose="selftest")
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [n for n in archive.namelist() if n.endswith(".parquet")]
            frame = gpd.read_parquet(io.BytesIO(archive.read(names[0])))
        if not str(frame["fileurl"].iloc[0]).startswith(self.endpoints.pgc_data_url):
            raise AssertionError("index URLs do not point at the sandbox")
        return f"{len(names)} GeoParquet tables, {len(frame)} rows in {names[0]}"

    def pgc_dem(self) -> str:
        import rasterio
        from rasterio.windows import Window

        tile_id = self.manifest["dem_tiles"]["10m"][0]
        client = open_stac(self.endpoints.pgc_stac_url, self.net, purpose="selftest")
        items = list(
            client.search(
                collections=["arcticdem-mosaics-v4.1-10m"], ids=[tile_id]
            ).items_as_dicts()
        )
        if len(items) != 1:
            raise AssertionError(f"ArcticDEM item {tile_id} not found")
        href = items[0]["assets"]["dem"]["href"]
        with remote_raster_env(href, purpose="selftest", net=self.net), rasterio.open(href) as src:
            window = Window(0, 0, 256, 256)
            block = src.read(1, window=window)
            valid_share = float((block != src.nodata).mean())
            crs = src.crs.to_string()
        if crs != "EPSG:3413":
            raise AssertionError(f"DEM CRS is {crs}")
        return f"{tile_id}: 256² window over HTTP ranges ({crs}, {valid_share:.0%} valid)"

    def tcvis(self) -> str:
        import rasterio

        client = open_stac(self.endpoints.tcvis_stac_url, self.net, purpose="selftest")
        collections = [c.id for c in client.get_collections()]
        item = next(client.search(collections=collections, max_items=1).items_as_dicts())
        asset = next(a for a in item["assets"].values() if "data" in a.get("roles", ["data"]))
        with (
            remote_raster_env(asset["href"], purpose="selftest", net=self.net),
            rasterio.open(asset["href"]) as src,
        ):
            count, crs = src.count, src.crs.to_string()
        return f"{len(collections)} collection(s); {item['id']}: {count} band(s), {crs}"

    def earth_engine(self) -> str:
        credentials = self._ee_credentials()  # one token exchange for both parts
        return f"{self.earth_engine_tcvis(credentials)}; {self.earth_engine_s2(credentials)}"

    def earth_engine_tcvis(self, credentials: EarthEngineCredentials) -> str:
        # The same path the TCVIS Earth Engine source takes: a service-account key
        # exchanged for a token, then one small computePixels request as NPY.
        from darts.net.earthengine import EarthEngineClient, affine_grid
        from darts.sources.tcvis_gee import TCVIS_BANDS, TCVIS_EE_COLLECTIONS, mosaic_expression

        client = EarthEngineClient(
            self.endpoints.earth_engine_url,
            self.endpoints.ee_project,
            credentials,
            self.http,
        )
        period = sorted(TCVIS_EE_COLLECTIONS)[-1]
        bands = list(TCVIS_BANDS.values())
        # 64 x 64 px of ~30 m in the middle of the sandbox's TCVIS coverage.
        lon, lat = self._tcvis_centre()
        step = 0.00027
        grid = affine_grid(64, 64, (step, 0.0, lon, 0.0, -step, lat), "EPSG:4326")
        pixels = client.compute_pixels(
            mosaic_expression(TCVIS_EE_COLLECTIONS[period]),
            grid=grid,
            band_ids=bands,
            purpose="selftest",
        )
        if pixels.shape != (64, 64):
            raise AssertionError(f"computePixels answered {pixels.shape}, wanted (64, 64)")
        valid = float(np.mean(np.asarray(pixels[bands[0]]) > 0))
        return f"TCVIS {period}: 64x64 px, {len(bands)} bands as NPY, {valid:.0%} non-zero"

    def _ee_credentials(self) -> EarthEngineCredentials:
        from darts.net.google_auth import EarthEngineCredentials

        key_file = self.sandbox.layout.root.parent / "selftest-ee-service-account.json"
        key_file.write_text(json.dumps(self.sandbox.ee_key_file()))
        try:
            return EarthEngineCredentials.from_file(key_file)
        finally:
            key_file.unlink()

    def earth_engine_s2(self, credentials: EarthEngineCredentials) -> str:
        # What a Sentinel-2 source on Earth Engine does: list the main tile's images,
        # then read a window of one of them on its own 10 m grid.
        from darts.net.earthengine import EarthEngineClient, affine_grid

        tile = self.manifest["main_tile"]
        url = (
            f"{self.endpoints.earth_engine_url}/v1/projects/earthengine-public/assets/"
            "COPERNICUS/S2_SR_HARMONIZED:listImages"
        )
        listing = self.http.get_json(
            url,
            purpose="selftest",
            params={"filter": f'properties.MGRS_TILE = "{tile}"', "pageSize": 1},
            headers={"Authorization": f"Bearer {credentials.access_token(self.http)}"},
        )
        images = listing.get("images") or []
        if len(images) != 1 or "nextPageToken" not in listing:
            raise AssertionError(f"expected one image and a next page for {tile}")
        image = images[0]
        b2 = next(b for b in image["bands"] if b["id"] == "B2")["grid"]
        t, dims = b2["affineTransform"], b2["dimensions"]
        col, row = dims["width"] // 2 - 32, dims["height"] // 2 - 32
        grid = affine_grid(
            64,
            64,
            (
                t["scaleX"],
                0.0,
                t["translateX"] + col * t["scaleX"],
                0.0,
                t["scaleY"],
                t["translateY"] + row * t["scaleY"],
            ),
            b2["crsCode"],
        )
        expression = {
            "result": "0",
            "values": {
                "0": {
                    "functionInvocationValue": {
                        "functionName": "Image.load",
                        "arguments": {"id": {"constantValue": image["id"]}},
                    }
                }
            },
        }
        client = EarthEngineClient(
            self.endpoints.earth_engine_url, self.endpoints.ee_project, credentials, self.http
        )
        pixels = client.compute_pixels(
            expression, grid=grid, band_ids=["B2", "B4", "SCL"], purpose="selftest"
        )
        if pixels.shape != (64, 64) or pixels.dtype["B2"] != np.uint16:
            raise AssertionError(f"computePixels answered {pixels.shape} {pixels.dtype}")
        valid = float(np.mean(np.asarray(pixels["SCL"]) > 0))
        return (
            f"S2 {image['properties']['system:index']}: 64x64 px B2 B4 SCL, {valid:.0%} classified"
        )

    def _tcvis_centre(self) -> tuple[float, float]:
        client = open_stac(self.endpoints.tcvis_stac_url, self.net, purpose="selftest")
        collections = [c.id for c in client.get_collections()]
        item = next(client.search(collections=collections, max_items=1).items_as_dicts())
        west, south, east, north = item["bbox"]
        return (west + east) / 2, (south + north) / 2
