"""Datacube in one process: create/open/mismatch, round trips, partial chunks, fill
failures, offline completeness, empty tiles. Real Icechunk repositories in tmp_path."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
from pathlib import Path

import icechunk
import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec

from darts.errors import DartsError
from darts.grid.cube import CubeGrid, Window
from darts.net.errors import OfflineError, RemoteError
from darts.net.guard import NetworkGate
from darts.store import scratch
from darts.store.datacube import Datacube, aio
from darts.store.datacube.errors import (
    CubeFillError,
    CubeMismatchError,
    CubeNotFoundError,
    CubeRegionError,
    DatacubeError,
    IncompleteCubeError,
    NotACubeError,
)
from darts.store.datacube.records import TileRecord, node_name
from darts.store.datacube.spec import (
    CubeCompression,
    CubeSpec,
    CubeVariable,
    TileBuffer,
    TileFetch,
    tile_buffer,
)
from darts.store.datacube.testing import PatternTileSource
from darts.store.errors import StoreError

# 1000² px of 10 m, chunks of 64 and tiles of 100: tiles share chunks everywhere.
GRID = CubeGrid("EPSG:3413", -50_000.0, 60_000.0, 10.0, 1000, 1000)
TILE = 100


def make_spec(**changes: object) -> CubeSpec:
    fields: dict[str, object] = {
        "kind": "test-aux",
        "grid": GRID,
        "variables": (
            CubeVariable("dem", "float32", math.nan, {"units": "m"}),
            CubeVariable("cls", "uint8", 0),
        ),
        "chunk": 64,
    }
    fields.update(changes)
    return CubeSpec(**fields)  # type: ignore[arg-type]


SPEC = make_spec()


def bounds_of(window: Window) -> tuple[float, float, float, float]:
    return GRID.bounds_of(window)


def assert_window(
    cube: Datacube, source: PatternTileSource, window: Window, tiles: list[str] | None = None
) -> None:
    ds = cube.read(window)
    for name in ("dem", "cls"):
        np.testing.assert_array_equal(ds[name].values, source.expected(name, window, tiles))


@pytest.fixture
def cube(tmp_path: Path) -> Datacube:
    return Datacube.open(tmp_path / "cube", SPEC)


# -- opening --------------------------------------------------------------------------


def setting(value: object) -> str:
    """A codec setting as text, whether zarr gives an enum or a string."""
    return str(getattr(value, "value", value))


def test_open_creates_the_layout(tmp_path: Path) -> None:
    cube = Datacube.open(tmp_path / "cube", SPEC)
    assert cube.location == str(tmp_path / "cube")
    assert cube.group == ""
    assert cube.spec is SPEC
    session = cube._repo.readonly_session(branch="main")
    root = zarr.open_group(session.store, mode="r")
    stored = root.attrs["darts_cube"]
    assert stored["kind"] == "test-aux"
    assert stored["grid"] == GRID.to_attrs()
    assert stored["chunk"] == 64
    assert stored["variables"][0] == {"name": "dem", "dtype": "float32", "fill_value": "NaN"}
    dem = root["dem"]
    assert isinstance(dem, zarr.Array)
    assert dem.shape == (1000, 1000)
    assert dem.chunks == (64, 64)
    assert dem.metadata.dimension_names == ("y", "x")
    assert math.isnan(dem.fill_value)
    assert dem.attrs["units"] == "m"
    codec = dem.compressors[0]
    assert isinstance(codec, BloscCodec)
    # zarr < 3.2 holds these as enums, later versions as plain strings.
    assert (setting(codec.cname), codec.clevel, setting(codec.shuffle)) == ("lz4hc", 5, "shuffle")
    cls_codec = root["cls"].compressors[0]  # type: ignore[union-attr]
    assert setting(cls_codec.shuffle) == "bitshuffle"  # type: ignore[union-attr]
    assert cube.records() == {}
    # Lock and scratch live in one hidden folder beside the repository, never in it.
    assert (tmp_path / ".cube.darts" / "locks" / "commit.lock").exists()
    assert cube.scratch_dir() == tmp_path / ".cube.darts" / "scratch"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cube.darts", "cube"]


def test_reopen_existing_without_create(tmp_path: Path) -> None:
    Datacube.open(tmp_path / "cube", SPEC)
    again = Datacube.open(str(tmp_path / "cube"), SPEC, create=False)
    assert again.records() == {}


def test_compression_is_not_part_of_the_identity(tmp_path: Path) -> None:
    Datacube.open(tmp_path / "cube", SPEC)
    other = make_spec(compression=CubeCompression(codec="zstd", level=1))
    Datacube.open(tmp_path / "cube", other)  # opens: the pixels mean the same


def _stored_group(location: Path) -> zarr.Group:
    """The cube's Zarr group on the branch tip, as zarr itself reads it."""
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(location)))
    return zarr.open_group(repo.readonly_session(branch="main").store, mode="r")


def test_a_sharded_cube_opens_with_a_spec_that_is_not(tmp_path: Path) -> None:
    """Blocks are a matter of compression: a cube stored sharded is opened, filled and
    read through a spec without blocks (and the other way round), with the layout the
    cube was created with."""
    sharded = make_spec(compression=CubeCompression("lz4", 5, block=16))
    source = PatternTileSource(SPEC, TILE)
    Datacube.open(tmp_path / "a", sharded).fill(["0_0"], source)
    Datacube.open(tmp_path / "b", SPEC).fill(["0_0"], source)
    for location, spec in ((tmp_path / "a", SPEC), (tmp_path / "b", sharded)):
        cube = Datacube.open(location, spec)
        cube.fill(["0_1"], source)
        assert_window(cube, source, Window(0, 200, 0, 250), ["0_0", "0_1"])
    stored = _stored_group(tmp_path / "a")
    assert stored["dem"].shards == (64, 64) and stored["dem"].chunks == (16, 16)  # type: ignore[union-attr]


def test_a_block_must_divide_the_chunk() -> None:
    with pytest.raises(ValueError, match="chunk edge 64 is not a multiple of the block 24"):
        make_spec(compression=CubeCompression("lz4", 5, block=24))


# Heights as a DEM source gives them: whole centimetres as the nearest float32 (the
# extremes of the float32-exact range of a 1/100 scale, and everyday terrain).
CM_HEIGHTS = np.round(
    np.concatenate([[-131_072.0, 131_071.99, 0.0, -0.01, 0.01, 8848.86],
                    np.random.default_rng(3).uniform(-500, 7000, 64 * 64 - 6)]),
    2,
).astype(np.float32).reshape(64, 64)  # fmt: skip
SCALED_SPEC = make_spec(
    variables=(CubeVariable("dem", "float32", math.nan, {"units": "m"}, scale=100),),
    chunk=32,
)


class _HeightsSource(PatternTileSource):
    """One 64 × 64 tile "0_0" holding CM_HEIGHTS (NaN where the pattern's row is 5)."""

    def fetch(self, tile_id: str, into: TileBuffer) -> TileFetch:
        into.arrays["dem"][...] = CM_HEIGHTS
        into.arrays["dem"][5] = np.nan
        return TileFetch("filled", {"url": "heights"})


def test_scaled_heights_come_back_exactly(tmp_path: Path) -> None:
    """Stored as whole centimetres, read back as the very float32 values written, NaN
    included; the stored array holds the whole numbers, with the CF scale_factor that
    lets generic readers (xarray) decode metres."""
    source = _HeightsSource(SCALED_SPEC, 64)
    cube = Datacube.open(tmp_path / "cube", SCALED_SPEC)
    cube.fill(["0_0"], source)
    got = cube.read(Window(0, 64, 0, 64))["dem"].values
    want = CM_HEIGHTS.copy()
    want[5] = np.nan
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    # Through zarr's own slicing too (a window not on chunk edges).
    group = _stored_group(tmp_path / "cube")
    stored = np.asarray(group["dem"][:64, :64])  # type: ignore[index]
    assert np.array_equal(stored[:4, :4], np.round(CM_HEIGHTS[:4, :4].astype(np.float64) * 100))
    assert group["dem"].attrs["scale_factor"] == 0.01
    np.testing.assert_array_equal(cube.read(Window(3, 40, 7, 50))["dem"].values, want[3:40, 7:50])


def test_a_cube_stored_unscaled_is_refused_with_what_to_do(tmp_path: Path) -> None:
    """A cube of an older darts (heights stored as metres) must not be read as
    centimetres: it is refused, and the message says to stage it again."""
    unscaled = make_spec(variables=(CubeVariable("dem", "float32", math.nan),), chunk=32)
    Datacube.open(tmp_path / "cube", unscaled)
    with pytest.raises(CubeMismatchError) as info:
        Datacube.open(tmp_path / "cube", SCALED_SPEC)
    message = str(info.value)
    assert "stored scale of the variables: stored dem(float32, fill NaN), wanted " in message
    assert "dem(float32, fill NaN, stored ×100)" in message
    assert "another version of darts" in message and "prep-data sentinel2 --aux" in message
    assert Datacube.open(tmp_path / "cube", unscaled).records() == {}  # left untouched


def test_encoding_finds_every_whole_centimetre() -> None:
    """Everyday heights (encoded in float32) and, in another strip of rows, heights
    beyond float32's exact reach (redone in float64) all give their whole cm."""
    variable = SCALED_SPEC.variable("dem")
    cm = np.random.default_rng(4).integers(-50_000, 900_000, (2048, 1024))
    cm[1500, 7] = 13_000_000  # 130 km: its strip is encoded in float64
    heights = (cm / 100).astype(np.float32)
    heights[3, 3] = np.nan
    stored = variable.encode(heights)
    assert stored.dtype == np.float32 and np.isnan(stored[3, 3])
    stored[3, 3] = cm[3, 3]
    np.testing.assert_array_equal(stored.astype(np.int64), cm)


def test_a_scale_needs_a_float_variable() -> None:
    with pytest.raises(ValueError, match="positive whole number on a float variable"):
        CubeVariable("cls", "uint8", 0, scale=10)


def test_absent_cube_without_create(tmp_path: Path) -> None:
    with pytest.raises(CubeNotFoundError, match=r"test-aux datacube at .*missing-cube") as info:
        Datacube.open(tmp_path / "missing-cube", SPEC, create=False)
    assert isinstance(info.value, DartsError)
    assert isinstance(info.value, StoreError)
    assert not (tmp_path / "missing-cube").exists()


@pytest.mark.parametrize(
    ("changes", "setting", "stored", "wanted"),
    [
        ({"kind": "other"}, "kind", "test-aux", "other"),
        ({"grid": CubeGrid("EPSG:3413", -50_000.0, 60_000.0, 32.0, 1000, 1000)}, "grid res",
         "10.0", "32.0"),
        ({"chunk": 128}, "chunk", "64", "128"),
        ({"variables": (CubeVariable("dem", "float64", math.nan),)}, "variables",
         "dem(float32, fill NaN)", "dem(float64, fill NaN)"),
    ],
)  # fmt: skip
def test_mismatch_is_refused_and_names_both(
    tmp_path: Path, changes: dict[str, object], setting: str, stored: str, wanted: str
) -> None:
    cube = Datacube.open(tmp_path / "cube", SPEC)
    with pytest.raises(CubeMismatchError) as info:
        Datacube.open(tmp_path / "cube", make_spec(**changes))
    message = str(info.value)
    assert str(tmp_path / "cube") in message
    assert setting in info.value.differences
    assert stored in message and wanted in message
    assert "point the cube location elsewhere" in message
    assert cube.records() == {}  # untouched, still opens with its own spec
    Datacube.open(tmp_path / "cube", SPEC, create=False)


def test_variable_order_does_not_matter(tmp_path: Path) -> None:
    Datacube.open(tmp_path / "cube", SPEC)
    Datacube.open(tmp_path / "cube", make_spec(variables=tuple(reversed(SPEC.variables))))


def test_a_directory_with_other_content_is_never_touched(tmp_path: Path) -> None:
    target = tmp_path / "not-a-cube"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    with pytest.raises(NotACubeError, match=r"not an Icechunk repository.*left untouched"):
        Datacube.open(target, SPEC)
    assert [p.name for p in target.iterdir()] == ["precious.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(NotACubeError, match="is a file"):
        Datacube.open(a_file, SPEC)


def test_an_empty_directory_becomes_a_cube(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    Datacube.open(tmp_path / "empty", SPEC)


def test_groups_side_by_side_never_nested(tmp_path: Path) -> None:
    repo = tmp_path / "tcvis"
    source = PatternTileSource(SPEC, TILE)
    first = Datacube.open(repo, SPEC, group="2000-2019")
    second = Datacube.open(repo, SPEC, group="2001-2020")
    first.fill(["0_0"], source)
    assert set(first.records()) == {"0_0"}
    assert second.records() == {}
    assert second.missing(["0_0"]) == ["0_0"]
    assert np.isnan(second.read(Window(0, 10, 0, 10))["dem"].values).all()
    with pytest.raises(NotACubeError, match="holds groups 2000-2019, 2001-2020"):
        Datacube.open(repo, SPEC)  # a root cube would contain them
    Datacube.open(tmp_path / "rooted", SPEC)
    with pytest.raises(NotACubeError, match="nested"):
        Datacube.open(tmp_path / "rooted", SPEC, group="2000-2019")
    for bad in ("a/b", "_tiles", ".x"):
        with pytest.raises(ValueError, match="cube group"):
            Datacube.open(repo, SPEC, group=bad)


def test_a_group_that_is_not_a_cube(tmp_path: Path) -> None:
    cube = Datacube.open(tmp_path / "repo", SPEC, group="2000-2019")
    session = cube._repo.writable_session("main")
    zarr.open_group(session.store, mode="a").create_group("notes")
    session.commit("someone else's group")
    with pytest.raises(NotACubeError, match=r"'notes' .* is not a DARTS datacube"):
        Datacube.open(tmp_path / "repo", SPEC, group="notes")


# -- writing and reading --------------------------------------------------------------


def test_fill_and_read_round_trip(cube: Datacube) -> None:
    source = PatternTileSource(SPEC, TILE)
    window = Window(30, 270, 45, 333)  # partial tiles, partial chunks
    tiles = source.tiles_for(window)
    seen: list[str] = []
    records = cube.fill(tiles, source, on_tile=lambda tile, record: seen.append(tile))
    assert [r.tile_id for r in records] == tiles
    assert sorted(seen) == tiles
    ds = cube.read(window)
    assert ds.sizes == {"y": 240, "x": 288}
    assert ds["dem"].dtype == np.float32 and ds["cls"].dtype == np.uint8
    np.testing.assert_allclose(ds.x.values[:2], [-50_000 + 455.0, -50_000 + 465.0])
    np.testing.assert_allclose(ds.y.values[:2], [60_000 - 305.0, 60_000 - 315.0])
    assert ds.attrs["crs"] == "EPSG:3413"
    assert ds.attrs["transform"] == [10.0, 0.0, -50_000 + 450.0, 0.0, -10.0, 60_000 - 300.0]
    assert ds.attrs["cube_kind"] == "test-aux"
    assert ds["dem"].attrs["units"] == "m"
    assert ds["cls"].attrs["nodata"] == 0
    assert_window(cube, source, window)
    only = cube.read(window, ["cls"])
    assert list(only.data_vars) == ["cls"]
    # Outside the filled tiles: fill values, as stored.
    outside = cube.read(Window(500, 520, 500, 520))
    assert np.isnan(outside["dem"].values).all() and (outside["cls"].values == 0).all()


def test_records_are_kept(cube: Datacube) -> None:
    source = PatternTileSource(SPEC, TILE, empty=frozenset({"0_1"}))
    cube.fill(["0_0", "0_1"], source)
    records = Datacube.open(cube.location, SPEC, create=False).records()
    filled, empty = records["0_0"], records["0_1"]
    assert isinstance(filled, TileRecord)
    assert filled.status == "filled" and empty.status == "empty"
    assert filled.window == (0, 100, 0, 100) and empty.window == (0, 100, 100, 200)
    assert filled.source == {"url": "https://tiles.example.invalid/0_0.tif", "pattern": "v1"}
    assert filled.written_at.endswith("+00:00")
    assert filled.darts_version


def test_fill_skips_recorded_tiles(cube: Datacube) -> None:
    source = PatternTileSource(SPEC, TILE)
    cube.fill(["0_0", "0_1"], source)
    assert cube.fill(["0_1", "0_2", "0_2"], source) == [cube.records()["0_2"]]
    assert source.fetched.count("0_1") == 1
    assert source.fetched.count("0_2") == 1


@pytest.mark.parametrize("block", [None, 16], ids=["whole chunks", "sharded"])
def test_partial_chunk_neighbours_are_preserved(tmp_path: Path, block: int | None) -> None:
    """Tiles 0_0 and 0_1 share the chunk column 64..128; each writer rewrites that
    chunk from the tip, so the first tile's pixels survive the second's write. Sharded
    (inner chunks of 16², which tiles of 100 share too), the same holds."""
    spec = make_spec(compression=CubeCompression("lz4", 5, block=block))
    source = PatternTileSource(spec, TILE)
    Datacube.open(tmp_path / "cube", spec).fill(["0_0"], source)
    Datacube.open(tmp_path / "cube", spec).fill(["0_1", "1_0"], source)
    cube = Datacube.open(tmp_path / "cube", spec)
    assert_window(cube, source, Window(0, 200, 0, 200), ["0_0", "0_1", "1_0"])


def test_empty_tile_writes_only_its_record(cube: Datacube) -> None:
    window = PatternTileSource(SPEC, TILE).tile_window("2_2")
    with tile_buffer(SPEC, window, cube.scratch_dir()) as buffer:
        buffer.arrays["cls"][...] = 7  # data the source says to ignore
        record = cube.write_tile("2_2", buffer, TileFetch("empty", {"why": "ocean"}))
    assert record.status == "empty"
    assert cube.records()["2_2"] == record
    assert (cube.read(window)["cls"].values == 0).all()


def test_write_tile_checks_the_buffer(cube: Datacube) -> None:
    other = make_spec(variables=(CubeVariable("dem", "float64", math.nan),))
    with (
        tile_buffer(other, Window(0, 10, 0, 10), cube.scratch_dir()) as buffer,
        pytest.raises(ValueError, match=r"'dem' is float64.*wants float32"),
    ):
        cube.write_tile("t", buffer, TileFetch("filled"))
    only_dem = make_spec(variables=(SPEC.variables[0],))
    with (
        tile_buffer(only_dem, Window(0, 10, 0, 10), cube.scratch_dir()) as buffer,
        pytest.raises(ValueError, match="buffer has no 'cls'"),
    ):
        cube.write_tile("t", buffer, TileFetch("filled"))
    with (
        tile_buffer(SPEC, Window(990, 1000, 990, 1000), cube.scratch_dir()) as buffer,
        pytest.raises(ValueError, match="not plain JSON"),
    ):
        cube.write_tile("t", buffer, TileFetch("filled", {"bad": object()}))
    assert cube.records() == {}


def test_awkward_tile_ids(cube: Datacube) -> None:
    names = {node_name(t) for t in ("a/b", "_x", "a%2Fb", "..", "45_12_1_1")}
    assert len(names) == 5 and "45_12_1_1" in names
    for tile in ("a/b", "_x", ".."):
        with tile_buffer(SPEC, Window(0, 5, 0, 5), cube.scratch_dir()) as buffer:
            cube.write_tile(tile, buffer, TileFetch("empty"))
    assert set(cube.records()) == {"a/b", "_x", ".."}
    assert cube.missing(["a/b", "a%2Fb", "_x"]) == ["a%2Fb"]


def test_tile_buffers_are_removed(cube: Datacube) -> None:
    source = PatternTileSource(SPEC, TILE, failing=frozenset({"0_1"}))
    with pytest.raises(CubeFillError):
        cube.fill(["0_0", "0_1", "0_2"], source)
    assert list(cube.scratch_dir().iterdir()) == []


def test_a_failing_tile_does_not_stop_the_others(cube: Datacube) -> None:
    source = PatternTileSource(SPEC, TILE, failing=frozenset({"1_1", "0_2"}))
    tiles = ["0_0", "0_1", "0_2", "1_0", "1_1", "1_2"]
    with pytest.raises(CubeFillError) as info:
        cube.fill(tiles, source)
    error = info.value
    assert list(error.failures) == ["0_2", "1_1"]
    assert all(isinstance(e, RemoteError) for e in error.failures.values())
    assert sorted(error.written) == ["0_0", "0_1", "1_0", "1_2"]
    message = str(error)
    assert "0_2: GET https://tiles.example.invalid/0_2.tif returned HTTP 503" in message
    assert "1_1: GET" in message
    assert set(cube.records()) == {"0_0", "0_1", "1_0", "1_2"}
    assert cube.missing(tiles) == ["0_2", "1_1"]
    # Fixed source: only the failed tiles are fetched again.
    fixed = PatternTileSource(SPEC, TILE)
    cube.fill(tiles, fixed)
    assert sorted(fixed.fetched) == ["0_2", "1_1"]
    assert_window(cube, fixed, Window(0, 200, 0, 300))


# -- load: completeness ---------------------------------------------------------------


def test_load_fetches_what_is_missing_once(cube: Datacube) -> None:
    source = PatternTileSource(SPEC, TILE)
    window = Window(150, 250, 150, 250)
    ds = cube.load(bounds_of(window), source=source, fetch=True)
    assert ds.sizes == {"y": 100, "x": 100}
    assert sorted(source.fetched) == ["1_1", "1_2", "2_1", "2_2"]
    np.testing.assert_array_equal(ds["dem"].values, source.expected("dem", window))
    buffered = cube.load(bounds_of(window), 50.0, source=source, fetch=True)
    assert buffered.sizes == {"y": 110, "x": 110}  # 5 px of 10 m on each side
    assert len(source.fetched) == 4


def test_offline_load_of_an_incomplete_region_lists_every_missing_tile(
    cube: Datacube, offline_gate: NetworkGate, no_network: object
) -> None:
    source = PatternTileSource(SPEC, TILE)
    window = Window(50, 350, 50, 250)  # tiles rows 0..3, cols 0..2
    with offline_gate.offline_mode(False):
        cube.fill(["0_0", "1_1"], source)
    source.fetched.clear()
    with pytest.raises(IncompleteCubeError) as info:
        cube.load(bounds_of(window), source=source, fetch=False)
    expected = [t for t in source.tiles_for(window) if t not in ("0_0", "1_1")]
    assert info.value.missing == expected
    message = str(info.value)
    for tile in expected:
        assert tile in message
    assert "darts inference prep-data sentinel2 --aux" in message
    assert "synthetic pattern tiles" in message
    assert cube.location in info.value.cube
    assert source.fetched == []
    # Allowed to fetch but offline: every tile fails with OfflineError, none is written.
    with pytest.raises(CubeFillError) as fill_info:
        cube.load(bounds_of(window), source=source, fetch=True)
    assert list(fill_info.value.failures) == expected
    assert all(isinstance(e, OfflineError) for e in fill_info.value.failures.values())
    assert "offline mode" in str(fill_info.value)
    assert cube.missing(expected) == expected


def test_empty_tiles_count_as_complete(cube: Datacube, offline_gate: NetworkGate) -> None:
    source = PatternTileSource(SPEC, TILE, empty=frozenset({"0_1", "1_0"}))
    window = Window(0, 200, 0, 200)
    with offline_gate.offline_mode(False):
        cube.fill(source.tiles_for(window), source)
    ds = cube.load(bounds_of(window), source=source, fetch=False)
    np.testing.assert_array_equal(ds["cls"].values, source.expected("cls", window))
    assert (ds["cls"].values[0:100, 100:200] == 0).all()


def test_load_outside_the_grid_is_a_clear_error(cube: Datacube) -> None:
    source = PatternTileSource(SPEC, TILE)
    with pytest.raises(CubeRegionError, match="does not overlap the test-aux datacube"):
        cube.load((0.0, 0.0, 1.0e6, 1.0), source=source, fetch=True)
    assert source.fetched == []
    with pytest.raises(CubeRegionError):
        cube.read(Window(990, 1010, 0, 10))


def test_unknown_variable(cube: Datacube) -> None:
    with pytest.raises(DatacubeError, match=r"no variable.*ndvi.*has dem, cls"):
        cube.read(Window(0, 1, 0, 1), ["ndvi"])


def test_large_tiles_are_copied_in_chunk_aligned_blocks(
    cube: Datacube, monkeypatch: pytest.MonkeyPatch
) -> None:
    from darts.store.datacube import tile_copy as datacube_copy

    assert list(datacube_copy._aligned_spans(30, 300, 128)) == [(30, 128), (128, 256), (256, 300)]
    # A budget of one float32 chunk: every block is one chunk, as for a 2 m tile.
    monkeypatch.setattr(datacube_copy, "_WRITE_BLOCK_BYTES", 64 * 64 * 4)
    source = PatternTileSource(SPEC, 350)
    cube.fill(["0_0", "1_1"], source)
    assert_window(cube, source, Window(0, 700, 0, 700), ["0_0", "1_1"])


def test_the_cube_answers_from_inside_a_running_event_loop(cube: Datacube) -> None:
    """The store's coroutines run on darts' own loop thread, so a caller that already
    runs an event loop (a notebook) can use the cube; ``asyncio.run`` would refuse."""
    source = PatternTileSource(SPEC, 100)
    cube.fill(["0_0"], source)

    async def notebook_cell() -> list[str]:
        return cube.missing(["0_0", "0_1"])

    assert asyncio.run(notebook_cell()) == ["0_1"]

    async def on_the_loop_itself() -> bool:
        return aio.run(asyncio.sleep(0, True))

    with pytest.raises(RuntimeError, match="would wait for itself"):
        aio.run(on_the_loop_itself())


def test_leftovers_of_the_earlier_layout_go_when_opened_for_writing(tmp_path: Path) -> None:
    # darts kept the commit lock as `<cube>.lock` and tile buffers in `.<cube>.scratch`
    # beside the cube. The cube still opens and reads; opening it for writing removes
    # the lock (no process holds it) and the buffers of dead processes.
    location = tmp_path / "cube"
    Datacube.open(location, SPEC).fill(["0_0"], PatternTileSource(SPEC, 100))
    legacy_lock = tmp_path / "cube.lock"
    legacy_lock.touch()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    this_host = scratch.buffer_prefix().removesuffix(f"{os.getpid()}-")  # ".tile-<host>-"
    buffer = tmp_path / ".cube.scratch" / f"{this_host}{dead.pid}-x"
    buffer.mkdir(parents=True)
    (buffer / "dem.npy").write_bytes(b"x")
    assert Datacube.open(location, SPEC, create=False).missing(["0_0"]) == []  # reads
    assert legacy_lock.exists()  # a reader leaves it
    Datacube.open(location, SPEC)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cube.darts", "cube"]


def test_a_held_lock_of_the_earlier_layout_is_left_alone(tmp_path: Path) -> None:
    location = tmp_path / "cube"
    Datacube.open(location, SPEC)
    legacy_lock = tmp_path / "cube.lock"
    holder = subprocess.Popen(
        [
            sys.executable, "-c",
            "import fcntl, sys, time\n"
            f"f = open({str(legacy_lock)!r}, 'a')\n"
            "fcntl.flock(f, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        Datacube.open(location, SPEC)
        assert legacy_lock.exists()  # an older darts may be writing: not removed
    finally:
        holder.kill()
        holder.wait()
    Datacube.open(location, SPEC)
    assert not legacy_lock.exists()
