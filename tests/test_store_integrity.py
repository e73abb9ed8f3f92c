"""Every read checks each chunk's CRC-32C (issue 15): bytes flipped in place (same size)
or a truncated chunk, in a scene band, a scene coordinate or a datacube chunk, are an
error that names the scene or cube, the array and the chunk and says what to do; never
data. Stores and cubes written before the checksum still read."""

from __future__ import annotations

import json
import math
from pathlib import Path

import icechunk
import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.storage import LocalStore

from darts.errors import DartsError
from darts.grid.cube import CubeGrid, Window
from darts.store.band_reader import read_bands
from darts.store.checksum import ChecksumMismatch, payload
from darts.store.datacube import CorruptCubeChunkError, Datacube
from darts.store.datacube import schema as datacube_schema
from darts.store.datacube.spec import CubeCompression, CubeSpec, CubeVariable
from darts.store.datacube.testing import PatternTileSource
from darts.store.scenes import (
    BandEncoding,
    CorruptChunkError,
    CorruptDataError,
    DamagedSceneError,
    SceneStore,
)

SCENE = "S2A_MSIL2A_20240715T203849_N0510_R085_T08WNB_20240715T232000"
ITEM = {"id": SCENE, "properties": {"datetime": "2024-07-15T20:38:49Z"}}
# What a damaged scene's message tells the user to run (it stages the damaged bands again).
RESTAGE = "darts cache repair"


def band(values: np.ndarray) -> xr.DataArray:
    rows, cols = values.shape
    return xr.DataArray(
        values,
        dims=("y", "x"),
        coords={"y": 7_600_005.0 - 10 * np.arange(rows), "x": 500_005.0 + 10 * np.arange(cols)},
        attrs={"nodata": 0, "proj:code": "EPSG:32608", "raster:scale": 1e-4},
    )


def values(seed: int, shape: tuple[int, int] = (150, 130)) -> np.ndarray:
    out = np.random.default_rng(seed).integers(1, 10_000, size=shape, dtype=np.uint16)
    out[:64, :64] = 0  # one chunk entirely nodata: never written
    return out


def flip(path: Path, offset: int, count: int = 1) -> None:
    """Invert ``count`` bytes of ``path`` from ``offset`` (negative: from the end):
    the file keeps its size, so only a checksum can tell."""
    data = bytearray(path.read_bytes())
    start = offset % len(data)
    for index in range(start, min(start + count, len(data))):
        data[index] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def store(tmp_path: Path) -> SceneStore:
    return SceneStore(tmp_path / "store", BandEncoding(chunk=64), fsync=False)


@pytest.fixture
def staged(store: SceneStore) -> dict[str, np.ndarray]:
    bands = {"B02_10m": values(1), "B04_10m": values(2)}
    store.write_bands(SCENE, ITEM, {name: band(v) for name, v in bands.items()})
    return bands


def chunk_path(store: SceneStore, array: str, key: str) -> Path:
    return store.scene_path(SCENE) / array / key


# -- the format ---------------------------------------------------------------------------


def test_every_array_of_a_new_scene_ends_its_codec_chain_with_crc32c(
    store: SceneStore, staged: dict[str, np.ndarray]
) -> None:
    scene_dir = store.scene_path(SCENE)
    for name in ("B02_10m", "B04_10m", "x", "y", "spatial_ref"):
        codecs = json.loads((scene_dir / name / "zarr.json").read_text())["codecs"]
        assert codecs[-1] == {"name": "crc32c"}, name
    record = store.commit_record(SCENE)
    assert record is not None and record.bands["B02_10m"].encoding["checksum"] == "crc32c"
    # The standard codec: plain zarr (no DARTS code) refuses the damaged chunk too.
    flip(chunk_path(store, "B02_10m", "c/1/1"), 100)
    plain = zarr.open_array(LocalStore(scene_dir / "B02_10m", read_only=True), mode="r")
    with pytest.raises(ValueError, match="checksum"):
        plain[64:128, 64:128]


def test_zarr_reads_checked_chunks_through_the_scene_s_store_once(
    store: SceneStore, staged: dict[str, np.ndarray]
) -> None:
    """The store checks each chunk and hands zarr its bytes without the checksum (and
    metadata without the codec), whole or in part; a damaged chunk fails either way."""
    from zarr.abc.store import RangeByteRequest, SuffixByteRequest
    from zarr.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    from darts.store.checked_store import CheckedSceneStore

    scene_dir = store.scene_path(SCENE)
    checked = CheckedSceneStore(scene_dir, scene_id=SCENE, checked=frozenset({"B02_10m"}))
    prototype = default_buffer_prototype()
    on_disk = chunk_path(store, "B02_10m", "c/1/1").read_bytes()

    def get(key: str, byte_range: object = None) -> bytes:
        found = sync(checked.get(key, prototype, byte_range))  # type: ignore[arg-type]
        assert found is not None
        return found.to_bytes()

    assert get("B02_10m/c/1/1") == on_disk[:-4]
    assert get("B02_10m/c/1/1", RangeByteRequest(10, 30)) == on_disk[10:30]
    assert get("B02_10m/c/1/1", SuffixByteRequest(8)) == on_disk[-12:-4]
    assert get("B04_10m/c/1/1") == chunk_path(store, "B04_10m", "c/1/1").read_bytes()
    shown = json.loads(get("zarr.json"))["consolidated_metadata"]["metadata"]
    assert [c["name"] for c in shown["B02_10m"]["codecs"]] == ["bytes", "blosc"]
    assert [c["name"] for c in shown["B04_10m"]["codecs"]][-1] == "crc32c"  # not checked here
    assert sync(checked.get("B02_10m/c/0/0", prototype)) is None  # never written: fill
    flip(chunk_path(store, "B02_10m", "c/1/1"), 50)
    with pytest.raises(CorruptChunkError, match="c/1/1"):
        get("B02_10m/c/1/1", RangeByteRequest(0, 16))


# -- a scene's band: flipped bytes, truncation --------------------------------------------


@pytest.mark.parametrize("where", [0, 40, -5, -1], ids=["header", "middle", "last data", "crc"])
@pytest.mark.parametrize("load", [True, False], ids=["load", "lazy"])
def test_a_flipped_byte_in_a_band_chunk_is_an_error_naming_scene_band_and_chunk(
    store: SceneStore, staged: dict[str, np.ndarray], where: int, load: bool
) -> None:
    flip(chunk_path(store, "B04_10m", "c/1/0"), where)
    # The file kept its size: the stat check and a size-only verify see nothing.
    assert store.verify(SCENE, content=False) == []
    with pytest.raises(CorruptChunkError) as caught:
        opened = store.open(SCENE, ["B02_10m", "B04_10m"], load=load)
        opened["B04_10m"].load()  # the lazy read happens here
    error = caught.value
    assert (error.scene_id, error.array, error.chunk) == (SCENE, "B04_10m", "c/1/0")
    message = str(error)
    assert SCENE in message and "'B04_10m'" in message and "c/1/0" in message
    assert RESTAGE in message
    assert "\n" not in message
    assert isinstance(error, DamagedSceneError | CorruptDataError | DartsError)
    # Undamaged bands and chunks still read; the damaged one never does.
    np.testing.assert_array_equal(
        store.open(SCENE, ["B02_10m"], load=load)["B02_10m"].values, staged["B02_10m"]
    )
    lazy = store.open(SCENE, ["B04_10m"])
    np.testing.assert_array_equal(lazy["B04_10m"][:64, 64:].values, staged["B04_10m"][:64, 64:])
    with pytest.raises(CorruptChunkError):
        lazy["B04_10m"][64:80, :10].load()


def test_every_flipped_byte_of_a_chunk_is_caught(tmp_path: Path) -> None:
    """CRC-32C catches any change of up to 32 consecutive bits: try each byte of a
    (small) chunk file: data, Blosc header and the checksum itself."""
    store = SceneStore(tmp_path / "small", BandEncoding(chunk=16), fsync=False)
    blue = np.random.default_rng(5).integers(1, 10_000, size=(16, 16), dtype=np.uint16)
    store.write_bands(SCENE, ITEM, {"B02_10m": band(blue)})
    record = store.commit_record(SCENE)
    assert record is not None
    records = {"B02_10m": record.bands["B02_10m"]}
    scene_dir = store.scene_path(SCENE)
    path = scene_dir / "B02_10m" / "c" / "0" / "0"
    original = path.read_bytes()
    for offset in range(len(original)):
        damaged = bytearray(original)
        damaged[offset] ^= 0x5A
        path.write_bytes(bytes(damaged))
        with pytest.raises(CorruptChunkError, match="c/0/0"):
            read_bands(scene_dir, records, SCENE)
    path.write_bytes(original)
    arrays = read_bands(scene_dir, records, SCENE)
    assert arrays is not None
    np.testing.assert_array_equal(arrays["B02_10m"], blue)


@pytest.mark.parametrize("load", [True, False], ids=["load", "lazy"])
def test_a_truncated_band_chunk_is_an_error(
    store: SceneStore, staged: dict[str, np.ndarray], load: bool
) -> None:
    path = chunk_path(store, "B02_10m", "c/0/1")
    path.write_bytes(path.read_bytes()[:-100])
    # The stat check against the commit record names the file before any read...
    with pytest.raises(DamagedSceneError, match="c/0/1") as caught:
        store.open(SCENE, ["B02_10m"], load=load)
    assert RESTAGE in str(caught.value)
    # ... and without it the checksum does.
    with pytest.raises(CorruptChunkError, match="CRC-32C mismatch") as caught:
        store.open(SCENE, ["B02_10m"], load=load, check=False)["B02_10m"].load()
    assert caught.value.chunk == "c/0/1"


def test_a_flipped_byte_in_a_coordinate_chunk_is_an_error(
    store: SceneStore, staged: dict[str, np.ndarray]
) -> None:
    flip(chunk_path(store, "x", "c/0"), 17)
    with pytest.raises(CorruptChunkError) as caught:
        store.open(SCENE, ["B02_10m"])
    assert caught.value.array == "x" and "coordinate 'x'" in str(caught.value)


# -- stores written before the checksum ---------------------------------------------------


def test_a_store_written_without_checksums_still_opens(tmp_path: Path) -> None:
    old = SceneStore(tmp_path / "old", BandEncoding(chunk=64, checksum=False), fsync=False)
    blue = values(3)
    old.write_bands(SCENE, ITEM, {"B02_10m": band(blue)})
    scene_dir = old.scene_path(SCENE)
    for name in ("B02_10m", "x", "y"):
        codecs = json.loads((scene_dir / name / "zarr.json").read_text())["codecs"]
        assert "crc32c" not in [c["name"] for c in codecs], name
    record = old.commit_record(SCENE)
    assert record is not None and "checksum" not in record.bands["B02_10m"].encoding
    # Opened by today's code (default encoding): both read paths, no re-staging.
    today = SceneStore(tmp_path / "old", BandEncoding(chunk=64), fsync=False)
    loaded = today.open(SCENE, ["B02_10m"], load=True)
    lazy = today.open(SCENE, ["B02_10m"]).load()
    np.testing.assert_array_equal(loaded["B02_10m"].values, blue)
    xr.testing.assert_identical(loaded, lazy)
    # A band added now carries checksums beside the old one; both read, and the new
    # one's damage is caught.
    red = values(6)
    today.write_bands(SCENE, ITEM, {"B04_10m": band(red)})
    codecs = json.loads((scene_dir / "B04_10m" / "zarr.json").read_text())["codecs"]
    assert codecs[-1] == {"name": "crc32c"}
    for load in (True, False):
        both = today.open(SCENE, ["B02_10m", "B04_10m"], load=load)
        np.testing.assert_array_equal(both["B02_10m"].values, blue)
        np.testing.assert_array_equal(both["B04_10m"].values, red)
    flip(scene_dir / "B04_10m" / "c" / "1" / "1", 30)
    with pytest.raises(CorruptChunkError, match="B04_10m"):
        today.open(SCENE, ["B02_10m", "B04_10m"]).load()
    # The old band's bytes are checked by the SHA-256s of its commit record (verify);
    # a read finds only damage Blosc cannot decode.
    flip(scene_dir / "B02_10m" / "c" / "1" / "1", 30)
    problems = today.verify(SCENE)
    assert len(problems) == 2 and all("c/1/1" in p and "sha256" in p for p in problems)


def test_a_damaged_chunk_of_a_store_without_checksums_that_does_not_decode_is_an_error(
    tmp_path: Path,
) -> None:
    old = SceneStore(tmp_path / "old", BandEncoding(chunk=64, checksum=False), fsync=False)
    old.write_bands(SCENE, ITEM, {"B02_10m": band(values(4))})
    path = old.scene_path(SCENE) / "B02_10m" / "c" / "1" / "1"
    flip(path, 4, 4)  # the Blosc header's decoded size
    with pytest.raises(CorruptChunkError, match="Blosc frame"):
        old.open(SCENE, ["B02_10m"], load=True)


# -- the checksum itself --------------------------------------------------------------------


def test_payload_strips_a_matching_checksum_and_refuses_others() -> None:
    import google_crc32c

    data = b"thaw slumps" * 50
    stored = data + google_crc32c.value(data).to_bytes(4, "little")
    assert payload(stored).tobytes() == data
    for damaged in (stored[:-1], stored[:3], b"x" + stored[1:]):
        with pytest.raises(ChecksumMismatch):
            payload(damaged)


# -- a datacube chunk -----------------------------------------------------------------------


def cube_spec(block: int | None) -> CubeSpec:
    return CubeSpec(
        kind="test-aux",
        grid=CubeGrid("EPSG:3413", -50_000.0, 60_000.0, 10.0, 1000, 1000),
        variables=(CubeVariable("dem", "float32", math.nan), CubeVariable("cls", "uint8", 0)),
        chunk=64,
        compression=CubeCompression("lz4", 5, block=block),
    )


WINDOW = Window(150, 420, 130, 390)


def filled_cube(path: Path, block: int | None) -> tuple[Datacube, PatternTileSource]:
    spec = cube_spec(block)
    cube = Datacube.open(path, spec)
    source = PatternTileSource(spec, tile_size=100)
    cube.fill(source.tiles_for(WINDOW), source)
    return cube, source


def largest_chunk_file(repo: Path) -> Path:
    # Icechunk keeps every chunk as one object under chunks/; the largest is never one
    # it inlines into a manifest.
    return max((repo / "chunks").iterdir(), key=lambda p: p.stat().st_size)


@pytest.mark.parametrize("block", [None, 16], ids=["whole chunks", "sharded"])
def test_a_flipped_byte_in_a_cube_chunk_is_an_error_naming_cube_variable_chunk_and_tiles(
    tmp_path: Path, block: int | None
) -> None:
    cube, source = filled_cube(tmp_path / "cube", block)
    for name in ("dem", "cls"):
        np.testing.assert_array_equal(cube.read(WINDOW)[name].values, source.expected(name, WINDOW))
    flip(largest_chunk_file(tmp_path / "cube"), 200)
    reopened = Datacube.open(tmp_path / "cube", cube.spec, create=False)
    with pytest.raises(CorruptCubeChunkError) as caught:
        reopened.read(WINDOW)
    error = caught.value
    assert error.variable in ("dem", "cls") and error.chunk.startswith(f"chunk {error.variable}/c/")
    assert error.tiles and set(error.tiles) <= set(source.tiles_for(WINDOW))
    message = str(error)
    assert str(tmp_path / "cube") in message and "CRC-32C mismatch" in message
    assert "prep-data sentinel2" in message and "--aux" in message and "\n" not in message
    assert isinstance(error, CorruptDataError)


def test_a_truncated_cube_chunk_is_an_error(tmp_path: Path) -> None:
    cube, _ = filled_cube(tmp_path / "cube", None)
    path = largest_chunk_file(tmp_path / "cube")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptCubeChunkError, match="CRC-32C mismatch"):
        Datacube.open(tmp_path / "cube", cube.spec, create=False).read(WINDOW)


def test_a_cube_made_without_checksums_still_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def old_codecs(compression: CubeCompression, dtype: np.dtype) -> list:
        return [datacube_schema.blosc_codec(compression, dtype)]

    with monkeypatch.context() as patch:
        patch.setattr(datacube_schema, "chunk_codecs", old_codecs)
        cube, source = filled_cube(tmp_path / "cube", None)
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(tmp_path / "cube")))
    dem = zarr.open_group(repo.readonly_session("main").store, mode="r")["dem"]
    assert isinstance(dem, zarr.Array)
    assert "crc32c" not in [codec.to_dict()["name"] for codec in dem.metadata.codecs]
    # Read by today's code; tiles written now keep the array's codecs (no checksum).
    extra = source.tiles_for(Window(600, 700, 600, 700))
    cube.fill(extra, source)
    for window, tiles in ((WINDOW, None), (Window(600, 700, 600, 700), extra)):
        for name in ("dem", "cls"):
            np.testing.assert_array_equal(
                cube.read(window)[name].values, source.expected(name, window, tiles)
            )
