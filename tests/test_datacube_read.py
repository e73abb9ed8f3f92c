"""The direct chunk reader of datacubes (``darts.store.datacube.read.read_windows``):
it must read exactly what zarr's own slicing reads, for windows that cut across chunks
(and the inner chunks of shards), cover unwritten chunks, and touch the grid's ragged
edge; other layouts go through zarr.
"""

from __future__ import annotations

import math
from pathlib import Path

import icechunk
import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from darts.grid.cube import CubeGrid, Window
from darts.store.datacube import Datacube
from darts.store.datacube.read import read_windows
from darts.store.datacube.spec import CubeCompression, CubeSpec, CubeVariable
from darts.store.datacube.testing import PatternTileSource

# 90 × 77 px in chunks of 16 × 12: the last chunk row and column are partial. Sharded
# arrays: shards of 32 × 36, inner chunks of 8 × 12 (so the written block covers
# some inner chunks of a shard and not others).
SHAPE = (90, 77)
CHUNKS = (16, 12)
SHARDS = (32, 36)
INNER = (8, 12)
NAMES = ("dem", "cls", "other", "dem_sharded", "cls_sharded", "dem_one_block")
WINDOWS = [
    Window(0, 90, 0, 77),  # everything
    Window(5, 61, 7, 70),  # across many chunks, aligned nowhere
    Window(17, 18, 25, 26),  # one pixel
    Window(16, 32, 12, 24),  # exactly one chunk
    Window(40, 90, 50, 77),  # into the partial edge chunks
    Window(33, 47, 0, 40),  # a band through written and unwritten chunks
]


def _store(tmp_path: Path) -> icechunk.IcechunkStore:
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "r")))
    session = repo.writable_session("main")
    group = zarr.open_group(session.store, mode="a")
    rng = np.random.default_rng(7)
    heights = np.round(rng.normal(300, 40, SHAPE), 2).astype(np.float32)
    labels = rng.integers(1, 5, SHAPE, dtype=np.uint8)
    lz4 = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
    zstd = BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")
    whole: dict[str, object] = {"chunks": CHUNKS}
    sharded: dict[str, object] = {"shards": SHARDS, "chunks": INNER}
    arrays = {
        "dem": (heights, math.nan, lz4, whole),
        "cls": (labels, 0, zstd, whole),
        "other": (heights, -1.0, ZstdCodec(level=1), whole),  # not Blosc: read by zarr
        "dem_sharded": (heights, math.nan, lz4, sharded),
        "cls_sharded": (labels, 0, zstd, sharded),
        # Shards of one inner chunk each: still a shard (frame, then index).
        "dem_one_block": (heights, math.nan, lz4, {"shards": CHUNKS, "chunks": CHUNKS}),
    }
    for name, (values, fill, codec, layout) in arrays.items():
        array = group.create_array(
            name,
            shape=SHAPE,
            dtype=values.dtype,
            fill_value=fill,
            compressors=[codec],
            **layout,  # type: ignore[arg-type]
        )
        # Written: a block of chunks and a few scattered pixels; the rest is never
        # written and must read as the fill value.
        array[8:70, 10:60] = values[8:70, 10:60]
        array[85:90, 70:77] = values[85:90, 70:77]
        array[0, 0] = values[0, 0]
    session.commit("test data")
    return repo.readonly_session(branch="main").store


@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_read_windows_equals_zarr_slicing(tmp_path: Path, window: Window) -> None:
    store = _store(tmp_path)
    group = zarr.open_group(store, mode="r")
    arrays = {name: group[name] for name in NAMES}
    got = read_windows(store, arrays, window)  # type: ignore[arg-type]
    for name, array in arrays.items():
        want = np.asarray(array[window.slices])  # type: ignore[index]
        assert got[name].dtype == want.dtype
        assert got[name].shape == window.shape
        np.testing.assert_array_equal(got[name], want, err_msg=name)
    # Unwritten chunks really are in the window that covers everything.
    if window == Window(0, 90, 0, 77):
        assert np.isnan(got["dem"][80, 5]) and got["cls"][80, 5] == 0
        assert got["other"][80, 5] == -1.0
        assert np.isnan(got["dem_sharded"][80, 5]) and got["cls_sharded"][80, 5] == 0
        # An unwritten inner chunk of a shard that holds data elsewhere.
        assert np.isnan(got["dem_sharded"][0, 20]) and not np.isnan(got["dem_sharded"][0, 0])


def test_read_windows_reuses_buffers_between_reads(tmp_path: Path) -> None:
    """Reads one after another (scratch buffers reused) stay independent."""
    store = _store(tmp_path)
    group = zarr.open_group(store, mode="r")
    arrays = {"dem": group["dem"]}
    first = read_windows(store, arrays, Window(5, 61, 7, 70))  # type: ignore[arg-type]
    second = read_windows(store, arrays, Window(20, 40, 20, 40))  # type: ignore[arg-type]
    again = read_windows(store, arrays, Window(5, 61, 7, 70))  # type: ignore[arg-type]
    np.testing.assert_array_equal(first["dem"], again["dem"])
    np.testing.assert_array_equal(second["dem"], first["dem"][15:35, 13:33])


def test_read_windows_refuses_a_damaged_chunk(tmp_path: Path) -> None:
    """A chunk whose bytes decode to another size is an error, not garbage pixels."""
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "r")))
    session = repo.writable_session("main")
    group = zarr.open_group(session.store, mode="a")
    codec = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
    small = group.create_array("a", shape=(8, 8), chunks=(4, 4), dtype="float32",
                               fill_value=0.0, compressors=[codec])  # fmt: skip
    small[:4, :4] = 1.0
    big = group.create_array("b", shape=(16, 16), chunks=(8, 8), dtype="float32",
                             fill_value=0.0, compressors=[codec])  # fmt: skip
    big[:8, :8] = 2.0
    # Chunk a/c/0/0 replaced by b's (an 8 × 8 chunk where a 4 × 4 one belongs).
    store = session.store
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    data = sync(store.get("b/c/0/0", prototype=default_buffer_prototype()))
    assert data is not None
    sync(store.set("a/c/0/0", data))
    with pytest.raises(ValueError, match="damaged"):
        read_windows(store, {"a": small}, Window(0, 4, 0, 4))


def test_read_windows_refuses_a_damaged_shard(tmp_path: Path) -> None:
    """A shard whose index fails its checksum, or points past the shard's end, is an
    error naming the shard, not garbage pixels."""
    store = _store(tmp_path)
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    array = zarr.open_group(store, mode="r")["dem_sharded"]
    data = sync(store.get("dem_sharded/c/0/0", prototype=default_buffer_prototype()))
    assert data is not None
    good = bytearray(data.to_bytes())
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(tmp_path / "r")))
    for damage in ("index", "truncated"):
        session = repo.writable_session("main")
        bad = bytearray(good)
        if damage == "index":
            bad[-10] ^= 0xFF  # a bit of the index, under its checksum
        else:
            # The first half of the frames, then the intact index.
            bad = bad[: len(bad) // 2] + bad[-(4 * 3 * 16 + 4) :]
        sync(session.store.set("dem_sharded/c/0/0", data.from_bytes(bytes(bad))))
        # The whole shard (read at once), and part of it (its index, then a byte range).
        for window in (Window(0, 32, 0, 36), Window(8, 30, 12, 30)):
            with pytest.raises(ValueError, match=r"dem_sharded/c/0/0.*damaged"):
                read_windows(session.store, {"dem": array}, window)  # type: ignore[dict-item]


@pytest.mark.parametrize("block", [None, 16], ids=["whole chunks", "sharded"])
def test_datacube_read_matches_the_pattern_across_chunks(tmp_path: Path, block: int | None) -> None:
    """Through Datacube.read: a window over filled tiles, one that was never filled,
    and the ragged grid edge (chunks of 64 do not divide 1000); whole chunks, and
    shards of 64² in inner chunks of 16²."""
    grid = CubeGrid("EPSG:3413", -50_000.0, 60_000.0, 10.0, 1000, 1000)
    spec = CubeSpec(
        kind="test-aux",
        grid=grid,
        variables=(
            CubeVariable("dem", "float32", math.nan),
            CubeVariable("cls", "uint8", 0),
        ),
        chunk=64,
        compression=CubeCompression("lz4", 5, block=block),
    )
    cube = Datacube.open(tmp_path / "cube", spec)
    source = PatternTileSource(spec, tile_size=100)
    filled = source.tiles_for(Window(150, 420, 130, 390)) + source.tiles_for(
        Window(900, 1000, 900, 1000)
    )
    cube.fill(filled, source)
    for window in (Window(170, 410, 133, 377), Window(600, 700, 600, 700),
                   Window(880, 1000, 910, 1000), Window(100, 450, 100, 450)):  # fmt: skip
        ds = cube.read(window)
        for name in ("dem", "cls"):
            np.testing.assert_array_equal(
                ds[name].values, source.expected(name, window, filled), err_msg=f"{window}"
            )
