"""ArcticDEM as a cube source: the spec, the tiling, the mosaic index and tile fetches.

Fetches run against the sandbox's PGC stand-ins; every fetched tile is compared with
the world's COGs read straight from disk and located by rasterio's own georeferencing
(not by the source's offset arithmetic), so a grid shift of one pixel fails.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio

from darts.errors import DartsError
from darts.grid import arcticdem as pgc_grid
from darts.grid.cube import CubeGrid, Window
from darts.net import HttpClient, NetworkSettings, OfflineError
from darts.sandbox.layout import WorldLayout
from darts.sandbox.servers.faults import FaultConfig
from darts.sandbox.servers.pgc import ARCTICDEM_INDEX_PATH
from darts.sandbox.service import Sandbox
from darts.sources.arcticdem import ARCTICDEM_EXTENT, ArcticDemSource, arcticdem_spec
from darts.sources.arcticdem_index import ZIP_NAME, ArcticDemIndex, parquet_name
from darts.store.datacube.spec import CubeSpec, TileFetch, tile_buffer

FAST = NetworkSettings(timeout_s=30.0, max_retries=8, backoff_base_s=0.01, backoff_max_s=0.05)
SMALL_WORLD_TILES = {
    2: ["40_18_1_1"],
    10: ["39_17", "39_18", "40_17", "40_18"],
    32: ["39_17", "39_18", "40_17", "40_18"],
}


def _requests(sandbox: Sandbox, server: str, path_part: str = "") -> list[dict[str, object]]:
    return [r for r in sandbox.injector(server).requests() if path_part in str(r["path"])]


def _offline_source(resolution_m: int) -> ArcticDemSource:
    """A source for the pure tiling methods: nothing here may touch the network."""
    http = HttpClient(NetworkSettings(offline=True))
    index = ArcticDemIndex("http://127.0.0.1:9/index.zip", Path("/nonexistent/index"), http)
    return ArcticDemSource(
        resolution_m, index=index, http=http, pgc_stac_url="http://127.0.0.1:9/api/v1/"
    )


@pytest.fixture
def http() -> HttpClient:
    return HttpClient(FAST)


@pytest.fixture(scope="module")
def shared_index(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> ArcticDemIndex:
    index = ArcticDemIndex(
        sandbox.endpoints.arcticdem_index_url,
        tmp_path_factory.mktemp("data") / "arcticdem_index",
        HttpClient(FAST),
    )
    for resolution in pgc_grid.RESOLUTIONS_M:
        index.tiles(resolution)
    return index


def _source(
    sandbox: Sandbox, index: ArcticDemIndex, http: HttpClient, resolution_m: int
) -> ArcticDemSource:
    return ArcticDemSource(
        resolution_m,
        index=index,
        http=http,
        pgc_stac_url=sandbox.endpoints.pgc_stac_url,
    )


# -- spec and tiling (pure) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("resolution", "x0", "y0", "width", "height"),
    [
        (2, -4000100.0, 4100100.0, 3_700_100, 3_750_100),
        (10, -4000100.0, 4100100.0, 740_020, 750_020),
        (32, -4000096.0, 4100096.0, 231_256, 234_381),
    ],
)
def test_spec_grid(resolution: int, x0: float, y0: float, width: int, height: int) -> None:
    spec = arcticdem_spec(resolution)
    assert spec.kind == f"arcticdem-{resolution}m"
    assert spec.grid == CubeGrid("EPSG:3413", x0, y0, float(resolution), width, height)
    assert spec.chunk == 2048
    assert spec.attrs["precision_m"] == 0.01 and spec.attrs["resolution_m"] == resolution
    dem, mask = spec.variable("dem"), spec.variable("datamask")
    assert dem.dtype == "float32" and np.isnan(dem.fill_value) and dem.attrs["units"] == "m"
    assert mask.dtype == "uint8" and mask.fill_value == 0
    if resolution != 32:
        assert spec.grid.bounds == ARCTICDEM_EXTENT


def test_spec_refuses_other_resolutions() -> None:
    with pytest.raises(DartsError, match="choose 2, 10 or 32"):
        arcticdem_spec(5)


@pytest.mark.parametrize(
    ("resolution", "tile", "size"),
    [
        (2, "40_18_1_1", 25_000),
        (2, "07_74_2_2", 25_000),
        (10, "40_18", 10_000),
        (10, "58_05", 10_000),
        (32, "40_18", 3_125),
        (32, "74_74", 3_125),
    ],
)
def test_tile_edges_fall_on_cube_pixel_edges(resolution: int, tile: str, size: int) -> None:
    source = _offline_source(resolution)
    window = source.tile_window(tile)
    assert window.shape == (size, size)
    assert source.spec.grid.bounds_of(window) == pgc_grid.tile_bounds(tile)
    assert source.tiles_for(window) == [tile]
    # Item ids name the same tile.
    assert source.tile_window(pgc_grid.item_id(tile, resolution)) == window


def test_tiles_for_is_half_open_at_tile_edges() -> None:
    source = _offline_source(10)
    w = source.tile_window("40_18")
    assert w == Window(410_010, 420_010, 170_010, 180_010)
    # Touching 40_18 from the west, east, north and south selects only the neighbour.
    assert source.tiles_for(Window(w.row0, w.row1, w.col0 - 5, w.col0)) == ["40_17"]
    assert source.tiles_for(Window(w.row0, w.row1, w.col1, w.col1 + 5)) == ["40_19"]
    assert source.tiles_for(Window(w.row0 - 5, w.row0, w.col0, w.col1)) == ["41_18"]
    assert source.tiles_for(Window(w.row1, w.row1 + 5, w.col0, w.col1)) == ["39_18"]
    # One pixel across the corner selects all four tiles around it, sorted.
    corner = Window(w.row1 - 1, w.row1 + 1, w.col0 - 1, w.col0 + 1)
    assert source.tiles_for(corner) == ["39_17", "39_18", "40_17", "40_18"]
    grown = Window(w.row0 - 1, w.row1 + 1, w.col0 - 1, w.col1 + 1)
    assert len(source.tiles_for(grown)) == 9
    assert source.tiles_for(Window(w.row0, w.row0, w.col0, w.col1)) == []


def test_tiles_for_at_the_cube_edge_names_only_real_tiles() -> None:
    source = _offline_source(10)
    # The cube reaches 100 m (10 px) west of the PGC grid's origin: no tile there.
    assert source.tiles_for(Window(0, 10, 0, 10)) == []
    assert source.tiles_for(Window(0, 10, 0, 11)) == ["82_01"]
    assert source.tile_window("82_01") == Window(0, 10, 10, 10_010)


def test_2m_tiles_are_quarters() -> None:
    source = _offline_source(2)
    with pytest.raises(ValueError, match="quarters"):
        source.tile_window("40_18")
    assert source.tiles_for(source.tile_window("40_18_2_1")) == ["40_18_2_1"]


def test_a_spec_off_the_pgc_grid_is_refused() -> None:
    http = HttpClient(NetworkSettings(offline=True))
    index = ArcticDemIndex("http://127.0.0.1:9/index.zip", Path("/nonexistent/index"), http)
    good = arcticdem_spec(10)
    shifted = CubeSpec(
        kind=good.kind,
        grid=CubeGrid("EPSG:3413", good.grid.x0 - 5.0, good.grid.y0, 10.0, 1000, 1000),
        variables=good.variables,
        chunk=good.chunk,
    )
    source = ArcticDemSource(
        10, index=index, http=http, pgc_stac_url="http://127.0.0.1:9/", spec=shifted
    )
    with pytest.raises(ValueError, match="not on a pixel edge"):
        source.tile_window("82_01")


# -- the mosaic index -------------------------------------------------------------------


def test_index_is_downloaded_once_and_kept_in_its_folder(
    sandbox: Sandbox, tmp_path: Path, http: HttpClient, loopback_only: object
) -> None:
    index_dir = tmp_path / "data" / "arcticdem_index"
    first = ArcticDemIndex(sandbox.endpoints.arcticdem_index_url, index_dir, http)
    assert not first.is_downloaded()
    assert not index_dir.exists()  # the constructor touches nothing
    sandbox.clear_requests()

    tiles = first.tiles(10)
    assert sorted(tiles) == SMALL_WORLD_TILES[10]
    entry = tiles["40_18"]
    assert entry.dem_id == "40_18_10m_v4.1" and entry.supertile == "40_18"
    assert entry.bounds == pgc_grid.tile_bounds("40_18")
    assert entry.fileurl.endswith("40_18_10m_v4.1_dem.tif")
    assert first.is_downloaded()
    assert first.tiles(10) is tiles  # cached in memory

    second = ArcticDemIndex(sandbox.endpoints.arcticdem_index_url, index_dir, http)
    for resolution, names in SMALL_WORLD_TILES.items():
        assert sorted(second.tiles(resolution)) == names
    assert len(_requests(sandbox, "pgc-data", ARCTICDEM_INDEX_PATH)) == 1
    # Everything lives in the index folder (and its lock next to it), nowhere else.
    assert (index_dir / ZIP_NAME).is_file()
    assert {p.name for p in (tmp_path / "data").iterdir()} == {
        "arcticdem_index",
        ".arcticdem_index.lock",
    }


def test_parallel_first_use_downloads_once(
    sandbox: Sandbox, tmp_path: Path, http: HttpClient
) -> None:
    index_dir = tmp_path / "arcticdem_index"
    url = sandbox.endpoints.arcticdem_index_url
    sandbox.clear_requests()
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def stage() -> None:
        try:
            results.append(sorted(ArcticDemIndex(url, index_dir, http).tiles(32)))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=stage) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert results == [SMALL_WORLD_TILES[32]] * 4
    assert len(_requests(sandbox, "pgc-data", ARCTICDEM_INDEX_PATH)) == 1


def test_broken_index_files_are_repaired(
    sandbox: Sandbox, tmp_path: Path, http: HttpClient
) -> None:
    index_dir = tmp_path / "arcticdem_index"
    url = sandbox.endpoints.arcticdem_index_url
    ArcticDemIndex(url, index_dir, http).tiles(10)
    sandbox.clear_requests()

    # An unreadable table is extracted again from the kept zip, without the network.
    (index_dir / parquet_name(10)).write_bytes(b"not parquet")
    assert sorted(ArcticDemIndex(url, index_dir, http).tiles(10)) == SMALL_WORLD_TILES[10]
    assert _requests(sandbox, "pgc-data") == []

    # An unreadable zip is downloaded again when a table has to come out of it.
    (index_dir / ZIP_NAME).write_bytes(b"PK broken")
    assert sorted(ArcticDemIndex(url, index_dir, http).tiles(2)) == SMALL_WORLD_TILES[2]
    assert len(_requests(sandbox, "pgc-data", ARCTICDEM_INDEX_PATH)) == 1


def test_offline_without_index_raises_and_requests_nothing(
    sandbox: Sandbox, tmp_path: Path, http: HttpClient, offline_gate: object
) -> None:
    index = ArcticDemIndex(sandbox.endpoints.arcticdem_index_url, tmp_path / "idx", http)
    source = _source(sandbox, index, http, 10)
    sandbox.clear_requests()
    window = source.tile_window("41_18")
    with (
        tile_buffer(source.spec, window, tmp_path / "scratch") as buffer,
        pytest.raises(OfflineError, match="ArcticDEM mosaic tile index"),
    ):
        source.fetch("41_18", buffer)
    assert _requests(sandbox, "pgc-data") == [] and _requests(sandbox, "pgc-stac") == []
    assert not index.is_downloaded()


def test_offline_with_index_knows_empty_tiles_and_refuses_the_rest(
    sandbox: Sandbox, shared_index: ArcticDemIndex, tmp_path: Path, offline_gate: object
) -> None:
    http = HttpClient(FAST)
    index = ArcticDemIndex(shared_index.index_url, shared_index.index_dir, http)
    source = _source(sandbox, index, http, 10)
    sandbox.clear_requests()
    with tile_buffer(source.spec, source.tile_window("41_18"), tmp_path) as buffer:
        assert source.fetch("41_18", buffer).status == "empty"
    with (
        tile_buffer(source.spec, source.tile_window("40_18"), tmp_path) as buffer,
        pytest.raises(OfflineError, match="40_18"),
    ):
        source.fetch("40_18", buffer)
    assert _requests(sandbox, "pgc-data") == [] and _requests(sandbox, "pgc-stac") == []


# -- fetching tiles -----------------------------------------------------------------------


def _expected_from_disk(
    world: WorldLayout, spec: CubeSpec, tile: str, resolution: int, window: Window
) -> tuple[np.ndarray, np.ndarray]:
    """The cube pixels of ``window`` as the world's COGs on disk say, placed by
    rasterio's georeferencing of those files."""
    folder = world.pgc_data / f"arcticdem/mosaics/v4.1/{resolution}m/{pgc_grid.supertile_of(tile)}"
    stem = pgc_grid.item_id(tile, resolution)
    with rasterio.open(folder / f"{stem}_dem.tif") as dem_file:
        assert spec.grid.window(tuple(dem_file.bounds)) == window  # type: ignore[arg-type]
        dem = dem_file.read(1)
    with rasterio.open(folder / f"{stem}_datamask.tif") as mask_file:
        mask = (mask_file.read(1) == 1) & (dem != -9999.0)
    return np.where(mask, dem, np.float32(np.nan)), mask.astype(np.uint8)


@pytest.mark.parametrize(("resolution", "tile"), [(2, "40_18_1_1"), (10, "40_18"), (32, "39_17")])
def test_fetch_copies_the_tile_pixel_for_pixel(
    sandbox: Sandbox,
    sandbox_world: WorldLayout,
    shared_index: ArcticDemIndex,
    http: HttpClient,
    tmp_path: Path,
    loopback_only: object,
    resolution: int,
    tile: str,
) -> None:
    source = _source(sandbox, shared_index, http, resolution)
    window = source.tile_window(tile)
    with tile_buffer(source.spec, window, tmp_path) as buffer:
        result = source.fetch(tile, buffer)
        dem, mask = buffer.arrays["dem"], buffer.arrays["datamask"]
        expected_dem, expected_mask = _expected_from_disk(
            sandbox_world, source.spec, tile, resolution, window
        )
        assert np.array_equal(mask, expected_mask)
        assert np.array_equal(dem, expected_dem, equal_nan=True)
        assert 0 < int(mask.sum()) < mask.size  # the world's DEM area is part of the tile
        assert np.array_equal(np.isfinite(dem), mask == 1)
        valid = dem[mask == 1]
        assert np.array_equal(valid, np.round(valid, 2))

    assert result.status == "filled"
    item_id = pgc_grid.item_id(tile, resolution)
    assert result.source["item_id"] == item_id
    assert result.source["collection"] == f"arcticdem-mosaics-v4.1-{resolution}m"
    assert result.source["valid_pixels"] == int(expected_mask.sum())
    supertile = pgc_grid.supertile_of(tile)
    folder = sandbox_world.pgc_data / f"arcticdem/mosaics/v4.1/{resolution}m/{supertile}"
    published = json.loads((folder / f"{item_id}.json").read_text())
    for name in ("dem", "datamask"):
        asset = result.source["assets"][name]
        assert asset["href"].startswith(sandbox.endpoints.pgc_data_url)
        assert asset["href"].endswith(f"{item_id}_{name}.tif")
        assert asset["file:checksum"] == published["assets"][name]["file:checksum"]


def test_a_tile_missing_from_the_index_is_empty_without_requests(
    sandbox: Sandbox, shared_index: ArcticDemIndex, http: HttpClient, tmp_path: Path
) -> None:
    source = _source(sandbox, shared_index, http, 10)
    sandbox.clear_requests()
    window = source.tile_window("41_18")
    with tile_buffer(source.spec, window, tmp_path) as buffer:
        result = source.fetch("41_18", buffer)
        assert bool(np.isnan(buffer.arrays["dem"]).all())
        assert not buffer.arrays["datamask"].any()
    assert result == TileFetch("empty", result.source)
    assert result.source["collection"] == "arcticdem-mosaics-v4.1-10m"
    assert _requests(sandbox, "pgc-stac") == [] and _requests(sandbox, "pgc-data") == []


def test_503_burst_on_the_stac_api_is_retried(
    sandbox: Sandbox, shared_index: ArcticDemIndex, http: HttpClient, tmp_path: Path
) -> None:
    source = _source(sandbox, shared_index, http, 32)
    sandbox.clear_requests()
    sandbox.set_faults("pgc-stac", FaultConfig(error_rate=0.9, error_statuses=(503,)))
    try:
        with tile_buffer(source.spec, source.tile_window("40_18"), tmp_path) as buffer:
            result = source.fetch("40_18", buffer)
    finally:
        sandbox.set_faults("pgc-stac", FaultConfig())
    assert result.status == "filled" and result.source["valid_pixels"] > 0
    log = _requests(sandbox, "pgc-stac", "/items/40_18_32m_v4.1")
    assert len(log) >= 2 and all(r["status"] == 503 for r in log[:-1])
    assert log[-1]["status"] == 200


@pytest.mark.parametrize(
    "faults",
    [
        # One of every two COG requests cut short, then closed (GDAL's own reader
        # failed the tile on these).
        FaultConfig(truncate_rate=0.5, match=r"\.tif$"),
        FaultConfig(reset_rate=0.25, error_rate=0.25, error_statuses=(429, 503), match=r"\.tif$"),
    ],
    ids=["truncated", "reset-429-503"],
)
def test_faulted_cog_reads_are_retried_and_the_tile_is_unchanged(
    sandbox: Sandbox,
    sandbox_world: WorldLayout,
    shared_index: ArcticDemIndex,
    http: HttpClient,
    tmp_path: Path,
    faults: FaultConfig,
) -> None:
    source = _source(sandbox, shared_index, http, 10)
    window = source.tile_window("40_18")
    sandbox.clear_requests()
    sandbox.set_faults("pgc-data", faults)
    try:
        with tile_buffer(source.spec, window, tmp_path) as buffer:
            result = source.fetch("40_18", buffer)
            expected_dem, expected_mask = _expected_from_disk(
                sandbox_world, source.spec, "40_18", 10, window
            )
            assert np.array_equal(buffer.arrays["datamask"], expected_mask)
            assert np.array_equal(buffer.arrays["dem"], expected_dem, equal_nan=True)
    finally:
        sandbox.set_faults("pgc-data", FaultConfig())
    assert result.status == "filled"
    log = _requests(sandbox, "pgc-data", ".tif")
    faulted = [r for r in log if r["fault"]]
    assert len(faulted) >= len(log) // 2 - 1 and faulted
    # Each faulted request was retried once, and nothing else was fetched again.
    assert len(log) - len(faulted) == len({(r["path"], r["range"]) for r in log})


def test_fetch_refuses_a_buffer_of_another_tile(
    sandbox: Sandbox, shared_index: ArcticDemIndex, http: HttpClient, tmp_path: Path
) -> None:
    source = _source(sandbox, shared_index, http, 32)
    with (
        tile_buffer(source.spec, source.tile_window("40_17"), tmp_path) as buffer,
        pytest.raises(ValueError, match="tile 40_18"),
    ):
        source.fetch("40_18", buffer)


def test_fetch_accepts_an_item_id(
    sandbox: Sandbox, shared_index: ArcticDemIndex, http: HttpClient, tmp_path: Path
) -> None:
    source = _source(sandbox, shared_index, http, 32)
    with tile_buffer(source.spec, source.tile_window("39_18_32m_v4.1"), tmp_path) as buffer:
        result = source.fetch("39_18_32m_v4.1", buffer)
    assert result.status == "filled" and result.source["item_id"] == "39_18_32m_v4.1"


def test_an_index_in_the_earlier_location_is_read_without_fetching(
    shared_index: ArcticDemIndex, tmp_path: Path
) -> None:
    # The index moved into the ArcticDEM cube's hidden folder; the tables an earlier
    # darts extracted elsewhere are still read (offline too), and nothing is written
    # into either folder.
    offline = HttpClient(NetworkSettings(offline=True))
    new_dir = tmp_path / ".dem.icechunk.darts" / "arcticdem_index"
    index = ArcticDemIndex(
        "http://127.0.0.1:9/index.zip", new_dir, offline, also_read=(shared_index.index_dir,)
    )
    assert sorted(index.tiles(10)) == SMALL_WORLD_TILES[10]
    assert not new_dir.exists()
    # Without it, offline, the missing index is one clear refusal.
    alone = ArcticDemIndex("http://127.0.0.1:9/index.zip", tmp_path / "other", offline)
    with pytest.raises(OfflineError):
        alone.tiles(10)
