"""The fixed pixel grid of a datacube, and windows on it.

A datacube covers a large, fixed extent (the whole ArcticDEM domain, the TCVIS domain)
on a regular north-up grid of square pixels. Everything else about a cube — chunking,
source tiles, completeness — is expressed in integer pixel windows of this grid, so two
writers that agree on the grid agree on every pixel. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from affine import Affine

Bounds = tuple[float, float, float, float]  # (xmin, ymin, xmax, ymax) in the grid's CRS

# Bounds snapped outwards to the pixel grid would grow by a whole pixel from floating
# point noise alone (x = 4e6 + 1e-9); tolerate that much before rounding outwards.
_SNAP_TOLERANCE_PX = 1e-6


@dataclass(frozen=True)
class Window:
    """Half-open pixel window [row0, row1) × [col0, col1) of a grid."""

    row0: int
    row1: int
    col0: int
    col1: int

    def __post_init__(self) -> None:
        if self.row1 < self.row0 or self.col1 < self.col0:
            raise ValueError(f"window has negative size: {self}")

    @property
    def height(self) -> int:
        return self.row1 - self.row0

    @property
    def width(self) -> int:
        return self.col1 - self.col0

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def is_empty(self) -> bool:
        return self.height == 0 or self.width == 0

    @property
    def slices(self) -> tuple[slice, slice]:
        return (slice(self.row0, self.row1), slice(self.col0, self.col1))

    def intersection(self, other: Window) -> Window:
        row0, col0 = max(self.row0, other.row0), max(self.col0, other.col0)
        row1, col1 = min(self.row1, other.row1), min(self.col1, other.col1)
        return Window(row0, max(row0, row1), col0, max(col0, col1))

    def relative_to(self, outer: Window) -> Window:
        """This window in the pixel coordinates of ``outer`` (which must contain it)."""
        return Window(
            self.row0 - outer.row0,
            self.row1 - outer.row0,
            self.col0 - outer.col0,
            self.col1 - outer.col0,
        )

    def offset(self, rows: int, cols: int) -> Window:
        """This window moved down by ``rows`` and right by ``cols``."""
        return Window(self.row0 + rows, self.row1 + rows, self.col0 + cols, self.col1 + cols)

    def cells(self, rows: int, cols: int) -> Iterator[tuple[int, int, Window]]:
        """The cells of a ``rows × cols`` grid from pixel (0, 0) (chunks, blocks) that
        this window touches, row by row: ``(i, j, cell)``, the whole cell."""
        for i in range(self.row0 // rows, (self.row1 - 1) // rows + 1):
            for j in range(self.col0 // cols, (self.col1 - 1) // cols + 1):
                yield i, j, Window(i * rows, (i + 1) * rows, j * cols, (j + 1) * cols)


@dataclass(frozen=True)
class CubeGrid:
    """A north-up grid: upper-left corner (x0, y0), square pixels of ``res`` units."""

    crs: str  # "EPSG:3413"
    x0: float
    y0: float
    res: float
    width: int
    height: int

    @property
    def transform(self) -> Affine:
        return Affine(self.res, 0.0, self.x0, 0.0, -self.res, self.y0)

    @property
    def full(self) -> Window:
        return Window(0, self.height, 0, self.width)

    @property
    def bounds(self) -> Bounds:
        return self.bounds_of(self.full)

    def bounds_of(self, window: Window) -> Bounds:
        return (
            self.x0 + window.col0 * self.res,
            self.y0 - window.row1 * self.res,
            self.x0 + window.col1 * self.res,
            self.y0 - window.row0 * self.res,
        )

    def window_transform(self, window: Window) -> Affine:
        return Affine(
            self.res, 0.0, self.x0 + window.col0 * self.res, 0.0, -self.res,
            self.y0 - window.row0 * self.res,
        )  # fmt: skip

    def window(self, bounds: Bounds, buffer: float = 0.0) -> Window:
        """The pixels touching ``bounds`` grown by ``buffer`` (CRS units), snapped
        outwards to whole pixels and clipped to the grid (possibly empty)."""
        xmin, ymin, xmax, ymax = bounds
        if xmin > xmax or ymin > ymax:
            raise ValueError(f"bounds must be (xmin, ymin, xmax, ymax), got {bounds!r}")
        xmin, ymin, xmax, ymax = xmin - buffer, ymin - buffer, xmax + buffer, ymax + buffer
        col0 = math.floor((xmin - self.x0) / self.res + _SNAP_TOLERANCE_PX)
        col1 = math.ceil((xmax - self.x0) / self.res - _SNAP_TOLERANCE_PX)
        row0 = math.floor((self.y0 - ymax) / self.res + _SNAP_TOLERANCE_PX)
        row1 = math.ceil((self.y0 - ymin) / self.res - _SNAP_TOLERANCE_PX)
        return Window(row0, max(row0, row1), col0, max(col0, col1)).intersection(self.full)

    def x_coords(self, window: Window) -> np.ndarray:
        """Pixel-centre x coordinates of the window's columns."""
        return self.x0 + (np.arange(window.col0, window.col1) + 0.5) * self.res

    def y_coords(self, window: Window) -> np.ndarray:
        """Pixel-centre y coordinates of the window's rows (decreasing)."""
        return self.y0 - (np.arange(window.row0, window.row1) + 0.5) * self.res

    def to_attrs(self) -> dict[str, object]:
        return {
            "crs": self.crs,
            "x0": self.x0,
            "y0": self.y0,
            "res": self.res,
            "width": self.width,
            "height": self.height,
        }

    @classmethod
    def from_attrs(cls, attrs: dict[str, object]) -> CubeGrid:
        return cls(
            crs=str(attrs["crs"]),
            x0=float(attrs["x0"]),  # type: ignore[arg-type]
            y0=float(attrs["y0"]),  # type: ignore[arg-type]
            res=float(attrs["res"]),  # type: ignore[arg-type]
            width=int(attrs["width"]),  # type: ignore[call-overload]
            height=int(attrs["height"]),  # type: ignore[call-overload]
        )
