"""Test helpers for the streaming compute steps (like ``darts.store.datacube.testing``).

Steps that must work on scenes larger than memory read their inputs a strip at a time;
:func:`strip_recording_variable` gives them a lazily indexed input that records the
rows of every read, so a test can check the strips' size and that nothing is read twice.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing


class RowRecordingArray(BackendArray):  # type: ignore[misc]
    """A lazily read 2-D array; ``rows`` lists the number of rows of every read."""

    def __init__(self, values: np.ndarray) -> None:
        self.values, self.shape, self.dtype = values, values.shape, values.dtype
        self.rows: list[int] = []

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._read
        )

    def _read(self, key: tuple) -> np.ndarray:
        out = self.values[key]
        self.rows.append(out.shape[0])
        return out


def strip_recording_variable(values: np.ndarray) -> tuple[xr.Variable, RowRecordingArray]:
    """A ("y", "x") variable over ``values`` that is only read when indexed, and the
    recorder of its reads."""
    recorder = RowRecordingArray(values)
    return xr.Variable(("y", "x"), indexing.LazilyIndexedArray(recorder)), recorder
