"""The datacube reader on whichever zarr and numcodecs are installed (zarr 3.1 on
Python 3.11's pins; the newest pip picks on 3.12 and 3.13, where zarr >= 3.2 changed
its internals): the cubes darts writes must take the direct path, and every fallback
(no partial Blosc decoding, reading through zarr) must give the same pixels."""

from __future__ import annotations

import ast
import ctypes
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import zarr

from darts.grid.cube import CubeGrid, Window
from darts.store import blosc_rows
from darts.store.datacube import Datacube
from darts.store.datacube import read as datacube_read
from darts.store.datacube.spec import CubeCompression, CubeSpec, CubeVariable
from darts.store.datacube.testing import PatternTileSource

SRC = Path(__file__).resolve().parents[1] / "src" / "darts"
# Windows over filled tiles (cutting chunks and their rows), over nothing filled, and
# over the ragged edge of the grid.
WINDOWS = (Window(170, 410, 133, 377), Window(600, 700, 600, 700), Window(880, 1000, 910, 1000))


def _cube(tmp_path: Path, block: int | None, scaled: bool = False):
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
    return cube, source, filled


def _check(cube: Datacube, source: PatternTileSource, filled: list[str]) -> None:
    for window in WINDOWS:
        ds = cube.read(window)
        for name in ("dem", "cls"):
            np.testing.assert_array_equal(
                ds[name].values, source.expected(name, window, filled), err_msg=f"{window}"
            )


@pytest.mark.parametrize("block", [None, 16], ids=["whole chunks", "sharded"])
def test_the_cube_s_own_layout_takes_the_direct_path(
    tmp_path: Path, block: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If a zarr release changes what the reader looks at, the reader must not
    quietly fall back to zarr's (slower) path: the layouts it found are checked."""
    cube, source, filled = _cube(tmp_path, block)
    layouts: list[Any] = []
    partial: list[bool] = []
    real_layout, real_decode = datacube_read._layout, datacube_read.decode_rows

    def spy_layout(array: zarr.Array, divisor: int | None = None):
        layouts.append(found := real_layout(array, divisor))
        return found

    def spy_decode(frame, rows, out) -> bool:
        partial.append(done := real_decode(frame, rows, out))
        return done

    monkeypatch.setattr(datacube_read, "_layout", spy_layout)
    monkeypatch.setattr(datacube_read, "decode_rows", spy_decode)
    _check(cube, source, filled)
    assert layouts and None not in layouts
    inner = block or 64
    assert {(lay.chunk, lay.block, lay.sharded) for lay in layouts} == {
        ((64, 64), (inner, inner), block is not None)
    }
    assert {lay.dtype for lay in layouts} == {np.dtype("float32"), np.dtype("uint8")}
    if blosc_rows.available():
        assert any(partial), "windows cutting chunk rows decode only those rows"


@pytest.mark.parametrize("block", [None, 16], ids=["whole chunks", "sharded"])
def test_without_partial_blosc_decoding_the_pixels_are_the_same(
    tmp_path: Path, block: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback where numcodecs' c-blosc cannot be used (another build): whole
    frames decoded through numcodecs' public codec."""
    cube, source, filled = _cube(tmp_path, block)
    monkeypatch.setattr(blosc_rows, "_library", lambda: None)
    assert not blosc_rows.available()
    out = np.empty((4, 4), np.float32)
    assert blosc_rows.decode_rows(np.zeros(32, np.uint8), (0, 2), out) is False
    _check(cube, source, filled)


@pytest.mark.parametrize("block", [None, 16], ids=["whole chunks", "sharded"])
def test_a_layout_the_reader_does_not_know_is_read_through_zarr(
    tmp_path: Path, block: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    cube, source, filled = _cube(tmp_path, block)
    monkeypatch.setattr(datacube_read, "_layout", lambda array, divisor=None: None)
    _check(cube, source, filled)


def test_other_layouts_are_not_taken_for_the_cube_s(tmp_path: Path) -> None:
    group = zarr.open_group(zarr.storage.LocalStore(tmp_path / "z"), mode="w")
    zstd = group.create_array(
        "zstd", shape=(10, 10), chunks=(5, 5), dtype="float32",
        compressors=[zarr.codecs.ZstdCodec()],
    )  # fmt: skip
    three_d = group.create_array(
        "three", shape=(2, 10, 10), chunks=(1, 5, 5), dtype="float32",
        compressors=[zarr.codecs.BloscCodec(cname="lz4")],
    )  # fmt: skip
    big_endian = group.create_array(
        "big", shape=(10, 10), chunks=(5, 5), dtype=">f4",
        compressors=[zarr.codecs.BloscCodec(cname="lz4")],
    )  # fmt: skip
    blosc = group.create_array(
        "blosc", shape=(10, 10), chunks=(5, 5), dtype="<f4",
        compressors=[zarr.codecs.BloscCodec(cname="lz4")],
    )  # fmt: skip
    for array in (zstd, three_d, big_endian):
        assert datacube_read._layout(array) is None, array.name
    assert datacube_read._layout(blosc) is not None


def test_codec_settings_read_as_strings_on_every_zarr() -> None:
    """zarr < 3.2 holds enums (Endian.little), later zarr the strings themselves."""
    assert datacube_read._literal("little") == "little"
    assert datacube_read._literal(SimpleNamespace(value="end")) == "end"
    codec = zarr.codecs.BytesCodec(endian="little")
    assert datacube_read._is_bytes(codec, np.dtype("<f4"))
    assert not datacube_read._is_bytes(codec, np.dtype(">f4"))


# --- blosc_rows: the internal is used only where it proves itself ----------------------


class _FakeFunction:
    def __init__(self, result: Any = 0, effect: Any = None) -> None:
        self.result, self.effect = result, effect

    def __call__(self, *args: Any) -> Any:
        if self.effect is not None:
            self.effect(*args)
        return self.result


def _fake_library(version: bytes, getitem: _FakeFunction | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        blosc_getitem=getitem or _FakeFunction(),
        blosc_cbuffer_validate=_FakeFunction(),
        blosc_get_version_string=_FakeFunction(version),
    )


def test_a_c_blosc_that_is_not_1x_is_not_used() -> None:
    assert blosc_rows._checked(_fake_library(b"2.15.2")) is None
    assert blosc_rows._checked(_fake_library(b"")) is None


def test_a_library_without_the_functions_is_not_used() -> None:
    assert blosc_rows._checked(SimpleNamespace(blosc_getitem=_FakeFunction())) is None


def test_a_blosc_getitem_that_decodes_wrongly_is_not_used() -> None:
    def garbage(src: int, start: int, count: int, dest: int) -> None:
        ctypes.memset(dest, 7, count * 4)

    wrong = _FakeFunction(result=20 * 40 * 4, effect=garbage)
    assert blosc_rows._checked(_fake_library(b"1.21.6", wrong)) is None
    failing = _FakeFunction(result=-1)
    assert blosc_rows._checked(_fake_library(b"1.21.6", failing)) is None


def test_numcodecs_c_blosc_passes_its_checks_here() -> None:
    """Today's numcodecs wheels (0.16 on Python 3.11, 0.17 on 3.12 / 3.13) export
    c-blosc 1.x: the fast path is really in use where the tests run."""
    import numcodecs

    if not blosc_rows.available():
        pytest.skip(f"numcodecs {numcodecs.__version__}: no usable c-blosc 1.x API")
    library = blosc_rows._library()
    assert blosc_rows._self_test(library)


# --- no private zarr / numcodecs internals ---------------------------------------------

# Roots whose private parts darts must not touch: every module or attribute below
# ``zarr.core`` and any name starting with "_" under either package.
_GUARDED = ("zarr", "numcodecs")


def _private(dotted: str) -> bool:
    parts = dotted.split(".")
    if parts[0] not in _GUARDED or len(parts) < 2:
        return False
    # Dunders (a module's __file__, __version__) are public.
    hidden = [p for p in parts[1:] if p.startswith("_") and not p.endswith("__")]
    return (parts[0] == "zarr" and parts[1] == "core") or bool(hidden)


def _dotted(node: ast.expr) -> str | None:
    names: list[str] = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(names)])
    return None


def _private_uses(source: str) -> set[str]:
    """Private zarr / numcodecs names ``source`` reaches: imports (anywhere, also inside
    functions and ``if TYPE_CHECKING``), attribute chains (``zarr.core.sync.sync``, also
    through an alias) and module names given to ``importlib.import_module`` /
    ``__import__``."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            for alias in node.names:
                found.add(f"{node.module}.{alias.name}")
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args:
            callee, first = _dotted(node.func), node.args[0]
            if callee in ("importlib.import_module", "import_module", "__import__") and (
                isinstance(first, ast.Constant) and isinstance(first.value, str)
            ):
                found.add(first.value)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (dotted := _dotted(node)):
            head, _, rest = dotted.partition(".")
            found.add(f"{aliases.get(head, head)}.{rest}")
    return {name for name in found if _private(name)}


def test_the_private_use_check_finds_what_it_must() -> None:
    sample = """
import zarr as z
from zarr.core.sync import sync
from numcodecs import _shuffle
import importlib
def f(store):
    from zarr.core import buffer
    z.core.sync.sync(store)
    return importlib.import_module("numcodecs._blosc")
"""
    assert _private_uses(sample) == {
        "zarr.core.sync",
        "zarr.core.sync.sync",
        "zarr.core",
        "zarr.core.buffer",
        "numcodecs._shuffle",
        "numcodecs._blosc",
    }
    public = (
        "import zarr\nfrom zarr.codecs import BloscCodec\nzarr.open_group\n"
        "import numcodecs.blosc\nnumcodecs.blosc.__file__\n"
    )
    assert _private_uses(public) == set()


def test_darts_uses_no_private_zarr_or_numcodecs_module() -> None:
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        names = _private_uses(path.read_text())
        if names:
            found[path.relative_to(SRC).as_posix()] = names
    assert found == {}
