"""Raster and checksum encoders whose output bytes depend only on their input.

GDAL writes no timestamps into JPEG2000, GeoTIFF/COG or JPEG files unless asked, and
every creation option is fixed here, so equal arrays give equal bytes (the world's
determinism tests check it). Rasters are encoded in memory (``MemoryFile``) because
the bytes are needed anyway for ``file:size`` and ``file:checksum``.

Sparse COGs (the ArcticDEM tiles, full size but mostly empty) are written from a VRT
that places the data window in the tile and lists precomputed overviews, so GDAL
never computes overviews over the empty part of a 25,000² raster.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.shutil import copy as gdal_copy

# CODEC=JP2 (and a .jp2 name) matter: for other names GDAL writes a bare J2K codestream
# without the GeoJP2/GMLJP2 boxes, i.e. without georeferencing.
_JP2_OPTIONS = {"CODEC": "JP2", "QUALITY": "100", "REVERSIBLE": "YES", "YCC": "NO"}
_EXTENSIONS = {"JP2OpenJPEG": ".jp2", "COG": ".tif", "GTiff": ".tif", "JPEG": ".jpg"}
_COG_OPTIONS = {
    "COMPRESS": "DEFLATE",
    "LEVEL": "1",  # ~35 % less CPU than the default 6 for ~1 % more bytes
    "BLOCKSIZE": "512",
    "OVERVIEW_RESAMPLING": "AVERAGE",
}


def multihash_sha3(data: bytes) -> str:
    """``file:checksum`` value: multihash of SHA3-256 (code 0x16, length 0x20)."""
    return "1620" + hashlib.sha3_256(data).hexdigest()


def _profile(array: np.ndarray, epsg: int | None, transform: Affine | None, nodata) -> dict:
    count = 1 if array.ndim == 2 else array.shape[0]
    profile = {
        "width": array.shape[-1],
        "height": array.shape[-2],
        "count": count,
        "dtype": array.dtype.name,
    }
    if epsg is not None:
        profile["crs"] = f"EPSG:{epsg}"
    if transform is not None:
        profile["transform"] = transform
    if nodata is not None:
        profile["nodata"] = nodata
    return profile


def _encode(
    array: np.ndarray,
    driver: str,
    options: dict,
    descriptions: tuple[str, ...] = (),
    **georef,
) -> bytes:
    profile = _profile(array, georef.get("epsg"), georef.get("transform"), georef.get("nodata"))
    with MemoryFile(ext=_EXTENSIONS[driver]) as memfile:
        with memfile.open(driver=driver, **profile, **options) as dataset:
            if array.ndim == 2:
                dataset.write(array, 1)
            else:
                dataset.write(array)
            for index, description in enumerate(descriptions, start=1):
                dataset.set_band_description(index, description)
        return memfile.read()


def jp2_bytes(
    array: np.ndarray, epsg: int, transform: Affine, nodata: int | None = 0, threads: int = 1
) -> bytes:
    """Lossless, georeferenced JPEG2000 (OpenJPEG), like the L2A band files."""
    options = dict(_JP2_OPTIONS)
    if threads > 1:
        options["NUM_THREADS"] = str(threads)
    return _encode(array, "JP2OpenJPEG", options, epsg=epsg, transform=transform, nodata=nodata)


def cog_bytes(
    array: np.ndarray,
    epsg: int,
    transform: Affine,
    nodata: float | int | None,
    descriptions: tuple[str, ...] = (),
) -> bytes:
    """A Cloud Optimized GeoTIFF (DEFLATE, 512² tiles, overviews when large enough)."""
    options = dict(_COG_OPTIONS)
    if array.dtype.kind == "f":
        options["PREDICTOR"] = "YES"
    return _encode(
        array, "COG", options, descriptions, epsg=epsg, transform=transform, nodata=nodata
    )


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    """A plain JPEG quicklook (no georeferencing, no side-car)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return _encode(rgb, "JPEG", {"QUALITY": "85"})


@dataclass
class _Level:
    """Sums and counts of valid pixels of one pyramid level, placed at (row, col)."""

    sums: np.ndarray
    counts: np.ndarray
    row: int
    col: int

    def halve(self) -> _Level:
        """The next level: 2×2 sums, aligned on the full grid's even rows/columns."""
        top, left = self.row % 2, self.col % 2
        h = -(-(top + self.sums.shape[0]) // 2) * 2
        w = -(-(left + self.sums.shape[1]) // 2) * 2
        sums = np.zeros((h, w))
        counts = np.zeros((h, w), dtype=np.int32)
        sums[top : top + self.sums.shape[0], left : left + self.sums.shape[1]] = self.sums
        counts[top : top + self.sums.shape[0], left : left + self.sums.shape[1]] = self.counts
        shape = (h // 2, 2, w // 2, 2)
        return _Level(
            sums.reshape(shape).sum(axis=(1, 3)),
            counts.reshape(shape).sum(axis=(1, 3)),
            self.row // 2,
            self.col // 2,
        )

    def mean(self, dtype: np.dtype, nodata: float) -> np.ndarray:
        out = np.full(self.sums.shape, nodata, dtype=np.float64)
        np.divide(self.sums, self.counts, out=out, where=self.counts > 0)
        if np.dtype(dtype).kind in "iu":
            out = np.where(self.counts > 0, np.rint(out), nodata)
        return out.astype(dtype)


def _vrt(
    size: tuple[int, int],
    dtype: str,
    nodata: float,
    source: str,
    place: tuple[int, int, int, int],
    overviews: list[str],
    georef: str,
) -> str:
    gdal_type = {"float32": "Float32", "uint8": "Byte", "uint16": "UInt16", "int16": "Int16"}[dtype]
    row, col, h, w = place
    overview_xml = "".join(
        f'<Overview><SourceFilename relativeToVRT="0">{o}</SourceFilename>'
        "<SourceBand>1</SourceBand></Overview>"
        for o in overviews
    )
    return (
        f'<VRTDataset rasterXSize="{size[1]}" rasterYSize="{size[0]}">{georef}'
        f'<VRTRasterBand dataType="{gdal_type}" band="1"><NoDataValue>{nodata}</NoDataValue>'
        f'<SimpleSource><SourceFilename relativeToVRT="0">{source}</SourceFilename>'
        f'<SourceBand>1</SourceBand><SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
        f'<DstRect xOff="{col}" yOff="{row}" xSize="{w}" ySize="{h}"/></SimpleSource>'
        f"{overview_xml}</VRTRasterBand></VRTDataset>"
    )


def _georef_xml(epsg: int, transform: Affine) -> str:
    gt = ", ".join(repr(float(v)) for v in transform.to_gdal())
    return f"<SRS>EPSG:{epsg}</SRS><GeoTransform>{gt}</GeoTransform>"


def _tif_in_memory(array: np.ndarray, epsg: int, transform: Affine, nodata: float) -> MemoryFile:
    memfile = MemoryFile(ext=".tif")
    with memfile.open(driver="GTiff", **_profile(array, epsg, transform, nodata)) as ds:
        ds.write(array, 1)
    return memfile


def sparse_cog_bytes(
    data: np.ndarray,
    row: int,
    col: int,
    full_shape: tuple[int, int],
    epsg: int,
    transform: Affine,
    nodata: float,
) -> bytes:
    """A full-size COG holding ``data`` at (row, col); empty 512² tiles are not stored.

    Overviews (average of valid pixels) are computed from ``data`` alone and handed to
    GDAL through the VRT, down to the first level under 256 pixels, as GDAL would.
    """
    keep: list[MemoryFile] = []  # in-memory files must stay open until GDAL is done
    try:
        overviews: list[str] = []
        h, w = full_shape
        factor = 2
        valid = data != nodata
        level = _Level(np.where(valid, data, 0).astype(np.float64), valid, row, col)
        while max(-(-h // factor), -(-w // factor)) >= 256:
            level = level.halve()
            ov, r0, c0 = level.mean(data.dtype, nodata), level.row, level.col
            ov_transform = transform @ Affine.scale(factor)
            source = _tif_in_memory(ov, epsg, ov_transform @ Affine.translation(c0, r0), nodata)
            keep.append(source)
            ov_size = (-(-h // factor), -(-w // factor))
            xml = _vrt(
                ov_size,
                data.dtype.name,
                nodata,
                source.name,
                (r0, c0, *ov.shape),
                [],
                _georef_xml(epsg, ov_transform),
            )
            ov_vrt = MemoryFile(xml.encode(), ext=".vrt")
            keep.append(ov_vrt)
            overviews.append(ov_vrt.name)
            factor *= 2
        base = _tif_in_memory(data, epsg, transform @ Affine.translation(col, row), nodata)
        keep.append(base)
        xml = _vrt(
            full_shape,
            data.dtype.name,
            nodata,
            base.name,
            (row, col, *data.shape),
            overviews,
            _georef_xml(epsg, transform),
        )
        base_vrt = MemoryFile(xml.encode(), ext=".vrt")
        keep.append(base_vrt)
        options = dict(_COG_OPTIONS, SPARSE_OK="TRUE")
        if data.dtype.kind == "f":
            options["PREDICTOR"] = "YES"
        with MemoryFile(ext=".tif") as out:
            gdal_copy(base_vrt.name, out.name, driver="COG", **options)
            return out.read()
    finally:
        for memfile in reversed(keep):
            memfile.close()
