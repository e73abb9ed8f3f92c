"""thumbnail.png: readable, bounded in size, detections outlined, captioned with the
scene, its date, a legend and a scale bar."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xarray as xr
from PIL import Image
from pyproj import CRS
from scipy import ndimage

from darts.grid.scene import Grid
from darts.processing import thumbnail
from darts.processing.provenance import ModelRef, Provenance
from darts.processing.testing import strip_recording_variable
from darts.processing.thumbnail import (
    OUTLINE_COLOUR,
    THUMBNAIL_MAX_SIZE,
    render_thumbnail,
    stretch,
    write_thumbnail,
)
from darts.processing.thumbnail_caption import (
    CAPTION_BACKGROUND,
    DIMMED_SWATCH,
    TEXT_COLOUR,
    scale_bar,
    scale_label,
)
from darts.sources.decode import grid_coords

PROVENANCE = Provenance(
    scene_id="S2A_MSIL2A_20180714T203849_N0500_R071_T08WMA_20230713T100203",
    source="cdse",
    models=(ModelRef("unet.pt", "ab" * 32),),
    tile_id="08WMA",
    acquired=datetime(2018, 7, 14, 20, 38, 49, tzinfo=UTC),
)


def make_grid(shape: tuple[int, int]) -> Grid:
    return Grid(
        shape,
        (10.0, 0.0, 500000.0, 0.0, -10.0, 7600000.0),
        "EPSG:32608",
        CRS.from_epsg(32608).to_wkt(),
    )


def make_scene(shape: tuple[int, int], *, optical: bool = True) -> xr.Dataset:
    rows, cols = shape
    grid = make_grid(shape)
    p = np.full(shape, 0.1, dtype=np.float32)
    p[rows // 4 : rows // 2, cols // 4 : cols // 2] = 0.9
    p[-3, 5] = 0.95  # a one-pixel object, smaller than a thumbnail pixel when downscaled
    p[:, -cols // 8 :] = np.nan
    valid = np.isfinite(p).astype(np.uint8)
    variables = {
        "probabilities": (("y", "x"), p),
        "binarized": (("y", "x"), ((p >= 0.5) & (valid == 1)).astype(np.uint8)),
        "valid": (("y", "x"), valid),
    }
    if optical:
        rng = np.random.default_rng(1)
        for name, gain in (("red", 1.0), ("green", 0.8), ("blue", 0.6)):
            variables[name] = (
                ("y", "x"),
                (gain * (0.05 + 0.2 * rng.random(shape))).astype(np.float32),
            )
    return xr.Dataset(variables, coords=grid_coords(grid))


def outline_pixels(image: np.ndarray) -> np.ndarray:
    return np.all(image == np.array(OUTLINE_COLOUR, dtype=np.uint8), axis=-1)


def write(scene: xr.Dataset, out: Path, provenance: Provenance = PROVENANCE) -> np.ndarray:
    """The written thumbnail's pixels."""
    out.mkdir(parents=True, exist_ok=True)
    (path,) = write_thumbnail(scene, make_grid(scene["valid"].shape), out, provenance)
    assert path.name == "thumbnail.png"
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        return np.asarray(image)


def test_small_scene_thumbnail_keeps_its_size(tmp_path: Path) -> None:
    scene = make_scene((300, 400))
    image = write(scene, tmp_path)
    # The map keeps the scene's size, at the top left; the caption lies below it.
    assert image.shape[0] > 300 and image.shape[1] >= 400
    pixels = image[:300, :400]
    np.testing.assert_array_equal(pixels, render_thumbnail(scene))
    outline = outline_pixels(pixels)
    detections = scene["binarized"].values == 1
    assert outline.any()
    # Outlines lie on the detections' border, not inside and not elsewhere.
    assert not (outline & ~detections).any()
    interior = ndimage.binary_erosion(detections, structure=np.ones((3, 3)))
    assert not (outline & interior).any()
    # Not a blank image: the background has contrast.
    assert pixels[~outline].std() > 10


def test_large_scene_is_downscaled_and_small_objects_stay_visible(tmp_path: Path) -> None:
    scene = make_scene((2100, 1500))
    pixels = render_thumbnail(scene)
    assert max(pixels.shape) <= THUMBNAIL_MAX_SIZE
    assert pixels.shape == (700, 500, 3)  # factor 3
    np.testing.assert_array_equal(write(scene, tmp_path)[:700, :500], pixels)
    outline = outline_pixels(pixels)
    assert outline[-1, 1]  # the one-pixel object at scene row -3, column 5
    assert outline[175, 125]  # top-left corner of the square block


def test_without_optical_bands_the_background_is_grey_probability() -> None:
    scene = make_scene((300, 400), optical=False)
    image = render_thumbnail(scene)
    outline = outline_pixels(image)
    grey = image[~outline]
    assert (grey[:, 0] == grey[:, 1]).all() and (grey[:, 1] == grey[:, 2]).all()
    # No prediction → black; probability 0.1 → dark grey, clearly not black.
    assert (image[:, -10:] == 0).all()
    assert image[5, 5, 0] == round(64 + 0.1 * 191)
    assert outline.any()


def test_stretch_ignores_outliers() -> None:
    rng = np.random.default_rng(0)
    bands = (0.05 + 0.1 * rng.random((3, 50, 50))).astype(np.float32)
    bands[:, 0, 0] = 100.0  # one saturated pixel must not flatten the rest
    bands[:, 1, 1] = np.nan
    image = stretch(bands)
    assert image.shape == (50, 50, 3) and image.dtype == np.uint8
    assert image[2:, 2:].std() > 50
    assert (image[1, 1] == 0).all()


def test_invalid_area_is_dimmed() -> None:
    # The same random reflectance everywhere; only the NaN strip on the right is invalid.
    image = render_thumbnail(make_scene((300, 400))).astype(np.float64)
    inside, outside = image[:, :40].mean(), image[:, -40:].mean()
    assert 0.4 < outside / inside < 0.6


def test_lazy_bands_are_read_a_strip_at_a_time_with_the_same_result() -> None:
    scene = make_scene((2100, 1500))
    expected = render_thumbnail(scene)
    lazy = scene.copy()
    strips = {}
    for name in ("red", "green", "blue", "probabilities"):
        lazy[name], strips[name] = strip_recording_variable(scene[name].values)
    np.testing.assert_array_equal(render_thumbnail(lazy), expected)
    for name in ("red", "green", "blue"):
        assert sum(strips[name].rows) == 2100  # each row read once
        assert max(strips[name].rows) <= thumbnail._ROWS_PER_STEP * 3
    assert strips["probabilities"].rows == []  # the RGB background does not need it
    grey = lazy.drop_vars(["red", "green", "blue"])
    np.testing.assert_array_equal(
        render_thumbnail(grey), render_thumbnail(scene.drop_vars(["red", "green", "blue"]))
    )
    assert max(strips["probabilities"].rows) <= thumbnail._ROWS_PER_STEP * 3


def test_block_reductions_match_a_direct_computation() -> None:
    rng = np.random.default_rng(4)
    values = rng.random((70, 50)).astype(np.float32)
    values[rng.random(values.shape) < 0.2] = np.nan
    values[:4, :4] = np.nan  # a block without any value
    mean = thumbnail.block_mean(values, 4)
    assert mean.shape == (18, 13)
    for r in range(18):
        for c in range(13):
            block = values[4 * r : 4 * r + 4, 4 * c : 4 * c + 4]
            if np.isfinite(block).any():
                assert np.isclose(mean[r, c], np.nanmean(block), atol=1e-6)
            else:
                assert np.isnan(mean[r, c])
    mask = rng.random((70, 50)) < 0.02
    anywhere = thumbnail.block_any(mask, 4)
    for r in range(18):
        for c in range(13):
            assert anywhere[r, c] == mask[4 * r : 4 * r + 4, 4 * c : 4 * c + 4].any()


# -- the caption: title, date, legend, scale bar ---------------------------------------------


def caption_of(image: np.ndarray, map_shape: tuple[int, int]) -> np.ndarray:
    return image[map_shape[0] :]


def has_colour(pixels: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool(np.all(pixels == np.array(colour, dtype=np.uint8), axis=-1).any())


def has_swatch(pixels: np.ndarray, colour: tuple[int, int, int]) -> bool:
    """A solid 8×8 square of ``colour`` (a legend swatch; anti-aliased text has no such)."""
    mask = np.all(pixels == np.array(colour, dtype=np.uint8), axis=-1)
    return bool(ndimage.binary_erosion(mask, structure=np.ones((8, 8), dtype=bool)).any())


def longest_run(mask: np.ndarray) -> int:
    """The longest horizontal run of True in any row."""
    best = 0
    for row in mask:
        padded = np.concatenate([[0], row.astype(np.int8), [0]])
        edges = np.flatnonzero(np.diff(padded))
        if edges.size:
            best = max(best, int((edges[1::2] - edges[::2]).max()))
    return best


def test_caption_names_the_scene_and_explains_the_colours(tmp_path: Path) -> None:
    scene = make_scene((300, 400))
    image = write(scene, tmp_path)
    caption = caption_of(image, (300, 400))
    # A band of text and swatches on a plain background, tall enough for four lines.
    assert caption.shape[0] >= 4 * 12
    assert has_colour(caption, CAPTION_BACKGROUND) and has_colour(caption, TEXT_COLOUR)
    # The legend shows the map's colours: the outline colour and the dimmed swatch.
    assert longest_run(np.all(caption == np.array(OUTLINE_COLOUR, np.uint8), axis=-1)) >= 12
    assert has_swatch(caption, DIMMED_SWATCH)
    # A long scene id widens the image rather than being cut: text reaches past the map.
    text = np.all(caption == np.array(TEXT_COLOUR, dtype=np.uint8), axis=-1)
    assert image.shape[1] > 400 and text[:, 400:].any()
    # The title is drawn from the provenance: another scene id gives another title row.
    other = write(scene, tmp_path / "other", replace(PROVENANCE, scene_id="S2B_OTHER"))
    assert not np.array_equal(caption_of(other, (300, 400))[:20], caption[:20, : other.shape[1]])


def test_grey_background_has_its_own_legend(tmp_path: Path) -> None:
    scene = make_scene((300, 400), optical=False)
    caption = caption_of(write(scene, tmp_path), (300, 400))
    assert has_colour(caption, OUTLINE_COLOUR)
    assert not has_swatch(caption, DIMMED_SWATCH)
    # The probability ramp's dark end (probability 0 → grey 64, as on the map) and the
    # black of "no prediction".
    assert has_colour(caption, (64, 64, 64)) and has_swatch(caption, (0, 0, 0))


def test_scale_bar_is_as_long_as_its_label_says(tmp_path: Path) -> None:
    # 10 m pixels, a 400-px map: the bar may take a quarter (1 km), 100 px long.
    caption = caption_of(write(make_scene((300, 400)), tmp_path / "a"), (300, 400))
    bar = np.all(caption == np.array(TEXT_COLOUR, dtype=np.uint8), axis=-1)
    assert longest_run(bar) == 100
    # Downscaled by 3 (30 m per thumbnail pixel, 500 px wide): 2 km in 67 px.
    caption = caption_of(write(make_scene((2100, 1500)), tmp_path / "b"), (700, 500))
    bar = np.all(caption == np.array(TEXT_COLOUR, dtype=np.uint8), axis=-1)
    assert longest_run(bar) == round(2000 / 30)
    assert scale_bar(30.0, 125) == (2000.0, 67)
    assert scale_bar(10.0, 100) == (1000.0, 100)
    assert scale_bar(0.5, 40) == (20.0, 40)
    assert (scale_label(2000.0), scale_label(500.0)) == ("2 km", "500 m")


def test_thumbnail_is_the_same_bytes_every_time(tmp_path: Path) -> None:
    scene = make_scene((300, 400))
    grid = make_grid((300, 400))
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    (a,) = write_thumbnail(scene, grid, tmp_path / "a", PROVENANCE)
    (b,) = write_thumbnail(scene, grid, tmp_path / "b", PROVENANCE)
    assert a.read_bytes() == b.read_bytes()
