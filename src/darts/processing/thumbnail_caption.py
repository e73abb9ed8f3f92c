"""The caption under the thumbnail's map: which scene, when, at what scale, what colours mean.

A thumbnail is looked at away from its folder and record (a file browser, a report, a
catalogue's preview), often next to thumbnails of other scenes. So it names its scene
(the title), the acquisition date, tile and source, carries a scale bar, and explains
its colours in a legend.

The caption is a white band below the map; the map's pixels are left exactly as
`darts.processing.thumbnail.render_thumbnail` drew them (the band never covers any of
them). When the caption's text is wider than the map, the image is widened with white
to the right of the map, so a long scene id is never cut.

Drawn with Pillow's ImageDraw and its bundled default font (Pillow is already needed
for the PNG; no plotting library). Nothing here reads a clock: the same scene gives
the same image.

The scale bar is measured at the scene centre along the grid's x axis: exact for a UTM
grid up to its scale factor (within 0.1 % in a zone), approximate far from a polar
stereographic grid's true-scale latitude.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pyproj import CRS, Geod

from darts.grid.scene import Grid
from darts.processing.provenance import Provenance

CAPTION_BACKGROUND = (255, 255, 255)
TEXT_COLOUR = (0, 0, 0)
# Half of a typical reflectance quick look: the colour of "outside the valid area".
DIMMED_SWATCH = (96, 96, 96)
NO_DATA_COLOUR = (0, 0, 0)
TITLE_SIZE = 14
TEXT_SIZE = 12
MARGIN = 8
ROW_GAP = 5
SWATCH = 12
SCALE_BAR_HEIGHT = 5
# The scale bar is at most this share of the map's width, and at least this long in px.
SCALE_BAR_SHARE = 0.25
MIN_SCALE_BAR_PX = 40
MIN_WIDTH = 320


@dataclass(frozen=True)
class LegendEntry:
    label: str
    # "outline": a hollow square (how objects are drawn); "fill": a solid square;
    # "ramp": a dark-to-light grey bar (the probability background).
    kind: Literal["outline", "fill", "ramp"]
    colour: tuple[int, int, int]


def legend_entries(*, optical: bool, outline_colour: tuple[int, int, int]) -> list[LegendEntry]:
    """What the map's colours mean, for an RGB or a grey-probability background."""
    objects = LegendEntry("detected object (outline)", "outline", outline_colour)
    if optical:
        return [
            objects,
            LegendEntry("outside the valid area (dimmed)", "fill", DIMMED_SWATCH),
            LegendEntry("no data", "fill", NO_DATA_COLOUR),
        ]
    return [
        objects,
        LegendEntry("probability 0 to 1", "ramp", (255, 255, 255)),
        LegendEntry("no prediction", "fill", NO_DATA_COLOUR),
    ]


def metres_per_pixel(grid: Grid, factor: int) -> float | None:
    """Ground length of one thumbnail pixel along x at the scene centre, in metres;
    None when the CRS measures neither metres-like units nor degrees."""
    crs = CRS.from_wkt(grid.crs_wkt)
    a, b, c, d, e, f = grid.transform
    step = math.hypot(a, d) * factor
    if crs.is_projected:
        return step * crs.axis_info[0].unit_conversion_factor
    if crs.is_geographic:
        rows, cols = grid.shape
        lon = c + a * cols / 2 + b * rows / 2
        lat = f + d * cols / 2 + e * rows / 2
        _fwd, _back, distance = Geod(ellps="WGS84").inv(
            lon, lat, lon + a * factor, lat + d * factor
        )
        return float(distance)
    return None


def scale_bar(metres_per_px: float, max_px: float) -> tuple[float, int]:
    """The longest 1, 2 or 5 × 10ⁿ metres drawn in at most ``max_px`` pixels:
    (metres, pixels)."""
    budget = metres_per_px * max_px
    exponent = math.floor(math.log10(budget))
    for mantissa in (5, 2, 1):
        metres = mantissa * 10.0**exponent
        if metres <= budget:
            return metres, max(1, round(metres / metres_per_px))
    raise AssertionError("unreachable: 10**floor(log10(x)) <= x")


def scale_label(metres: float) -> str:
    if metres >= 1000:
        return f"{metres / 1000:g} km"
    return f"{metres:g} m"


def date_line(provenance: Provenance) -> str:
    """``2018-07-14 20:38:49 UTC · tile 08WMA · cdse`` (a composite: its span)."""
    if provenance.period_start and provenance.period_end:
        when = f"{provenance.period_start:%Y-%m-%d} to {provenance.period_end:%Y-%m-%d} (composite)"
    elif provenance.acquired:
        when = f"{provenance.acquired:%Y-%m-%d %H:%M:%S} UTC"
    else:
        when = "date unknown"
    parts = [when]
    if provenance.tile_id:
        parts.append(f"tile {provenance.tile_id}")
    parts.append(provenance.source)
    return " · ".join(parts)


def add_caption(
    image: np.ndarray,
    provenance: Provenance,
    legend: Sequence[LegendEntry],
    metres_per_px: float | None,
) -> np.ndarray:
    """``image`` (H, W, 3 uint8, the map) with the caption band below it."""
    title_font, text_font = _font(TITLE_SIZE), _font(TEXT_SIZE)
    title, info = provenance.scene_id, date_line(provenance)
    map_h, map_w = image.shape[:2]
    width = max(
        map_w,
        MIN_WIDTH,
        _text_width(title, title_font) + 2 * MARGIN,
        _text_width(info, text_font) + 2 * MARGIN,
    )
    legend_rows = _legend_rows(legend, text_font, width - 2 * MARGIN)
    title_h, text_h = _line_height(title_font), _line_height(text_font)
    height = MARGIN + title_h + ROW_GAP + text_h + len(legend_rows) * (text_h + ROW_GAP)
    if metres_per_px is not None:
        height += ROW_GAP + text_h
    height += MARGIN

    canvas = Image.new("RGB", (width, map_h + height), CAPTION_BACKGROUND)
    canvas.paste(Image.fromarray(image), (0, 0))
    draw = ImageDraw.Draw(canvas)
    y = map_h + MARGIN
    draw.text((MARGIN, y), title, font=title_font, fill=TEXT_COLOUR)
    y += title_h + ROW_GAP
    draw.text((MARGIN, y), info, font=text_font, fill=TEXT_COLOUR)
    y += text_h + ROW_GAP
    for row in legend_rows:
        x = MARGIN
        for entry in row:
            _swatch(draw, entry, x, y + (text_h - SWATCH) // 2)
            label_x = x + _swatch_width(entry) + 4
            draw.text((label_x, y), entry.label, font=text_font, fill=TEXT_COLOUR)
            x += _entry_width(entry, text_font)
        y += text_h + ROW_GAP
    if metres_per_px is not None:
        max_px = max(MIN_SCALE_BAR_PX, map_w * SCALE_BAR_SHARE)
        metres, length = scale_bar(metres_per_px, max_px)
        top = y + (text_h - SCALE_BAR_HEIGHT) // 2
        draw.rectangle(
            (MARGIN, top, MARGIN + length - 1, top + SCALE_BAR_HEIGHT - 1), fill=TEXT_COLOUR
        )
        draw.text((MARGIN + length + 6, y), scale_label(metres), font=text_font, fill=TEXT_COLOUR)
    return np.asarray(canvas)


def _swatch(draw: ImageDraw.ImageDraw, entry: LegendEntry, x: int, y: int) -> None:
    box = (x, y, x + SWATCH - 1, y + SWATCH - 1)
    if entry.kind == "outline":
        draw.rectangle(box, outline=entry.colour, width=2)
    elif entry.kind == "fill":
        draw.rectangle(box, fill=entry.colour, outline=(160, 160, 160))
    else:  # the grey ramp of `probability_grey`: 64 at 0 to 255 at 1
        for i in range(SWATCH * 2):
            grey = round(64 + 191 * i / (SWATCH * 2 - 1))
            draw.line((x + i, y, x + i, y + SWATCH - 1), fill=(grey, grey, grey))


def _legend_rows(
    legend: Sequence[LegendEntry], font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int
) -> list[list[LegendEntry]]:
    """The entries in rows no wider than ``width`` (one entry per row at the least)."""
    rows: list[list[LegendEntry]] = []
    used = 0
    for entry in legend:
        size = _entry_width(entry, font)
        if rows and used + size <= width:
            rows[-1].append(entry)
            used += size
        else:
            rows.append([entry])
            used = size
    return rows


def _swatch_width(entry: LegendEntry) -> int:
    return SWATCH * 2 if entry.kind == "ramp" else SWATCH


def _entry_width(entry: LegendEntry, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    return _swatch_width(entry) + 4 + _text_width(entry.label, font) + 16


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # Pillow's bundled font at this size (FreeType); its bitmap font where Pillow was
    # built without FreeType.
    return ImageFont.load_default(size=size)


def _text_width(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    left, _top, right, _bottom = font.getbbox(text)
    return math.ceil(right - left)


def _line_height(font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    _left, top, _right, bottom = font.getbbox("Ag")
    return math.ceil(bottom) + 2 if top >= 0 else math.ceil(bottom - top) + 2
