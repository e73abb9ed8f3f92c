"""What the Earth Engine stand-in computes: TCVIS mosaics from the world's COGs.

Only the expressions DARTS sends are understood, ``ImageCollection.load`` (by asset
id) and ``ImageCollection.mosaic`` (and ``Image.load``, recognised here and rendered
by ``ee_s2_pixels`` for Sentinel-2), in Earth Engine's serialized form (a ``values``
table of nodes referenced by ``result``); anything else is refused with the error a
client would get for an unsupported request. Pixels are rendered on the requested
grid: copied when it is the COGs' own grid (shifted by whole pixels), else resampled
with nearest neighbour; outside the world's TCVIS box they are 0, as Earth Engine's
NPY answers are for masked pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# The real collections (sources.md §4) and the world's period folders they map to.
TCVIS_ASSETS: dict[str, str] = {
    "users/ingmarnitze/TCTrend_SR_2000-2019_TCVIS": "2000-2019",
    "users/ingmarnitze/TCTrend_SR_2001-2020_TCVIS": "2001-2020",
    "users/ingmarnitze/TCTrend_SR_2003-2022_TCVIS": "2003-2022",
    "projects/ee-ingmarnitze/assets/TCTrend_SR_2005-2024_TCVIS": "2005-2024",
}
# Earth Engine band names, in the band order of the world's COGs.
TCVIS_EE_BANDS = ("TCB_slope", "TCG_slope", "TCW_slope")
# Earth Engine refuses computePixels answers above 48 MiB and edges above 32768 px.
MAX_RESPONSE_BYTES = 48 * 1024 * 1024
MAX_EDGE_PX = 32768
_ALIGN_TOLERANCE_PX = 1e-3


class EeRequestError(Exception):
    """A request Earth Engine would refuse: HTTP status, gRPC status name, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.status, "message": self.message, "status": self.code}}


def invalid(message: str) -> EeRequestError:
    return EeRequestError(400, "INVALID_ARGUMENT", message)


@dataclass(frozen=True)
class PixelGrid:
    width: int
    height: int
    transform: tuple[float, float, float, float, float, float]  # affine a, b, c, d, e, f
    crs: str

    @classmethod
    def from_request(cls, grid: Any) -> PixelGrid:
        if not isinstance(grid, dict):
            raise invalid("grid is required for computePixels")
        try:
            dims = grid["dimensions"]
            width, height = int(dims["width"]), int(dims["height"])
            affine = grid["affineTransform"]
            transform = tuple(
                float(affine.get(k, 0.0))
                for k in ("scaleX", "shearX", "translateX", "shearY", "scaleY", "translateY")
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise invalid(
                "grid needs dimensions {width, height} and affineTransform "
                "{scaleX, shearX, translateX, shearY, scaleY, translateY}"
            ) from None
        crs = grid.get("crsCode")
        if not isinstance(crs, str) or not crs:
            raise invalid("grid.crsCode is required (e.g. EPSG:4326)")
        if not (0 < width <= MAX_EDGE_PX and 0 < height <= MAX_EDGE_PX):
            raise invalid(f"Grid dimensions must be within 1..{MAX_EDGE_PX}, got {width}x{height}")
        return cls(width, height, transform, crs)  # type: ignore[arg-type]


def loaded_asset(expression: Any) -> str:
    """The asset id of ``mosaic(load(id))`` or ``load(id)``, evaluated from ``result``."""
    if not isinstance(expression, dict) or "result" not in expression:
        raise invalid("expression must be a serialized Earth Engine expression")
    values = expression.get("values") or {}
    node = _resolve(values, {"valueReference": expression["result"]})
    return _collection_asset(values, node)


def loaded_image(expression: Any) -> str | None:
    """The asset id of an ``Image.load(id)`` expression; None for any other expression
    (which :func:`loaded_asset` then judges)."""
    if not isinstance(expression, dict) or "result" not in expression:
        return None
    values = expression.get("values") or {}
    if not isinstance(values, dict):
        return None
    node = _resolve(values, {"valueReference": expression["result"]})
    call = node.get("functionInvocationValue") if isinstance(node, dict) else None
    if not isinstance(call, dict) or call.get("functionName") != "Image.load":
        return None
    asset = _resolve(values, (call.get("arguments") or {}).get("id"))
    if not isinstance(asset, dict) or not isinstance(asset.get("constantValue"), str):
        raise invalid("Image.load needs a constant id")
    return asset["constantValue"]


def _resolve(values: dict[str, Any], node: Any, depth: int = 0) -> Any:
    # References can chain; a cycle or absurd depth is a malformed request.
    while isinstance(node, dict) and "valueReference" in node:
        if depth > 50:
            raise invalid("expression references form a cycle")
        node = values.get(str(node["valueReference"]))
        if node is None:
            raise invalid("expression refers to a value that is not defined")
        depth += 1
    return node


def _collection_asset(values: dict[str, Any], node: Any) -> str:
    call = node.get("functionInvocationValue") if isinstance(node, dict) else None
    if not isinstance(call, dict):
        raise invalid("computePixels needs an image expression")
    name = call.get("functionName")
    arguments = call.get("arguments") or {}
    if name == "ImageCollection.mosaic":
        return _collection_asset(values, _resolve(values, arguments.get("collection")))
    if name == "ImageCollection.load":
        asset = _resolve(values, arguments.get("id"))
        if not isinstance(asset, dict) or not isinstance(asset.get("constantValue"), str):
            raise invalid("ImageCollection.load needs a constant id")
        return asset["constantValue"]
    raise invalid(f"the sandbox Earth Engine does not implement {name!r}")


def render(tcvis_data: Path, asset: str, grid: PixelGrid, band_ids: list[str]) -> np.ndarray:
    """The mosaic of ``asset`` on ``grid`` as a structured array (height, width)."""
    period = TCVIS_ASSETS.get(asset)
    if period is None:
        raise EeRequestError(
            404,
            "NOT_FOUND",
            f"ImageCollection.load: ImageCollection asset '{asset}' not found (does not "
            "exist or caller does not have access).",
        )
    unknown = [band for band in band_ids if band not in TCVIS_EE_BANDS]
    if unknown:
        raise invalid(f"Image.select: Pattern '{unknown[0]}' did not match any bands.")
    if grid.width * grid.height * len(band_ids) > MAX_RESPONSE_BYTES:
        raise invalid(
            f"Total request size ({grid.width * grid.height * len(band_ids)} bytes) must be "
            f"less than or equal to {MAX_RESPONSE_BYTES} bytes."
        )
    indexes = [TCVIS_EE_BANDS.index(band) + 1 for band in band_ids]
    planes = np.zeros((len(indexes), grid.height, grid.width), dtype=np.uint8)
    for path in sorted((tcvis_data / period).glob("*.tif")):
        _draw(path, indexes, grid, planes)
    out = np.zeros((grid.height, grid.width), dtype=[(band, "u1") for band in band_ids])
    for i, band in enumerate(band_ids):
        out[band] = planes[i]
    return out


def _draw(path: Path, indexes: list[int], grid: PixelGrid, planes: np.ndarray) -> None:
    """Draw one COG over ``planes`` (later images on top, like mosaic())."""
    import rasterio
    from rasterio.crs import CRS

    with rasterio.open(path) as dataset:
        layer = np.zeros_like(planes)
        try:
            same_crs = CRS.from_user_input(grid.crs) == dataset.crs
        except rasterio.errors.CRSError:
            raise invalid(f"Unknown crsCode {grid.crs!r}") from None
        offset = _pixel_offset(dataset.transform, grid.transform) if same_crs else None
        if offset is not None:
            _copy_aligned(dataset, indexes, offset, layer)
        else:
            _warp(dataset, indexes, grid, layer)
    np.copyto(planes, layer, where=layer != 0)


def _pixel_offset(
    source: Any, target: tuple[float, float, float, float, float, float]
) -> tuple[int, int] | None:
    """(row, col) of the grid's origin in the dataset's pixels, when the grid is the
    dataset's own pixel grid shifted by whole pixels; else None."""
    a, b, c, d, e, f = target
    if b != 0 or d != 0 or source.b != 0 or source.d != 0:
        return None
    if not (math.isclose(a, source.a, rel_tol=1e-9) and math.isclose(e, source.e, rel_tol=1e-9)):
        return None
    col = (c - source.c) / source.a
    row = (f - source.f) / source.e
    if abs(col - round(col)) > _ALIGN_TOLERANCE_PX or abs(row - round(row)) > _ALIGN_TOLERANCE_PX:
        return None
    return round(row), round(col)


def _copy_aligned(
    dataset: Any, indexes: list[int], offset: tuple[int, int], layer: np.ndarray
) -> None:
    from rasterio.windows import Window

    row0, col0 = offset
    height, width = layer.shape[1:]
    r0, r1 = max(row0, 0), min(row0 + height, dataset.height)
    c0, c1 = max(col0, 0), min(col0 + width, dataset.width)
    if r0 >= r1 or c0 >= c1:
        return
    data = dataset.read(indexes, window=Window(c0, r0, c1 - c0, r1 - r0))
    layer[:, r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = data


def _warp(dataset: Any, indexes: list[int], grid: PixelGrid, layer: np.ndarray) -> None:
    from affine import Affine
    from rasterio.warp import Resampling, reproject

    for i, index in enumerate(indexes):
        reproject(
            source=dataset.read(index),
            destination=layer[i],
            src_transform=dataset.transform,
            src_crs=dataset.crs,
            dst_transform=Affine(*grid.transform),
            dst_crs=grid.crs,
            resampling=Resampling.nearest,
        )
