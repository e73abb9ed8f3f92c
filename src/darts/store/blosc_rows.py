"""Decoding some rows of a Blosc frame without decoding the rest.

A Blosc frame is a sequence of independently compressed blocks (1 MiB each for the
ArcticDEM cube's 2048² float32 chunks, i.e. 128 rows), and c-blosc's
``blosc_getitem`` decodes just the blocks that hold a range of items. A window that
needs the last 400 rows of a chunk then decodes 4 blocks of 16 instead of all of
them (a 10 × 10 km read straddling chunk corners: ~3× less decoding).

numcodecs builds c-blosc 1.x into its extension module and exports its C API, but no
longer offers partial decoding in Python (``decode_partial`` went in 0.16), so the
function is called through ctypes. Where the symbol is missing (another numcodecs
build), :func:`decode_rows` says so and the caller decodes the whole frame.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

import numpy as np


@functools.cache
def _library() -> Any | None:
    try:
        import numcodecs.blosc

        library = ctypes.CDLL(numcodecs.blosc.__file__)
        getitem = library.blosc_getitem
        validate = library.blosc_cbuffer_validate
    except (ImportError, OSError, AttributeError):
        return None
    getitem.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    getitem.restype = ctypes.c_int
    validate.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    validate.restype = ctypes.c_int
    return library


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
