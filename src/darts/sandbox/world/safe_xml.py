"""Small but real XML metadata files of an L2A product (the SAFE format's shape).

Only the fields a client may plausibly read are filled: product and granule ids,
sensing and processing times, processing baseline, the BOA quantification and offset,
the tile's geocoding per resolution and the mean sun angles. Built with ElementTree,
whose output is a pure function of the tree (attribute order as inserted).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

from darts.sandbox.world.s2names import ProductNames
from darts.sandbox.world.spectra import BANDS

_PSD = "https://psd-14.sentinel2.eo.esa.int/PSD/"
_DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>\n"
Child = ET.Element


def _el(tag: str, text: object = None, children: list[Child] | None = None, **attrib: str) -> Child:
    element = ET.Element(tag, attrib)
    if text is not None:
        element.text = str(text)
    element.extend(children or [])
    return element


def _document(root: Child) -> bytes:
    ET.indent(root, space=" ")
    # Serialise to str and encode once: ET's byte encoder is ~3x slower.
    return (_DECLARATION + ET.tostring(root, encoding="unicode") + "\n").encode("utf-8")


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def product_metadata(names: ProductNames, footprint_lonlat: list[tuple[float, float]]) -> bytes:
    ring = " ".join(f"{lat:.6f} {lon:.6f}" for lon, lat in footprint_lonlat)
    datatake = _el(
        "Datatake",
        children=[
            _el("SPACECRAFT_NAME", f"Sentinel-{names.mission[2:]}"),
            _el("SENSING_ORBIT_NUMBER", names.acq.relative_orbit),
            _el("SENSING_ORBIT_DIRECTION", "DESCENDING"),
        ],
        datatakeIdentifier=names.datatake_id,
    )
    product_info = _el(
        "Product_Info",
        children=[
            _el("PRODUCT_START_TIME", _iso(names.acq.sensing)),
            _el("PRODUCT_STOP_TIME", _iso(names.granule_sensing)),
            _el("PRODUCT_URI", f"{names.product_id}.SAFE"),
            _el("PROCESSING_LEVEL", "Level-2A"),
            _el("PRODUCT_TYPE", "S2MSI2A"),
            _el("PROCESSING_BASELINE", names.baseline),
            _el("GENERATION_TIME", _iso(names.processed)),
            datatake,
        ],
    )
    quantification = _el(
        "QUANTIFICATION_VALUES_LIST",
        children=[
            _el("BOA_QUANTIFICATION_VALUE", "10000", unit="none"),
            _el("AOT_QUANTIFICATION_VALUE", "1000.0", unit="none"),
            _el("WVP_QUANTIFICATION_VALUE", "1000.0", unit="cm"),
        ],
    )
    offsets = _el(
        "BOA_ADD_OFFSET_VALUES_LIST",
        children=[_el("BOA_ADD_OFFSET", "-1000", band_id=str(i)) for i, _ in enumerate(BANDS)],
    )
    root = _el(
        "n1:Level-2A_User_Product",
        children=[
            _el(
                "n1:General_Info",
                children=[
                    product_info,
                    _el("Product_Image_Characteristics", children=[quantification, offsets]),
                ],
            ),
            _el(
                "n1:Geometric_Info",
                children=[
                    _el(
                        "Product_Footprint",
                        children=[_el("Global_Footprint", children=[_el("EXT_POS_LIST", ring)])],
                    )
                ],
            ),
        ],
        **{"xmlns:n1": _PSD + "User_Product_Level-2A.xsd"},
    )
    return _document(root)


def granule_metadata(
    names: ProductNames,
    epsg: int,
    origin: tuple[float, float],
    sizes: dict[int, tuple[int, int]],
    sun_zenith: float,
    sun_azimuth: float,
) -> bytes:
    geocoding = [
        _el("HORIZONTAL_CS_NAME", f"WGS84 / UTM zone {epsg % 100}N"),
        _el("HORIZONTAL_CS_CODE", f"EPSG:{epsg}"),
    ]
    for res, (h, w) in sorted(sizes.items()):
        geocoding.append(
            _el("Size", children=[_el("NROWS", h), _el("NCOLS", w)], resolution=str(res))
        )
    for res in sorted(sizes):
        geocoding.append(
            _el(
                "Geoposition",
                children=[
                    _el("ULX", f"{origin[0]:.0f}"),
                    _el("ULY", f"{origin[1]:.0f}"),
                    _el("XDIM", res),
                    _el("YDIM", -res),
                ],
                resolution=str(res),
            )
        )
    sun = _el(
        "Mean_Sun_Angle",
        children=[
            _el("ZENITH_ANGLE", f"{sun_zenith:.6f}", unit="deg"),
            _el("AZIMUTH_ANGLE", f"{sun_azimuth:.6f}", unit="deg"),
        ],
    )
    tile_id = (
        f"{names.mission}_OPER_MSI_L2A_TL_{names.datastrip[3:]}"
        f"_A{names.absolute_orbit:06d}_T{names.tile}_N{names.baseline}"
    )
    root = _el(
        "n1:Level-2A_Tile_ID",
        children=[
            _el(
                "n1:General_Info",
                children=[
                    _el("TILE_ID", tile_id),
                    _el("DATASTRIP_ID", names.datastrip_id),
                    _el("SENSING_TIME", _iso(names.granule_sensing)),
                ],
            ),
            _el(
                "n1:Geometric_Info",
                children=[
                    _el("Tile_Geocoding", children=geocoding),
                    _el("Tile_Angles", children=[sun]),
                ],
            ),
        ],
        **{"xmlns:n1": _PSD + "S2_PDI_Level-2A_Tile_Metadata.xsd"},
    )
    return _document(root)


def datastrip_metadata(names: ProductNames) -> bytes:
    root = _el(
        "n1:Level-2A_DataStrip_ID",
        children=[
            _el(
                "n1:General_Info",
                children=[
                    _el(
                        "Datastrip_Time_Info",
                        children=[_el("DATASTRIP_SENSING_START", _iso(names.granule_sensing))],
                    ),
                    _el(
                        "Processing_Info",
                        children=[
                            _el("PROCESSING_BASELINE", names.baseline),
                            _el("UTC_DATE_TIME", _iso(names.processed)),
                        ],
                    ),
                    _el("DATASTRIP_ID", names.datastrip_id),
                ],
            )
        ],
        **{"xmlns:n1": _PSD + "S2_PDI_Level-2A_Datastrip_Metadata.xsd"},
    )
    return _document(root)


def inspire_metadata(names: ProductNames, bbox: tuple[float, float, float, float]) -> bytes:
    west, south, east, north = bbox

    def decimal(tag: str, value: float) -> Child:
        return _el(tag, children=[_el("gco:Decimal", f"{value:.6f}")])

    root = _el(
        "gmd:MD_Metadata",
        children=[
            _el("gmd:fileIdentifier", children=[_el("gco:CharacterString", names.product_id)]),
            _el(
                "gmd:identificationInfo",
                children=[
                    _el(
                        "gmd:extent",
                        children=[
                            _el(
                                "gmd:EX_GeographicBoundingBox",
                                children=[
                                    decimal("gmd:westBoundLongitude", west),
                                    decimal("gmd:eastBoundLongitude", east),
                                    decimal("gmd:southBoundLatitude", south),
                                    decimal("gmd:northBoundLatitude", north),
                                ],
                            )
                        ],
                    )
                ],
            ),
        ],
        **{
            "xmlns:gmd": "http://www.isotc211.org/2005/gmd",
            "xmlns:gco": "http://www.isotc211.org/2005/gco",
        },
    )
    return _document(root)


def manifest(names: ProductNames, files: list[tuple[str, str]]) -> bytes:
    """``manifest.safe``: the product's data objects with their SHA3-256 checksums."""
    objects = [
        _el(
            "dataObject",
            children=[
                _el(
                    "byteStream",
                    children=[
                        _el("fileLocation", locatorType="URL", href=f"./{path}"),
                        _el("checksum", checksum[4:], checksumName="SHA3-256"),
                    ],
                )
            ],
            ID=str(i),
        )
        for i, (path, checksum) in enumerate(files)
    ]
    root = _el(
        "xfdu:XFDU",
        children=[
            _el(
                "metadataSection",
                children=[_el("metadataObject", names.product_id, ID="product")],
            ),
            _el("dataObjectSection", children=objects),
        ],
        **{
            "xmlns:xfdu": "urn:ccsds:schema:xfdu:1",
            "version": "esa/safe/sentinel/1.1/sentinel-2/msi/archive_l2a_user_product",
        },
    )
    return _document(root)
