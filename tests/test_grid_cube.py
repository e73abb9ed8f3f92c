"""Pixel windows of the datacube grid: the cells (chunks, blocks) a window touches."""

from __future__ import annotations

from darts.grid.cube import Window


def test_cells_cover_the_window_exactly_once() -> None:
    window = Window(5, 61, 7, 70)
    cells = list(window.cells(16, 12))
    assert [(i, j) for i, j, _ in cells] == [(i, j) for i in range(4) for j in range(6)]
    assert cells[7] == (1, 1, Window(16, 32, 12, 24))  # whole cells, row by row
    parts = [cell.intersection(window) for _, _, cell in cells]
    assert sum(p.height * p.width for p in parts) == window.height * window.width


def test_a_window_on_one_cell_touches_that_cell_alone() -> None:
    assert list(Window(16, 32, 12, 24).cells(16, 12)) == [(1, 1, Window(16, 32, 12, 24))]
    assert list(Window(17, 18, 25, 26).cells(16, 12)) == [(1, 2, Window(16, 32, 24, 36))]
