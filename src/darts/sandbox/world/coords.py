"""Raster grids and where their pixel centres fall in the world's frame (EPSG:3413).

The world field is defined in EPSG:3413 metres. Every raster the world writes (UTM
scenes, polar stereographic DEM tiles, lat/lon TCVIS grids) asks for the 3413
coordinates of its pixel centres. Projecting every pixel with PROJ would dominate the
build for full-size tiles, so corners of a coarse lattice (every ``_STEP`` pixels) are
projected and the rest is interpolated bilinearly: the map projections involved are
smooth enough that the error is far below a millimetre over a few hundred metres.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from affine import Affine
from pyproj import Transformer

WORLD_EPSG = 3413
_STEP = 32


@lru_cache(maxsize=32)
def transformer(src_epsg: int, dst_epsg: int) -> Transformer:
    return Transformer.from_crs(src_epsg, dst_epsg, always_xy=True)


@dataclass(frozen=True)
class RasterGrid:
    """A north-up raster grid: CRS, affine transform of the upper-left corner, shape."""

    epsg: int
    transform: Affine
    height: int
    width: int

    @property
    def res(self) -> float:
        return float(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def rows(self, start: int, stop: int) -> RasterGrid:
        """The sub-grid of rows [start, stop)."""
        return RasterGrid(
            self.epsg, self.transform @ Affine.translation(0, start), stop - start, self.width
        )

    def window(self, row: int, col: int, height: int, width: int) -> RasterGrid:
        return RasterGrid(self.epsg, self.transform @ Affine.translation(col, row), height, width)


@dataclass(frozen=True)
class GridCoords:
    """EPSG:3413 coordinates of a grid's pixel centres, plus the coarse lattice used."""

    x: np.ndarray
    y: np.ndarray
    coarse_x: np.ndarray
    coarse_y: np.ndarray
    coarse_rows: np.ndarray
    coarse_cols: np.ndarray

    def window_of_box(
        self, xmin: float, ymin: float, xmax: float, ymax: float
    ) -> tuple[slice, slice] | None:
        """Row/column slices covering every pixel whose centre may lie in the 3413 box.

        Tests the cells of the coarse lattice (and pads by one lattice cell), so a small
        object costs work proportional to its own size, not to the grid's.
        """
        return self._window_between_nodes(xmin, ymin, xmax, ymax)

    def _window_between_nodes(
        self, xmin: float, ymin: float, xmax: float, ymax: float
    ) -> tuple[slice, slice] | None:
        cx, cy = self.coarse_x, self.coarse_y
        if cx.shape[0] < 2 or cx.shape[1] < 2:
            return self._slices(0, cx.shape[0] - 1, 0, cx.shape[1] - 1)
        cell_xmin = np.minimum.reduce([cx[:-1, :-1], cx[1:, :-1], cx[:-1, 1:], cx[1:, 1:]])
        cell_xmax = np.maximum.reduce([cx[:-1, :-1], cx[1:, :-1], cx[:-1, 1:], cx[1:, 1:]])
        cell_ymin = np.minimum.reduce([cy[:-1, :-1], cy[1:, :-1], cy[:-1, 1:], cy[1:, 1:]])
        cell_ymax = np.maximum.reduce([cy[:-1, :-1], cy[1:, :-1], cy[:-1, 1:], cy[1:, 1:]])
        hit = (cell_xmax >= xmin) & (cell_xmin <= xmax) & (cell_ymax >= ymin) & (cell_ymin <= ymax)
        if not hit.any():
            return None
        r_idx = np.nonzero(hit.any(axis=1))[0]
        c_idx = np.nonzero(hit.any(axis=0))[0]
        return self._slices(r_idx[0], r_idx[-1] + 1, c_idx[0], c_idx[-1] + 1)

    def _slices(self, r0: int, r1: int, c0: int, c1: int) -> tuple[slice, slice]:
        rows, cols = self.coarse_rows, self.coarse_cols
        row_start = int(rows[max(r0 - 1, 0)])
        row_stop = int(rows[min(r1 + 1, len(rows) - 1)]) + 1
        col_start = int(cols[max(c0 - 1, 0)])
        col_stop = int(cols[min(c1 + 1, len(cols) - 1)]) + 1
        return slice(row_start, row_stop), slice(col_start, col_stop)


def _lattice(n: int) -> np.ndarray:
    nodes = np.arange(0, n, _STEP)
    if nodes[-1] != n - 1:
        nodes = np.append(nodes, n - 1)
    return nodes


def _interp_weights(n: int, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pix = np.arange(n)
    seg = np.clip(np.searchsorted(nodes, pix, side="right") - 1, 0, max(len(nodes) - 2, 0))
    if len(nodes) == 1:
        return seg, np.zeros(n)
    span = (nodes[seg + 1] - nodes[seg]).astype(np.float64)
    return seg, (pix - nodes[seg]) / span


def world_coords(grid: RasterGrid) -> GridCoords:
    """EPSG:3413 coordinates of every pixel centre of ``grid``."""
    rows, cols = _lattice(grid.height), _lattice(grid.width)
    t = grid.transform
    node_x = t.c + (cols + 0.5) * t.a
    node_y = t.f + (rows + 0.5) * t.e
    gx, gy = np.meshgrid(node_x, node_y)
    if grid.epsg == WORLD_EPSG:
        # Already in the world frame: exact, no interpolation needed.
        px = t.c + (np.arange(grid.width) + 0.5) * t.a
        py = t.f + (np.arange(grid.height) + 0.5) * t.e
        x, y = np.meshgrid(px, py)
        return GridCoords(x, y, gx, gy, rows, cols)
    cx, cy = transformer(grid.epsg, WORLD_EPSG).transform(gx, gy)
    cx, cy = np.asarray(cx), np.asarray(cy)
    r_seg, r_w = _interp_weights(grid.height, rows)
    c_seg, c_w = _interp_weights(grid.width, cols)
    r1 = np.minimum(r_seg + 1, len(rows) - 1)
    c1 = np.minimum(c_seg + 1, len(cols) - 1)
    rw = r_w[:, None]
    cw = c_w[None, :]

    def interp(values: np.ndarray) -> np.ndarray:
        top = values[r_seg][:, c_seg] * (1 - cw) + values[r_seg][:, c1] * cw
        bottom = values[r1][:, c_seg] * (1 - cw) + values[r1][:, c1] * cw
        return top * (1 - rw) + bottom * rw

    return GridCoords(interp(cx), interp(cy), cx, cy, rows, cols)
