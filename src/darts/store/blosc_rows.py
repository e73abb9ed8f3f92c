"""Decoding some rows of a Blosc frame without decoding the rest.

A Blosc frame is a sequence of independently compressed blocks (1 MiB each for the
ArcticDEM cube's 2048² float32 chunks, i.e. 128 rows), and c-blosc's
``blosc_getitem`` decodes just the blocks that hold a range of items. A window that
needs the last 400 rows of a chunk then decodes 4 blocks of 16 instead of all of
them (a 10 × 10 km read straddling chunk corners: ~3× less decoding).

numcodecs builds c-blosc 1.x into its extension module and exports its C API, but no
longer offers partial decoding in Python (``decode_partial`` went in 0.16), so the
function is called through ctypes. That is an internal of numcodecs, so it is used only
where it proves itself: the extension must export the functions, report a c-blosc 1.x
version, and decode rows of a frame that numcodecs' public ``Blosc`` codec encoded
exactly as a full decode does. Anywhere else (another numcodecs build, a later c-blosc)
:func:`decode_rows` answers False and the caller decodes the whole frame through
numcodecs' public API: slower for partial windows, the same pixels.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@functools.cache
def _library() -> Any | None:
    """numcodecs' c-blosc, if its partial decoding can be trusted here; else None."""
    try:
        import numcodecs.blosc

        library = ctypes.CDLL(numcodecs.blosc.__file__)
    except (ImportError, OSError, TypeError):
        log.debug("partial Blosc decoding unavailable: numcodecs.blosc is no shared library")
        return None
    return _checked(library)


def _checked(library: Any) -> Any | None:
    """``library`` with the functions' signatures set, if it exports them, says it is
    c-blosc 1.x and passes :func:`_self_test`; else None."""
    try:
        getitem = library.blosc_getitem
        validate = library.blosc_cbuffer_validate
        version = library.blosc_get_version_string
    except AttributeError:
        log.debug("partial Blosc decoding unavailable: no c-blosc API in numcodecs.blosc")
        return None
    getitem.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    getitem.restype = ctypes.c_int
    validate.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    validate.restype = ctypes.c_int
    version.argtypes = []
    version.restype = ctypes.c_char_p
    found = version()
    blosc_version = found.decode("ascii", "replace") if isinstance(found, bytes) else ""
    if not blosc_version.startswith("1."):
        log.debug("partial Blosc decoding unavailable: c-blosc %r is not 1.x", blosc_version)
        return None
    if not _self_test(library):
        log.debug("partial Blosc decoding unavailable: blosc_getitem failed its self-test")
        return None
    return library


def _self_test(library: Any) -> bool:
    """Whether ``blosc_getitem`` decodes rows from the middle of a multi-block frame
    made by numcodecs' public codec exactly as the full decode does."""
    import numcodecs

    values = np.arange(64 * 40, dtype=np.float32).reshape(64, 40)
    codec = numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE, blocksize=1024)
    frame = np.frombuffer(codec.encode(values), np.uint8)
    out = np.zeros((20, 40), np.float32)
    try:
        done = library.blosc_getitem(frame.ctypes.data, 30 * 40, 20 * 40, out.ctypes.data)
    except (OSError, ValueError):
        return False
    return done == out.nbytes and bool((out == values[30:50]).all())


def available() -> bool:
    return _library() is not None


def decode_rows(frame: np.ndarray, rows: tuple[int, int], out: np.ndarray) -> bool:
    """Decode rows ``rows[0]:rows[1]`` of the 2-D array a Blosc frame holds (C order,
    ``out.shape[1]`` columns, ``out.dtype``) into the first rows of ``out`` (which
    must be C-contiguous). False if partial decoding is not available here; raises
    ValueError if the frame is damaged (its header disagrees with its length, or a
    block fails to decode). The caller has checked the frame's decoded size."""
    library = _library()
    if library is None:
        return False
    row0, row1 = rows
    width = out.shape[1]
    if not out.flags.c_contiguous or row1 - row0 > out.shape[0] or row0 < 0 or row1 < row0:
        raise ValueError(f"rows {rows} do not fit a {out.shape} C-contiguous buffer")
    source = np.ascontiguousarray(frame, dtype=np.uint8)
    decoded = ctypes.c_size_t(0)
    # The header's compressed size must match the bytes we have: blosc_getitem itself
    # is not told the frame's length and would read past a truncated one.
    if library.blosc_cbuffer_validate(source.ctypes.data, source.nbytes, ctypes.byref(decoded)):
        raise ValueError("the Blosc frame's header does not match its length")
    count = (row1 - row0) * width
    done = library.blosc_getitem(source.ctypes.data, row0 * width, count, out.ctypes.data)
    if done != count * out.dtype.itemsize:
        raise ValueError(f"a Blosc block failed to decode (code {done})")
    return True
