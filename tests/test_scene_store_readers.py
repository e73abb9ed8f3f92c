"""Reader-side helpers for stored scenes: SCL quality mask and DN → reflectance."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from darts.processing.quality import quality_mask_from_scl
from darts.processing.reflectance import to_reflectance
from darts.store.scenes import BandEncoding, SceneStore

# processing.md: {0, 1} → 0 invalid; {2, 4, 5, 6, 7, 10} → 2 high; {3, 8, 9, 11} → 1 low.
EXPECTED_QUALITY = {0: 0, 1: 0, 2: 2, 3: 1, 4: 2, 5: 2, 6: 2, 7: 2, 8: 1, 9: 1, 10: 2, 11: 1}
CDSE = {"raster:scale": 0.0001, "raster:offset": -0.1, "nodata": 0}


def grid_array(values: np.ndarray, attrs: dict | None = None) -> xr.DataArray:
    rows, cols = values.shape
    return xr.DataArray(
        values,
        dims=("y", "x"),
        coords={"y": 1000.0 - 10 * np.arange(rows), "x": 5.0 + 10 * np.arange(cols)},
        attrs=attrs or {},
    )


def test_quality_mask_for_every_scl_class() -> None:
    classes = np.arange(12, dtype="uint8").reshape(3, 4)
    mask = quality_mask_from_scl(grid_array(classes))
    assert mask.dtype == np.uint8 and mask.name == "quality"
    assert {int(c): int(q) for c, q in zip(classes.ravel(), mask.values.ravel(), strict=True)} == (
        EXPECTED_QUALITY
    )
    xr.testing.assert_equal(mask.x, grid_array(classes).x)


def test_quality_mask_marks_non_classes_invalid() -> None:
    odd = np.array([[12, 255, 4]], dtype="uint8")
    assert quality_mask_from_scl(grid_array(odd)).values.tolist() == [[0, 0, 2]]
    as_float = np.array([[np.nan, 4.0, 4.5, 9.0, -1.0]])
    assert quality_mask_from_scl(grid_array(as_float)).values.tolist() == [[0, 2, 0, 1, 0]]
    wide = np.array([[-3, 300, 3]], dtype="int32")
    assert quality_mask_from_scl(grid_array(wide)).values.tolist() == [[0, 0, 1]]


@pytest.mark.parametrize(
    ("dn", "exact"),
    [
        (1, "-0.0999"),
        (1000, "0"),
        (1001, "0.0001"),
        (1500, "0.05"),
        (10000, "0.9"),
        (65535, "6.4535"),
    ],
)
def test_reflectance_is_exact_for_cdse_scaling(dn: int, exact: str) -> None:
    band = grid_array(np.array([[dn, 0]], dtype="uint16"), CDSE)
    out = to_reflectance(xr.Dataset({"B02": band}))["B02"]
    assert out.dtype == np.float32
    assert out.values[0, 0] == np.float32(Decimal(exact))
    assert np.isnan(out.values[0, 1])  # DN 0 is nodata
    assert not {"raster:scale", "raster:offset", "nodata"} & set(out.attrs)


def test_reflectance_of_a_stored_scene_leaves_scl_alone(tmp_path: Path) -> None:
    store = SceneStore(tmp_path, BandEncoding(chunk=256))
    dn = np.random.default_rng(0).integers(0, 12000, (300, 300), dtype="uint16")
    scl = np.random.default_rng(1).integers(0, 12, (300, 300), dtype="uint8")
    item = {"id": "s", "properties": {"proj:code": "EPSG:32636"}}
    store.write_bands(
        "s", item, {"B04": grid_array(dn, CDSE), "SCL": grid_array(scl, {"nodata": 0})}
    )
    ds = to_reflectance(store.open("s", ["B04", "SCL"]))
    assert ds["SCL"].dtype == np.uint8
    np.testing.assert_array_equal(ds["SCL"].values, scl)
    expected = np.where(dn == 0, np.nan, (dn.astype("float64") - 1000) * 1e-4).astype("float32")
    np.testing.assert_array_equal(ds["B04"].values, expected)
    assert "spatial_ref" in ds.coords
