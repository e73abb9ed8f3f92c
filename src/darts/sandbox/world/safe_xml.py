"""Small but real XML metadata files of an L2A product (the SAFE format's shape).

Only the fields a client may plausibly read are filled: product and granule ids,
sensing and processing times, processing baseline, the BOA quantification and offset,
the tile's geocoding per resolution and the mean sun angles.
"""

from __future__ import annotations

from datetime import datetime

from darts.sandbox.world.s2names import ProductNames
from darts.sandbox.world.spectra import BANDS

_HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def product_metadata(names: ProductNames, footprint_lonlat: list[tuple[float, float]]) -> bytes:
    offsets = "".join(
        f'<BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i, _ in enumerate(BANDS)
    )
    ring = " ".join(f"{lat:.6f} {lon:.6f}" for lon, lat in footprint_lonlat)
    text = (
        f"{_HEADER}<n1:Level-2A_User_Product xmlns:n1=\"https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd\">\n"
        "<n1:General_Info><Product_Info>\n"
        f"<PRODUCT_START_TIME>{_iso(names.acq.sensing)}</PRODUCT_START_TIME>\n"
        f"<PRODUCT_STOP_TIME>{_iso(names.granule_sensing)}</PRODUCT_STOP_TIME>\n"
        f"<PRODUCT_URI>{names.product_id}.SAFE</PRODUCT_URI>\n"
        "<PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL><PRODUCT_TYPE>S2MSI2A</PRODUCT_TYPE>\n"
        f"<PROCESSING_BASELINE>{names.baseline}</PROCESSING_BASELINE>\n"
        f"<GENERATION_TIME>{_iso(names.processed)}</GENERATION_TIME>\n"
        f"<Datatake datatakeIdentifier=\"{names.datatake_id}\"><SPACECRAFT_NAME>Sentinel-{names.mission[2:]}"
        f"</SPACECRAFT_NAME><SENSING_ORBIT_NUMBER>{names.acq.relative_orbit}</SENSING_ORBIT_NUMBER>"
        "<SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION></Datatake>\n"
        "</Product_Info><Product_Image_Characteristics>\n"
        "<QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit=\"none\">10000</BOA_QUANTIFICATION_VALUE>"
        "<AOT_QUANTIFICATION_VALUE unit=\"none\">1000.0</AOT_QUANTIFICATION_VALUE>"
        "<WVP_QUANTIFICATION_VALUE unit=\"cm\">1000.0</WVP_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>\n"
        f"<BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>\n"
        "</Product_Image_Characteristics></n1:General_Info>\n"
        f"<n1:Geometric_Info><Product_Footprint><Global_Footprint><EXT_POS_LIST>{ring}</EXT_POS_LIST>"
        "</Global_Footprint></Product_Footprint></n1:Geometric_Info>\n"
        "</n1:Level-2A_User_Product>\n"
    )
    return text.encode("utf-8")


def granule_metadata(
    names: ProductNames,
    epsg: int,
    origin: tuple[float, float],
    sizes: dict[int, tuple[int, int]],
    sun_zenith: float,
    sun_azimuth: float,
) -> bytes:
    size_xml = "".join(
        f'<Size resolution="{res}"><NROWS>{h}</NROWS><NCOLS>{w}</NCOLS></Size>'
        for res, (h, w) in sorted(sizes.items())
    )
    position_xml = "".join(
        f'<Geoposition resolution="{res}"><ULX>{origin[0]:.0f}</ULX><ULY>{origin[1]:.0f}</ULY>'
        f"<XDIM>{res}</XDIM><YDIM>-{res}</YDIM></Geoposition>"
        for res in sorted(sizes)
    )
    text = (
        f"{_HEADER}<n1:Level-2A_Tile_ID xmlns:n1=\"https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-2A_Tile_Metadata.xsd\">\n"
        "<n1:General_Info>"
        f"<TILE_ID>S2{names.mission[2]}_OPER_MSI_L2A_TL_{names.datastrip[3:]}_A{names.absolute_orbit:06d}_T{names.tile}_N{names.baseline}</TILE_ID>"
        f"<DATASTRIP_ID>{names.datastrip_id}</DATASTRIP_ID>"
        f"<SENSING_TIME>{_iso(names.granule_sensing)}</SENSING_TIME>"
        "</n1:General_Info>\n<n1:Geometric_Info><Tile_Geocoding>"
        f"<HORIZONTAL_CS_NAME>WGS84 / UTM zone {epsg % 100}N</HORIZONTAL_CS_NAME>"
        f"<HORIZONTAL_CS_CODE>EPSG:{epsg}</HORIZONTAL_CS_CODE>{size_xml}{position_xml}"
        "</Tile_Geocoding>\n<Tile_Angles><Mean_Sun_Angle>"
        f'<ZENITH_ANGLE unit="deg">{sun_zenith:.6f}</ZENITH_ANGLE>'
        f'<AZIMUTH_ANGLE unit="deg">{sun_azimuth:.6f}</AZIMUTH_ANGLE>'
        "</Mean_Sun_Angle></Tile_Angles></n1:Geometric_Info>\n</n1:Level-2A_Tile_ID>\n"
    )
    return text.encode("utf-8")


def datastrip_metadata(names: ProductNames) -> bytes:
    text = (
        f"{_HEADER}<n1:Level-2A_DataStrip_ID xmlns:n1=\"https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-2A_Datastrip_Metadata.xsd\">\n"
        f"<n1:General_Info><Datastrip_Time_Info><DATASTRIP_SENSING_START>{_iso(names.granule_sensing)}"
        "</DATASTRIP_SENSING_START></Datastrip_Time_Info>"
        f"<Processing_Info><PROCESSING_BASELINE>{names.baseline}</PROCESSING_BASELINE>"
        f"<UTC_DATE_TIME>{_iso(names.processed)}</UTC_DATE_TIME></Processing_Info>"
        f"<DATASTRIP_ID>{names.datastrip_id}</DATASTRIP_ID></n1:General_Info>\n"
        "</n1:Level-2A_DataStrip_ID>\n"
    )
    return text.encode("utf-8")


def inspire_metadata(names: ProductNames, bbox: tuple[float, float, float, float]) -> bytes:
    west, south, east, north = bbox
    text = (
        f"{_HEADER}<gmd:MD_Metadata xmlns:gmd=\"http://www.isotc211.org/2005/gmd\" "
        "xmlns:gco=\"http://www.isotc211.org/2005/gco\">\n"
        f"<gmd:fileIdentifier><gco:CharacterString>{names.product_id}</gco:CharacterString></gmd:fileIdentifier>\n"
        "<gmd:identificationInfo><gmd:extent><gmd:EX_GeographicBoundingBox>"
        f"<gmd:westBoundLongitude><gco:Decimal>{west:.6f}</gco:Decimal></gmd:westBoundLongitude>"
        f"<gmd:eastBoundLongitude><gco:Decimal>{east:.6f}</gco:Decimal></gmd:eastBoundLongitude>"
        f"<gmd:southBoundLatitude><gco:Decimal>{south:.6f}</gco:Decimal></gmd:southBoundLatitude>"
        f"<gmd:northBoundLatitude><gco:Decimal>{north:.6f}</gco:Decimal></gmd:northBoundLatitude>"
        "</gmd:EX_GeographicBoundingBox></gmd:extent></gmd:identificationInfo>\n</gmd:MD_Metadata>\n"
    )
    return text.encode("utf-8")


def manifest(names: ProductNames, files: list[tuple[str, str]]) -> bytes:
    """``manifest.safe``: the product's data objects with their checksums."""
    objects = "".join(
        f'<dataObject ID="{i}"><byteStream><fileLocation locatorType="URL" href="./{path}"/>'
        f'<checksum checksumName="SHA3-256">{checksum[4:]}</checksum></byteStream></dataObject>\n'
        for i, (path, checksum) in enumerate(files)
    )
    text = (
        f"{_HEADER}<xfdu:XFDU xmlns:xfdu=\"urn:ccsds:schema:xfdu:1\" version=\"esa/safe/sentinel/1.1/sentinel-2/msi/archive_l2a_user_product\">\n"
        f"<metadataSection><metadataObject ID=\"product\"><metadataWrap><xmlData>{names.product_id}"
        f"</xmlData></metadataWrap></metadataObject></metadataSection>\n<dataObjectSection>\n{objects}"
        "</dataObjectSection>\n</xfdu:XFDU>\n"
    )
    return text.encode("utf-8")
