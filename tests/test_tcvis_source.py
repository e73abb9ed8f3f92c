"""TCVIS as a cube source: periods, tiling, and both sources against the sandbox.

Every fetched tile is compared with the world's COG read straight from disk, located
by rasterio's own georeferencing (not by the source's offset arithmetic), so a grid
shift of even one pixel fails.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio

from darts.errors import ConfigError, DartsError
from darts.grid.cube import CubeGrid, Window
from darts.net import HttpClient, NetworkSettings, OfflineError
from darts.net.earthengine import EarthEngineClient, EarthEngineCredentials
from darts.sandbox.layout import WorldLayout
from darts.sandbox.servers.faults import FaultConfig
from darts.sandbox.service import Sandbox
from darts.sources.tcvis import (
    TCVIS_BANDS,
    TCVIS_EE_COLLECTIONS,
    TCVIS_PERIODS,
    TCVIS_PIXEL_DEG,
    TILE_PX,
    TcvisGeeSource,
    TcvisMirrorError,
    TcvisStacSource,
    make_tcvis_source,
    tcvis_period,
    tcvis_spec,
    tcvis_tile_window,
    tcvis_tiles_for,
)
from darts.store.datacube.spec import CubeSpec, TileFetch, tile_buffer

SPEC = tcvis_spec()
FAST = NetworkSettings(timeout_s=30.0, max_retries=8, backoff_base_s=0.01, backoff_max_s=0.05)

# -- periods and grid (pure) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("scene_year", "period"),
    [
        (2015, "2000-2019"),
        (2016, "2000-2019"),
        (2017, "2000-2019"),
        (2018, "2000-2019"),
        (2019, "2001-2020"),
        (2020, "2003-2022"),
        (2021, "2003-2022"),
        (2022, "2005-2024"),
        (2023, "2005-2024"),
        (2024, "2005-2024"),
        (2025, "2005-2024"),
        (2026, "2005-2024"),
    ],
)
def test_period_applies_the_one_year_lag_once(scene_year: int, period: str) -> None:
    assert tcvis_period(scene_year) == period
    assert set(TCVIS_EE_COLLECTIONS) == set(TCVIS_PERIODS)


def test_spec_is_the_earth_engine_export_grid() -> None:
    grid = SPEC.grid
    assert SPEC.kind == "tcvis"
    assert grid.crs == "EPSG:4326" and grid.res == TCVIS_PIXEL_DEG
    # Pixel edges on multiples of the pixel size, as the Earth Engine exports.
    for edge in (grid.x0, grid.y0):
        assert abs(edge / TCVIS_PIXEL_DEG - round(edge / TCVIS_PIXEL_DEG)) < 1e-6
    xmin, ymin, xmax, ymax = grid.bounds
    assert xmin <= -180 < xmin + grid.res and xmax - grid.res < 180 <= xmax
    assert ymin <= 45 < ymin + grid.res and ymax - grid.res < 85 <= ymax
    assert [(v.name, v.dtype, v.fill_value) for v in SPEC.variables] == [
        ("tc_brightness", "uint8", 0),
        ("tc_greenness", "uint8", 0),
        ("tc_wetness", "uint8", 0),
    ]


def test_world_cogs_sit_on_the_cube_grid(sandbox_world: WorldLayout) -> None:
    for period in TCVIS_PERIODS:
        (path,) = sorted((sandbox_world.tcvis_data / period).glob("*.tif"))
        with rasterio.open(path) as dataset:
            t = dataset.transform
            assert math.isclose(t.a, SPEC.grid.res) and math.isclose(-t.e, SPEC.grid.res)
            col = (t.c - SPEC.grid.x0) / SPEC.grid.res
            row = (SPEC.grid.y0 - t.f) / SPEC.grid.res
            assert abs(col - round(col)) < 1e-6 and abs(row - round(row)) < 1e-6


def test_tiles_for_a_window_across_block_edges() -> None:
    window = Window(2 * TILE_PX - 5, 3 * TILE_PX + 1, 7 * TILE_PX, 8 * TILE_PX)
    assert tcvis_tiles_for(SPEC, window) == [
        "r0001_c00007",
        "r0002_c00007",
        "r0003_c00007",
    ]
    assert tcvis_tile_window(SPEC, "r0002_c00007") == Window(
        2 * TILE_PX, 3 * TILE_PX, 7 * TILE_PX, 8 * TILE_PX
    )
    assert tcvis_tiles_for(SPEC, Window(5, 5, 9, 9)) == []


def test_tiles_cover_the_window_and_the_last_ones_are_clipped() -> None:
    grid = SPEC.grid
    corner = Window(grid.height - 10, grid.height, grid.width - 10, grid.width)
    (last,) = tcvis_tiles_for(SPEC, corner)
    window = tcvis_tile_window(SPEC, last)
    assert window.row1 == grid.height and window.col1 == grid.width
    assert 0 < window.height <= TILE_PX and 0 < window.width <= TILE_PX
    assert window.intersection(corner) == corner
    # Outside the grid: clipped away, so no tiles.
    assert tcvis_tiles_for(SPEC, Window(grid.height, grid.height + 5, 0, 5)) == []


@pytest.mark.parametrize("bad", ["r1_c2", "c00001_r0001", "r0001_c0001x", ""])
def test_malformed_tile_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="TCVIS tile id"):
        tcvis_tile_window(SPEC, bad)


def test_tile_outside_the_cube_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        tcvis_tile_window(SPEC, "r9999_c00000")


# -- the sources against the sandbox ---------------------------------------------------


def world_cog(world: WorldLayout, period: str) -> Path:
    (path,) = sorted((world.tcvis_data / period).glob("*.tif"))
    return path


def cog_tiles(world: WorldLayout, period: str) -> list[str]:
    with rasterio.open(world_cog(world, period)) as dataset:
        return tcvis_tiles_for(SPEC, SPEC.grid.window(tuple(dataset.bounds)))


def expected_from_disk(world: WorldLayout, period: str, window: Window) -> dict[str, np.ndarray]:
    """The COG's values at the centres of the window's cube pixels (0 outside it)."""
    with rasterio.open(world_cog(world, period)) as dataset:
        data = dataset.read()
        t = dataset.transform
        # Per axis: the COG pixel holding each cube pixel centre (north-up, no shear).
        cols_1d = np.floor((SPEC.grid.x_coords(window) - t.c) / t.a).astype(int)
        rows_1d = np.floor((SPEC.grid.y_coords(window) - t.f) / t.e).astype(int)
        rows, cols = np.meshgrid(rows_1d, cols_1d, indexing="ij")
        inside = (rows >= 0) & (rows < dataset.height) & (cols >= 0) & (cols < dataset.width)
    out = {}
    for band, name in enumerate(TCVIS_BANDS):
        plane = np.zeros(window.shape, dtype=np.uint8)
        plane[inside] = data[band][rows[inside], cols[inside]]
        out[name] = plane
    return out


def fetch(
    source: TcvisGeeSource | TcvisStacSource, tile: str, scratch: Path
) -> tuple[TileFetch, dict[str, np.ndarray]]:
    window = source.tile_window(tile)
    with tile_buffer(source.spec, window, scratch) as buffer:
        result = source.fetch(tile, buffer)
        arrays = {name: np.array(array) for name, array in buffer.arrays.items()}
    return result, arrays


@pytest.fixture(scope="module")
def ee_key_file(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ee") / "key.json"
    path.write_text(json.dumps(sandbox.ee_key_file()))
    return path


@pytest.fixture
def http() -> Iterator[HttpClient]:
    with HttpClient(FAST) as client:
        yield client


def gee_source(sandbox: Sandbox, key: Path, http: HttpClient, period: str) -> TcvisGeeSource:
    ep = sandbox.endpoints
    credentials = EarthEngineCredentials.from_settings(key, ep.ee_project)
    client = EarthEngineClient(ep.earth_engine_url, ep.ee_project, credentials, http)
    return TcvisGeeSource(period, client, spec=SPEC)


@pytest.mark.usefixtures("loopback_only")
def test_gee_and_mirror_fetch_equal_the_cog_on_disk(
    sandbox: Sandbox,
    sandbox_world: WorldLayout,
    ee_key_file: Path,
    http: HttpClient,
    tmp_path: Path,
) -> None:
    period = "2003-2022"
    gee = gee_source(sandbox, ee_key_file, http, period)
    mirror = TcvisStacSource(period, sandbox.endpoints.tcvis_stac_url, spec=SPEC, http=http)
    tiles = cog_tiles(sandbox_world, period)
    assert len(tiles) >= 2  # the small world's box straddles a tile edge
    covered = 0
    for tile in tiles:
        expected = expected_from_disk(sandbox_world, period, gee.tile_window(tile))
        for source in (gee, mirror):
            result, arrays = fetch(source, tile, tmp_path)
            assert result.status == "filled"
            for name in TCVIS_BANDS:
                np.testing.assert_array_equal(arrays[name], expected[name], err_msg=tile)
        covered += int((expected["tc_greenness"] != 0).sum())
    with rasterio.open(world_cog(sandbox_world, period)) as dataset:
        assert covered == dataset.width * dataset.height  # every COG pixel landed once


@pytest.mark.usefixtures("loopback_only")
def test_mirror_reads_survive_truncated_cog_requests(
    sandbox: Sandbox, sandbox_world: WorldLayout, http: HttpClient, tmp_path: Path
) -> None:
    period = "2003-2022"
    mirror = TcvisStacSource(period, sandbox.endpoints.tcvis_stac_url, spec=SPEC, http=http)
    tiles = cog_tiles(sandbox_world, period)
    sandbox.clear_requests()
    # Every other COG request is cut short (GDAL's own reader failed on these), and a
    # third of the STAC requests answer 503.
    sandbox.set_faults("tcvis-data", FaultConfig(truncate_rate=0.5))
    sandbox.set_faults("tcvis-stac", FaultConfig(error_rate=1 / 3, error_statuses=(503,)))
    try:
        for tile in tiles:
            result, arrays = fetch(mirror, tile, tmp_path)
            assert result.status == "filled"
            expected = expected_from_disk(sandbox_world, period, mirror.tile_window(tile))
            for name in TCVIS_BANDS:
                np.testing.assert_array_equal(arrays[name], expected[name], err_msg=tile)
    finally:
        sandbox.set_faults("tcvis-data", FaultConfig())
        sandbox.set_faults("tcvis-stac", FaultConfig())
    log = sandbox.injector("tcvis-data").requests()
    assert {r["fault"] for r in log} == {"truncate", None}
    assert len([r for r in log if r["fault"]]) >= len(log) // 2


@pytest.mark.usefixtures("loopback_only")
def test_each_period_reads_its_own_collection(
    sandbox: Sandbox,
    sandbox_world: WorldLayout,
    ee_key_file: Path,
    http: HttpClient,
    tmp_path: Path,
) -> None:
    tile = cog_tiles(sandbox_world, TCVIS_PERIODS[0])[0]
    seen = []
    for period in TCVIS_PERIODS:
        result, arrays = fetch(gee_source(sandbox, ee_key_file, http, period), tile, tmp_path)
        assert result.source["asset"] == TCVIS_EE_COLLECTIONS[period]
        expected = expected_from_disk(sandbox_world, period, tcvis_tile_window(SPEC, tile))
        np.testing.assert_array_equal(arrays["tc_brightness"], expected["tc_brightness"])
        seen.append(arrays["tc_brightness"])
    # The periods see slumps for different shares of their span: the data differ.
    assert any(not np.array_equal(seen[0], other) for other in seen[1:])


@pytest.mark.usefixtures("loopback_only")
def test_sources_record_what_they_read(
    sandbox: Sandbox,
    sandbox_world: WorldLayout,
    ee_key_file: Path,
    http: HttpClient,
    tmp_path: Path,
) -> None:
    period = "2005-2024"
    tile = cog_tiles(sandbox_world, period)[0]
    gee_result, _ = fetch(gee_source(sandbox, ee_key_file, http, period), tile, tmp_path)
    assert gee_result.source["service"] == "earth-engine"
    assert gee_result.source["project"] == "darts-sandbox"
    assert gee_result.source["bands"] == ["TCB_slope", "TCG_slope", "TCW_slope"]
    mirror = TcvisStacSource(period, sandbox.endpoints.tcvis_stac_url, spec=SPEC, http=http)
    stac_result, _ = fetch(mirror, tile, tmp_path)
    assert stac_result.source["collection"] == f"tcvis-{period}"
    (item,) = stac_result.source["items"]
    assert item["id"] == world_cog(sandbox_world, period).stem
    assert item["file:checksum"]


@pytest.mark.usefixtures("loopback_only")
def test_tile_without_tcvis_data_is_empty(
    sandbox: Sandbox, ee_key_file: Path, http: HttpClient, tmp_path: Path
) -> None:
    tile = "r0000_c00000"  # 85° N, 180° W: far from the world
    gee_result, arrays = fetch(gee_source(sandbox, ee_key_file, http, "2001-2020"), tile, tmp_path)
    assert gee_result.status == "empty"
    assert not any(a.any() for a in arrays.values())
    mirror = TcvisStacSource("2001-2020", sandbox.endpoints.tcvis_stac_url, spec=SPEC, http=http)
    stac_result, arrays = fetch(mirror, tile, tmp_path)
    assert stac_result == TileFetch("empty", stac_result.source)
    assert stac_result.source["items"] == []
    assert not any(a.any() for a in arrays.values())


@pytest.mark.usefixtures("loopback_only")
def test_computepixels_429_and_503_are_retried(
    sandbox: Sandbox,
    sandbox_world: WorldLayout,
    ee_key_file: Path,
    http: HttpClient,
    tmp_path: Path,
) -> None:
    period = "2000-2019"
    source = gee_source(sandbox, ee_key_file, http, period)
    tile = cog_tiles(sandbox_world, period)[0]
    expected = expected_from_disk(sandbox_world, period, source.tile_window(tile))
    for status in (429, 503):
        sandbox.clear_requests()
        sandbox.set_faults(
            "earthengine",
            FaultConfig(error_rate=0.6, error_statuses=(status,), match="computePixels"),
        )
        fetches = 0
        try:
            # Fetch until the (seeded, random) faults have hit at least once.
            while status not in computepixels_statuses(sandbox) and fetches < 10:
                result, arrays = fetch(source, tile, tmp_path)
                fetches += 1
                assert result.status == "filled"
                np.testing.assert_array_equal(arrays["tc_wetness"], expected["tc_wetness"])
        finally:
            sandbox.set_faults("earthengine", FaultConfig())
        statuses = computepixels_statuses(sandbox)
        assert status in statuses
        assert statuses.count(200) == fetches  # every fetch succeeded in the end


def computepixels_statuses(sandbox: Sandbox) -> list[int]:
    requests = sandbox.injector("earthengine").requests()
    return [r["status"] for r in requests if "computePixels" in r["path"]]


@pytest.mark.usefixtures("no_network")
def test_offline_refuses_before_any_request(
    sandbox: Sandbox, ee_key_file: Path, offline_gate: object, tmp_path: Path
) -> None:
    sandbox.clear_requests()
    with HttpClient(FAST) as http:
        gee = gee_source(sandbox, ee_key_file, http, "2003-2022")
        mirror = TcvisStacSource(
            "2003-2022", sandbox.endpoints.tcvis_stac_url, spec=SPEC, http=http
        )
        for source in (gee, mirror):
            with pytest.raises(OfflineError, match="TCVIS 2003-2022 tile r0028_c00085"):
                fetch(source, "r0028_c00085", tmp_path)
    for name in ("earthengine", "tcvis-stac", "tcvis-data"):
        assert sandbox.injector(name).requests() == []


def test_constructors_and_factory_make_no_request(
    sandbox: Sandbox, ee_key_file: Path, http: HttpClient
) -> None:
    sandbox.clear_requests()
    ep = sandbox.endpoints
    gee = make_tcvis_source(
        "gee",
        "2001-2020",
        http=http,
        earth_engine_url=ep.earth_engine_url,
        ee_project=ep.ee_project,
        ee_credentials_file=ee_key_file,
    )
    stac = make_tcvis_source("stac", "2001-2020", http=http, tcvis_stac_url=ep.tcvis_stac_url)
    assert isinstance(gee, TcvisGeeSource) and isinstance(stac, TcvisStacSource)
    assert all(not sandbox.injector(name).requests() for name in ("earthengine", "tcvis-stac"))


def test_factory_refuses_incomplete_settings(http: HttpClient) -> None:
    with pytest.raises(ConfigError, match="--tcvis-stac-url"):
        make_tcvis_source("stac", "2001-2020", http=http)
    with pytest.raises(DartsError, match="--ee-credentials-file"):
        make_tcvis_source(
            "gee", "2001-2020", http=http, earth_engine_url="http://127.0.0.1:9", ee_project="p"
        )
    with pytest.raises(ConfigError, match="gee"):
        make_tcvis_source("ftp", "2001-2020", http=http)
    with pytest.raises(ValueError, match="unknown TCVIS period"):
        make_tcvis_source("stac", "1999-2001", http=http, tcvis_stac_url="http://127.0.0.1:9/")


@pytest.mark.usefixtures("loopback_only")
def test_mirror_refuses_items_off_the_cube_grid(
    sandbox: Sandbox, sandbox_world: WorldLayout, http: HttpClient, tmp_path: Path
) -> None:
    grid = SPEC.grid
    # Half a pixel east: every world COG now lies between cube pixel edges.
    shifted = CubeSpec(
        kind="tcvis",
        grid=CubeGrid(grid.crs, grid.x0 + grid.res / 2, grid.y0, grid.res, grid.width, grid.height),
        variables=SPEC.variables,
        chunk=SPEC.chunk,
    )
    mirror = TcvisStacSource("2001-2020", sandbox.endpoints.tcvis_stac_url, spec=shifted, http=http)
    tile = cog_tiles(sandbox_world, "2001-2020")[0]
    with pytest.raises(TcvisMirrorError, match="not on the TCVIS grid"):
        fetch(mirror, tile, tmp_path)
