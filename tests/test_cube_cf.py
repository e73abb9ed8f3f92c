"""The datacubes and staged scenes read with standard tools alone: icechunk + xarray +
rioxarray, in a subprocess that never imports darts.

The ArcticDEM (10 m) and TCVIS cubes are filled from the sandbox as the pipeline fills
them; what the plain readers see (CRS, transform, pixel-centre coordinates, decoded
values) is compared with the cube grid and with what darts' own reader returns for the
same window. Cubes of an earlier darts version (no coordinates) stay readable by darts
and get their georeferencing with their next write.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import icechunk
import numpy as np
import pytest
import rasterio
import xarray as xr
import zarr
from affine import Affine
from pyproj import CRS

from darts.grid.cube import CubeGrid, Window
from darts.net import HttpClient, NetworkSettings
from darts.sandbox.layout import WorldLayout
from darts.sandbox.service import Sandbox
from darts.sources.arcticdem import ArcticDemSource, arcticdem_spec
from darts.sources.arcticdem_index import ArcticDemIndex
from darts.sources.tcvis import TcvisStacSource, tcvis_spec, tcvis_tiles_for
from darts.store.datacube import Datacube
from darts.store.datacube.schema import GEOREF_ARRAYS, _coordinate_chunk
from darts.store.datacube.spec import RESERVED_NAMES, CubeSpec, CubeVariable
from darts.store.datacube.testing import PatternTileSource
from darts.store.scenes import BandEncoding, SceneStore

README = Path(__file__).parents[1] / "README.md"
HEADING = "### Reading the stores with standard tools"
FAST = NetworkSettings(timeout_s=30.0, max_retries=8, backoff_base_s=0.01, backoff_max_s=0.05)

# The small world's DEM lies across the edge of these two 10 m tiles.
ARCTICDEM_TILES = ["40_18", "39_18"]
# Across that edge (row 420,010) and, west of column 170,010, over tiles never filled.
DEM_WINDOW = Window(418_700, 420_400, 169_900, 171_100)
TCVIS_PERIOD = "2005-2024"

SCENE_FIXTURE = (
    Path(__file__).parents[1] / "src/darts/sandbox/fixtures/cdse/search-sentinel-2-l2a-T36NYH.json"
)
SCENE = "S2B_MSIL2A_20200322T074609_N0500_R135_T36NYH_20230612T214223"
SCENE_X0, SCENE_Y0 = 699960.0, 300000.0

# Reads a cube with icechunk + xarray + rioxarray only; the window's arrays go to an
# .npz file, the rest is printed as JSON.
READER = textwrap.dedent(
    """
    import json, sys

    import icechunk
    import numpy as np
    import rioxarray  # noqa: F401
    import xarray as xr

    args = json.loads(sys.argv[1])
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(args["path"]))

    def open_cube(**options):
        store = repo.readonly_session("main").store
        return xr.open_zarr(store, group=args["group"], consolidated=False, **options)

    ds, raw = open_cube(), open_cube(mask_and_scale=False)
    r0, r1, c0, c1 = args["window"]
    window = {"y": slice(r0, r1), "x": slice(c0, c1)}
    arrays = {"x": ds.x.values[c0:c1], "y": ds.y.values[r0:r1]}
    variables = {}
    for name in args["variables"]:
        arrays[name] = ds[name].isel(window).values
        arrays["raw_" + name] = raw[name].isel(window).values
        variables[name] = {
            "dtype": str(ds[name].dtype),
            "shape": list(ds[name].shape),
            "grid_mapping": ds[name].encoding.get("grid_mapping")
            or ds[name].attrs.get("grid_mapping"),
            "nodata": str(ds[name].rio.nodata),
        }
    np.savez(args["out"], **arrays)
    report = {
        "crs_wkt": ds.rio.crs.to_wkt(),
        "transform": list(ds.rio.transform())[:6],
        "transform_recalc": list(ds.rio.transform(recalc=True))[:6],
        "shape": [ds.sizes["y"], ds.sizes["x"]],
        "coords": sorted(ds.coords),
        "x_attrs": dict(ds.x.attrs),
        "y_attrs": dict(ds.y.attrs),
        "spatial_ref": {k: v for k, v in ds.spatial_ref.attrs.items() if isinstance(v, str)},
        "variables": variables,
        "darts_modules": sorted(m for m in sys.modules if m.split(".")[0] == "darts"),
    }
    print(json.dumps(report))
    """
)


def read_plainly(
    location: Path, group: str | None, window: Window, variables: list[str], out: Path
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Run READER in a fresh interpreter; its report and its arrays."""
    args = {
        "path": str(location),
        "group": group,
        "window": [window.row0, window.row1, window.col0, window.col1],
        "variables": variables,
        "out": str(out),
    }
    done = run_python(READER, json.dumps(args))
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["darts_modules"] == []  # the plain reader never touched darts
    with np.load(out) as saved:
        return report, {name: saved[name] for name in saved.files}


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def assert_grid(report: dict[str, Any], grid: CubeGrid) -> None:
    assert CRS.from_wkt(report["crs_wkt"]).equals(CRS.from_user_input(grid.crs))
    want = list(grid.transform)[:6]
    assert report["transform"] == pytest.approx(want, rel=0, abs=1e-9 * grid.res)
    assert report["transform_recalc"] == pytest.approx(want, rel=0, abs=1e-6 * grid.res)
    assert report["shape"] == [grid.height, grid.width]
    assert {"x", "y", "spatial_ref"} <= set(report["coords"])
    ref = report["spatial_ref"]
    assert CRS.from_wkt(ref["crs_wkt"]).equals(CRS.from_wkt(ref["spatial_ref"]))
    gdal = [float(v) for v in ref["GeoTransform"].split()]
    assert gdal == [grid.x0, grid.res, 0.0, grid.y0, 0.0, -grid.res]


def assert_coordinates(arrays: dict[str, np.ndarray], grid: CubeGrid, window: Window) -> None:
    """Pixel centres, the very values darts' reader gives its Datasets."""
    np.testing.assert_array_equal(arrays["x"], grid.x_coords(window))
    np.testing.assert_array_equal(arrays["y"], grid.y_coords(window))
    # A few pixels by hand: the window's first and last column and row.
    assert arrays["x"][0] == pytest.approx(grid.x0 + (window.col0 + 0.5) * grid.res, abs=1e-9)
    assert arrays["x"][-1] == pytest.approx(grid.x0 + (window.col1 - 0.5) * grid.res, abs=1e-9)
    assert arrays["y"][0] == pytest.approx(grid.y0 - (window.row0 + 0.5) * grid.res, abs=1e-9)
    assert arrays["y"][-1] == pytest.approx(grid.y0 - (window.row1 - 0.5) * grid.res, abs=1e-9)


def assert_heights(decoded: np.ndarray, raw: np.ndarray, darts: np.ndarray) -> None:
    """xarray's float32 metres against darts' reader.

    CF decoding multiplies the stored centimetres by the float32 scale_factor (0.01
    is not exact in binary); darts divides by 100, which gives the float32 nearest to
    the height. The two agree to the centimetre and differ by at most 1 float32 ulp
    (< 0.5 mm below 8,192 m) in some pixels."""
    assert decoded.dtype == np.float32 and darts.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(decoded), np.isnan(darts))
    np.testing.assert_array_equal(decoded, raw * np.float32(0.01))
    np.testing.assert_array_equal(raw / np.float32(100), darts)
    valid = ~np.isnan(darts)
    np.testing.assert_array_max_ulp(decoded[valid], darts[valid], maxulp=1)
    np.testing.assert_array_equal(
        np.round(decoded[valid].astype(np.float64) * 100),
        np.round(darts[valid].astype(np.float64) * 100),
    )


# -- the cubes, filled from the sandbox ---------------------------------------------------


@pytest.fixture(scope="module")
def arcticdem_cube(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Datacube:
    root = tmp_path_factory.mktemp("cf-arcticdem")
    with HttpClient(FAST) as http:
        index = ArcticDemIndex(sandbox.endpoints.arcticdem_index_url, root / "index", http)
        source = ArcticDemSource(
            10, index=index, http=http, pgc_stac_url=sandbox.endpoints.pgc_stac_url
        )
        cube = Datacube.open(root / "arcticdem_10m.icechunk", source.spec)
        cube.fill(ARCTICDEM_TILES, source)
    return cube


def tcvis_cog_window(world: WorldLayout, spec: CubeSpec) -> Window:
    (cog,) = sorted((world.tcvis_data / TCVIS_PERIOD).glob("*.tif"))
    with rasterio.open(cog) as dataset:
        return spec.grid.window(tuple(dataset.bounds), 20 * spec.grid.res)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tcvis_cube(
    sandbox: Sandbox, sandbox_world: WorldLayout, tmp_path_factory: pytest.TempPathFactory
) -> Datacube:
    spec = tcvis_spec()
    location = tmp_path_factory.mktemp("cf-tcvis") / "tcvis.icechunk"
    with HttpClient(FAST) as http:
        source = TcvisStacSource(
            TCVIS_PERIOD, sandbox.endpoints.tcvis_stac_url, spec=spec, http=http
        )
        cube = Datacube.open(location, spec, group=TCVIS_PERIOD)
        cube.fill(tcvis_tiles_for(spec, tcvis_cog_window(sandbox_world, spec)), source)
    return cube


@pytest.fixture(scope="module")
def staged_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scene as prep-data stages it: bands with x/y coordinates on a UTM grid."""
    item = next(f for f in json.loads(SCENE_FIXTURE.read_text())["features"] if f["id"] == SCENE)
    store = SceneStore(tmp_path_factory.mktemp("cf-scenes") / "cdse", BandEncoding(chunk=256))
    values = np.arange(300 * 400, dtype="uint16").reshape(300, 400)
    band = xr.DataArray(
        values,
        dims=("y", "x"),
        coords={
            "y": SCENE_Y0 - 5.0 - 10.0 * np.arange(300),
            "x": SCENE_X0 + 5.0 + 10.0 * np.arange(400),
        },
        attrs={"nodata": 0},
    )
    store.write_bands(SCENE, item, {"B02": band})
    return store.scene_path(SCENE)


# -- read with standard tools ---------------------------------------------------------------


def test_arcticdem_cube_reads_with_xarray_and_rioxarray(
    arcticdem_cube: Datacube, tmp_path: Path
) -> None:
    grid = arcticdem_cube.spec.grid
    report, arrays = read_plainly(
        Path(arcticdem_cube.location), None, DEM_WINDOW, ["dem", "datamask"], tmp_path / "a.npz"
    )
    assert_grid(report, grid)
    assert report["transform"] == [10.0, 0.0, -4000100.0, 0.0, -10.0, 4100100.0]
    assert report["shape"] == [750_020, 740_020]
    assert report["x_attrs"]["standard_name"] == "projection_x_coordinate"
    assert report["y_attrs"]["standard_name"] == "projection_y_coordinate"
    assert report["x_attrs"]["units"] == report["y_attrs"]["units"] == "metre"
    assert report["variables"]["dem"] == {
        "dtype": "float32",
        "shape": [750_020, 740_020],
        "grid_mapping": "spatial_ref",
        "nodata": "nan",
    }
    assert report["variables"]["datamask"]["dtype"] == "uint8"
    assert report["variables"]["datamask"]["grid_mapping"] == "spatial_ref"
    assert_coordinates(arrays, grid, DEM_WINDOW)

    ours = arcticdem_cube.read(DEM_WINDOW)
    np.testing.assert_array_equal(ours.x.values, arrays["x"])
    np.testing.assert_array_equal(ours.y.values, arrays["y"])
    assert_heights(arrays["dem"], arrays["raw_dem"], ours["dem"].values)
    np.testing.assert_array_equal(arrays["datamask"], ours["datamask"].values)
    # The window holds heights, nodata inside the tiles, and never-filled pixels.
    valid = ours["datamask"].values == 1
    assert 0 < valid.sum() < valid.size
    assert np.isnan(arrays["dem"][:, : 170_010 - DEM_WINDOW.col0]).all()
    assert np.array_equal(~np.isnan(arrays["dem"]), valid)


def test_tcvis_cube_reads_with_xarray_and_rioxarray(
    tcvis_cube: Datacube, sandbox_world: WorldLayout, tmp_path: Path
) -> None:
    spec = tcvis_cube.spec
    window = tcvis_cog_window(sandbox_world, spec)
    names = [v.name for v in spec.variables]
    report, arrays = read_plainly(
        Path(tcvis_cube.location), TCVIS_PERIOD, window, names, tmp_path / "t.npz"
    )
    assert_grid(report, spec.grid)
    assert CRS.from_wkt(report["crs_wkt"]).to_epsg() == 4326
    assert report["x_attrs"]["standard_name"] == "longitude"
    assert report["x_attrs"]["units"] == "degrees_east"
    assert report["y_attrs"]["standard_name"] == "latitude"
    assert report["y_attrs"]["units"] == "degrees_north"
    assert_coordinates(arrays, spec.grid, window)
    ours = tcvis_cube.read(window)
    for name in names:
        assert report["variables"][name]["dtype"] == "uint8"
        assert report["variables"][name]["grid_mapping"] == "spatial_ref"
        np.testing.assert_array_equal(arrays[name], ours[name].values)
        assert 0 < int((arrays[name] != 0).sum()) < arrays[name].size


def test_coordinates_are_small_chunked_and_written_once(arcticdem_cube: Datacube) -> None:
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(arcticdem_cube.location))
    group = zarr.open_group(repo.readonly_session("main").store, mode="r")
    for dim, size in (("x", 740_020), ("y", 750_020)):
        array = group[dim]
        assert isinstance(array, zarr.Array)
        assert array.shape == (size,) and array.chunks == (size,)  # one chunk
        assert array.nbytes_stored() < 200_000  # of 5.9 MB of float64
    # 2 m: 3.7 M values in chunks of 2^20 (a multiple of the 2048 px cube chunk).
    assert _coordinate_chunk(arcticdem_spec(2), 3_700_100) == 2**20
    # Tile commits write the variables only; the coordinates came with the cube.
    snapshots = list(repo.ancestry(branch="main"))
    assert {s.message for s in snapshots[:2]} == {
        f"darts: tile {tile} (filled)" for tile in ARCTICDEM_TILES
    }
    for newer, older in itertools.pairwise(snapshots[:3]):
        diff = repo.diff(from_snapshot_id=older.id, to_snapshot_id=newer.id)
        assert set(diff.updated_chunks) == {"/dem", "/datamask"}
        assert not diff.updated_arrays and not diff.new_arrays


def test_readme_snippet_runs_against_the_cubes_and_a_staged_scene(
    arcticdem_cube: Datacube, tcvis_cube: Datacube, staged_scene: Path, tmp_path: Path
) -> None:
    text = README.read_text()
    assert text.count(HEADING) == 1
    after = text.split(HEADING, 1)[1]
    start = after.index("```python\n")
    following = re.search(r"^#{1,3} ", after, re.MULTILINE)
    assert following is None or start < following.start()  # in this subsection
    code = after[start + len("```python\n") :].split("```", 1)[0]
    places = {
        "<darts-dir>/auxiliary/arcticdem_10m.icechunk": arcticdem_cube.location,
        "<darts-dir>/auxiliary/tcvis.icechunk": tcvis_cube.location,
        "<raw-data-store>/<scene id>.zarr": str(staged_scene),
    }
    for placeholder, path in places.items():
        assert placeholder in code
        code = code.replace(placeholder, path)
    assert TCVIS_PERIOD in code
    out = tmp_path / "dem.npz"
    checks = f"""
import sys
import numpy as np
assert str(arcticdem.rio.crs) == "EPSG:3413" and str(tcvis.rio.crs) == "EPSG:4326"
assert str(scene.rio.crs) == "EPSG:32636"
assert tuple(scene.rio.transform())[:6] == (10.0, 0.0, {SCENE_X0}, 0.0, -10.0, {SCENE_Y0})
assert dem.dtype == np.float32
np.savez({str(out)!r}, dem=dem.values, x=dem.x.values, y=dem.y.values)
assert not [m for m in sys.modules if m.split(".")[0] == "darts"]
"""
    done = run_python(code + checks)
    assert "EPSG:3413" in done.stdout
    with np.load(out) as saved:
        dem, x, y = saved["dem"], saved["x"], saved["y"]
    grid = arcticdem_cube.spec.grid
    col0 = round((x[0] - grid.x0) / grid.res - 0.5)
    row0 = round((grid.y0 - y[0]) / grid.res - 0.5)
    window = Window(row0, row0 + len(y), col0, col0 + len(x))
    ours = arcticdem_cube.read(window)["dem"].values
    assert np.isfinite(ours).any()  # the snippet's window shows the sandbox's terrain
    np.testing.assert_array_equal(np.isnan(dem), np.isnan(ours))
    np.testing.assert_array_max_ulp(dem[np.isfinite(ours)], ours[np.isfinite(ours)], maxulp=1)


# -- cubes of an earlier darts version ------------------------------------------------------

GRID = CubeGrid("EPSG:3413", -50_000.0, 60_000.0, 10.0, 300, 300)
SPEC = CubeSpec(
    kind="test-aux",
    grid=GRID,
    variables=(
        CubeVariable("dem", "float32", math.nan, {"units": "m"}, scale=100),
        CubeVariable("cls", "uint8", 0),
    ),
    chunk=64,
)
CF_KEYS = ("grid_mapping", "coordinates", "_FillValue")


def as_an_earlier_darts_left_it(location: Path) -> None:
    """Remove what this version adds: the coordinate arrays and the CF attributes
    (the scale_factor was there before)."""
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(location)))
    session = repo.writable_session("main")
    cube = zarr.open_group(session.store, mode="r+")
    for name in ("x", "y", "spatial_ref"):
        del cube[name]
    for variable in SPEC.variables:
        array = cube[variable.name]
        array.attrs.put({k: v for k, v in array.attrs.asdict().items() if k not in CF_KEYS})
    cube.attrs.put({k: v for k, v in cube.attrs.asdict().items() if k != "Conventions"})
    session.commit("as an earlier darts version left it")


def open_plainly(location: Path) -> xr.Dataset:
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(location)))
    return xr.open_zarr(repo.readonly_session("main").store, consolidated=False)


def messages(location: Path) -> list[str]:
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(location)))
    return [snapshot.message for snapshot in repo.ancestry(branch="main")]


@pytest.fixture
def old_cube(tmp_path: Path) -> tuple[Path, PatternTileSource]:
    source = PatternTileSource(SPEC, 100)
    Datacube.open(tmp_path / "cube", SPEC).fill(["0_0"], source)
    as_an_earlier_darts_left_it(tmp_path / "cube")
    return tmp_path / "cube", source


def test_a_cube_without_coordinates_is_read_by_darts_and_gets_them_on_the_next_write(
    old_cube: tuple[Path, PatternTileSource],
) -> None:
    import rioxarray  # noqa: F401

    location, source = old_cube
    plain = open_plainly(location)
    assert "spatial_ref" not in plain.variables and plain.rio.crs is None
    # darts opens it as it is (no mismatch, nothing to stage again) and reads it.
    cube = Datacube.open(location, SPEC, create=False)
    window = Window(0, 150, 0, 150)
    np.testing.assert_array_equal(
        cube.read(window)["dem"].values, source.expected("dem", window, ["0_0"])
    )
    assert cube.missing(["0_0", "0_1"]) == ["0_1"]

    cube.fill(["0_1"], source)
    cube.fill(["1_0"], source)
    plain = open_plainly(location)
    assert plain.rio.crs == CRS.from_epsg(3413)
    assert plain.rio.transform() == GRID.transform == Affine(10, 0, -50_000, 0, -10, 60_000)
    assert plain["dem"].dtype == np.float32 and plain["dem"].attrs["grid_mapping"]
    np.testing.assert_array_equal(plain.x.values, GRID.x_coords(GRID.full))
    tiles = ["0_0", "0_1", "1_0"]
    for name in ("dem", "cls"):
        np.testing.assert_array_equal(
            cube.read(window)[name].values, source.expected(name, window, tiles)
        )
    # Added once, in the first tile's commit; later writes leave it alone.
    added = [m for m in messages(location) if "CF georeferencing" in m]
    assert added == ["darts: tile 0_1 (filled) + CF georeferencing"]
    assert Datacube.open(location, SPEC).add_georeferencing() is False


def test_add_georeferencing_upgrades_a_cube_without_writing_tiles(
    old_cube: tuple[Path, PatternTileSource],
) -> None:
    location, _ = old_cube
    cube = Datacube.open(location, SPEC)
    records = cube.records()
    before = messages(location)
    assert cube.add_georeferencing() is True
    assert cube.add_georeferencing() is False
    assert messages(location) == ["darts: add CF georeferencing", *before]
    assert cube.records() == records
    ref = open_plainly(location)["spatial_ref"].attrs
    assert CRS.from_wkt(ref["crs_wkt"]).to_epsg() == 3413
    assert ref["GeoTransform"] == "-50000.0 10.0 0.0 60000.0 0.0 -10.0"


def test_variables_cannot_take_the_coordinates_names() -> None:
    assert set(RESERVED_NAMES) == set(GEOREF_ARRAYS)
    for name in RESERVED_NAMES:
        with pytest.raises(ValueError, match="taken by the cube's CF coordinates"):
            CubeSpec("test-aux", GRID, (CubeVariable(name, "uint8", 0),), 64)
