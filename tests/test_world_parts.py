"""Unit tests of the synthetic world's building blocks (fast, no world build)."""

from __future__ import annotations

import multiprocessing
import subprocess
import time

import numpy as np
import pytest
from affine import Affine
from rasterio.io import MemoryFile
from shapely.geometry import box

from darts.grid import arcticdem as dem_grid
from darts.grid import mgrs
from darts.sandbox.world import WORLD_NAMES
from darts.sandbox.world.coords import RasterGrid, world_coords
from darts.sandbox.world.encode import jp2_bytes, multihash_sha3, sparse_cog_bytes
from darts.sandbox.world.noise import fbm, value_noise
from darts.sandbox.world.regions import footprint_3413, make_field
from darts.sandbox.world.s2names import ProductNames, absolute_orbit
from darts.sandbox.world.spec import MAIN, SECOND, ZONE9, small_spec, world_spec
from darts.sandbox.world.sun import sun_angles


def test_world_names() -> None:
    assert WORLD_NAMES == ("small", "full")
    with pytest.raises(ValueError, match="unknown world"):
        world_spec("medium", 0)


def test_windows_lie_in_their_tiles_on_the_60_m_grid() -> None:
    for window in (MAIN, SECOND, ZONE9):
        _, (xmin, ymin, xmax, ymax) = mgrs.tile_bounds(window.tile)
        wx0, wy0, wx1, wy1 = window.grid(10).bounds
        assert xmin <= wx0 < wx1 <= xmax and ymin <= wy0 < wy1 <= ymax
        assert (wx0 - xmin) % 60 == 0 and (ymax - wy1) % 60 == 0
        assert window.width % 6 == 0 and window.height % 6 == 0
        assert window.grid(60).shape == (window.height // 6, window.width // 6)


def test_windows_overlap_on_the_ground() -> None:
    main = footprint_3413(MAIN)
    assert main.intersection(footprint_3413(SECOND)).area > 1e6
    assert main.contains(footprint_3413(ZONE9))


def test_main_footprint_spans_two_or_more_10m_supertiles() -> None:
    bounds = footprint_3413(MAIN).buffer(200).bounds
    assert len(dem_grid.tiles_for_bounds(bounds, 10)) >= 2


def test_small_spec_schedule() -> None:
    spec = small_spec(0)
    by_tile: dict[str, int] = {}
    for acq in spec.acquisitions:
        by_tile[acq.window.tile] = by_tile.get(acq.window.tile, 0) + 1
    assert 8 <= by_tile[MAIN.tile] <= 10
    assert by_tile[ZONE9.tile] >= 230
    years = {a.sensing.year for a in spec.acquisitions if a.window == MAIN}
    assert years == set(range(2018, 2026))
    main = [a.weather for a in spec.acquisitions if a.window == MAIN]
    assert any(w.snow > 0 for w in main) and any(w.swath_edge for w in main)
    assert any(w.cloud == 0 for w in main) and any(w.cloud >= 0.5 for w in main)


def test_noise_is_a_pure_function_of_position() -> None:
    # The same ground point sampled through two different grids gets the same value.
    a = RasterGrid(32608, Affine(10, 0, 590000, 0, -10, 7661000), 64, 64)
    b = RasterGrid(32608, Affine(10, 0, 590000 + 320, 0, -10, 7661000 - 320), 64, 64)
    ca, cb = world_coords(a), world_coords(b)
    va = fbm(ca.x, ca.y, 900.0, 4, 7, "t")
    vb = fbm(cb.x, cb.y, 900.0, 4, 7, "t")
    np.testing.assert_allclose(va[32:, 32:], vb[:32, :32], atol=2e-3)
    single = value_noise(ca.x[40:41, 40:41], ca.y[40:41, 40:41], 900.0, 11)
    assert single[0, 0] == pytest.approx(value_noise(ca.x, ca.y, 900.0, 11)[40, 40], abs=1e-6)
    assert not np.allclose(fbm(ca.x, ca.y, 900.0, 4, 8, "t"), va)


def test_world_coords_match_proj() -> None:
    from pyproj import Transformer

    grid = RasterGrid(32608, Affine(10, 0, 590000, 0, -10, 7661000), 100, 90)
    coords = world_coords(grid)
    tr = Transformer.from_crs(32608, 3413, always_xy=True)
    for r, c in ((0, 0), (57, 33), (99, 89)):
        x, y = tr.transform(590000 + 10 * c + 5, 7661000 - 10 * r - 5)
        assert coords.x[r, c] == pytest.approx(x, abs=0.01)
        assert coords.y[r, c] == pytest.approx(y, abs=0.01)


def test_slumps_are_depressions_with_bare_scars() -> None:
    field = make_field(small_spec(0), 0)
    assert field.slumps
    slump = field.slumps[0]
    # Near the headwall (upslope of the centre), at the centre, far away.
    up = 0.5 * slump.radius * slump.elongation
    x = np.array([slump.x - up * slump.ux, slump.x, slump.x + 10 * slump.extent])
    y = np.array([slump.y - up * slump.uy, slump.y, slump.y])
    lowering, bare = slump.effect(x, y)
    assert lowering[0] > 0.6 * slump.depth and lowering[0] > lowering[1] > 0
    assert lowering[2] == 0
    assert bare[0] > 0.9 and bare[1] > 0.8 and bare[2] == 0
    polygon = slump.polygon()
    assert polygon.is_valid and polygon.area > 30 * 100  # >= 30 px at 10 m


def test_the_seed_changes_the_world() -> None:
    first, again, other = (make_field(small_spec(0), seed) for seed in (0, 0, 1))
    assert first == again
    assert [s.x for s in first.slumps] != [s.x for s in other.slumps]


def test_jp2_is_lossless_georeferenced_and_deterministic() -> None:
    data = (np.arange(120 * 90, dtype=np.uint32).reshape(120, 90) * 7 % 65535).astype(np.uint16)
    transform = Affine(20, 0, 590000, 0, -20, 7661000)
    first = jp2_bytes(data, 32608, transform)
    assert first == jp2_bytes(data, 32608, transform)
    with MemoryFile(first, ext=".jp2") as memfile, memfile.open() as ds:
        assert ds.driver == "JP2OpenJPEG"
        assert ds.crs.to_epsg() == 32608
        assert ds.transform == transform
        np.testing.assert_array_equal(ds.read(1), data)
    assert multihash_sha3(first).startswith("1620") and len(multihash_sha3(first)) == 68


def test_sparse_cog_holds_data_only_where_written() -> None:
    data = np.full((300, 200), 5.5, dtype=np.float32)
    transform = Affine(10, 0, -2_400_000, 0, -10, 0)
    raw = sparse_cog_bytes(data, 1000, 2000, (10000, 10000), 3413, transform, -9999.0)
    assert len(raw) < 200_000
    with MemoryFile(raw, ext=".tif") as memfile, memfile.open() as ds:
        assert ds.shape == (10000, 10000) and ds.nodata == -9999
        assert ds.overviews(1)[:3] == [2, 4, 8]
        assert ds.read(1, window=((1000, 1002), (2000, 2002))).tolist() == [[5.5, 5.5]] * 2
        assert ds.read(1, window=((0, 2), (0, 2))).tolist() == [[-9999.0] * 2] * 2
        overview = ds.read(1, out_shape=(1, 5000, 5000))
        assert overview[500, 1000] == 5.5


def test_sun_is_high_at_arctic_noon_in_july() -> None:
    from datetime import UTC, datetime

    azimuth, elevation = sun_angles(datetime(2024, 7, 15, 20, 38, tzinfo=UTC), -132.6, 69.0)
    assert 150 < azimuth < 200 and 35 < elevation < 50


def test_product_names_are_consistent() -> None:
    acq = next(a for a in small_spec(0).acquisitions if a.window == MAIN)
    names = ProductNames(acq, 0)
    mission, level, start, baseline, orbit, tile, _ = names.product_id.split("_")
    assert mission == "S2" + acq.platform[-1].upper() and level == "MSIL2A"
    assert start == acq.sensing.strftime("%Y%m%dT%H%M%S")
    assert baseline == "N0500" and orbit == f"R{acq.relative_orbit:03d}" and tile == "T08WNB"
    assert names.safe_key.startswith("Sentinel-2/MSI/L2A_N0500/2018/07/14/")
    assert absolute_orbit(acq.platform, acq.sensing, acq.relative_orbit) % 143 >= 0


def test_footprint_polygons_are_valid() -> None:
    from darts.sandbox.world.sentinel2 import footprint

    full = footprint(MAIN, swath_edge=False)
    cut = footprint(MAIN, swath_edge=True)
    assert full.is_valid and cut.is_valid and cut.area < full.area
    assert full.contains(cut.buffer(-1e-6))
    assert box(-133.0, 68.8, -132.3, 69.2).contains(full)


def _outlive(owner_pid: int) -> None:
    from darts.sandbox.world.jobs import exit_with

    exit_with(owner_pid, interval_s=0.05)
    time.sleep(60)


def test_a_build_worker_ends_when_its_build_is_gone() -> None:
    # A real forkserver child, as the build pool's workers are: its parent is the
    # forkserver, which stays alive, so only the owner watch can end it.
    owner = subprocess.Popen(["sleep", "60"])
    worker = multiprocessing.get_context("forkserver").Process(target=_outlive, args=(owner.pid,))
    worker.start()
    try:
        time.sleep(0.3)
        assert worker.is_alive()
        owner.kill()
        owner.wait()
        worker.join(timeout=10)
        assert worker.exitcode == 3
    finally:
        owner.kill()
        if worker.is_alive():
            worker.kill()
