"""thumbnail.png: readable, bounded in size, detections outlined."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from PIL import Image
from pyproj import CRS
from scipy import ndimage

from darts.processing import thumbnail
from darts.processing.testing import strip_recording_variable
from darts.processing.thumbnail import (
    OUTLINE_COLOUR,
    THUMBNAIL_MAX_SIZE,
    render_thumbnail,
    stretch,
    write_thumbnail,
)
from darts.sources.decode import grid_coords
from darts.store.georef import Grid


def make_scene(shape: tuple[int, int], *, optical: bool = True) -> xr.Dataset:
    rows, cols = shape
    grid = Grid(
        shape,
        (10.0, 0.0, 500000.0, 0.0, -10.0, 7600000.0),
        "EPSG:32608",
        CRS.from_epsg(32608).to_wkt(),
    )
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


def test_small_scene_thumbnail_keeps_its_size(tmp_path: Path) -> None:
    scene = make_scene((300, 400))
    (path,) = write_thumbnail(scene, tmp_path)
    assert path.name == "thumbnail.png"
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        assert image.size == (400, 300)
        pixels = np.asarray(image)
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
    (path,) = write_thumbnail(scene, tmp_path)
    with Image.open(path) as image:
        assert max(image.size) <= THUMBNAIL_MAX_SIZE
        assert image.size == (500, 700)  # factor 3
        pixels = np.asarray(image)
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
