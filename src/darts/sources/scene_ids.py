"""Scene and tile ids: parsing, validation, and the scene-id file prep-data writes.

CDSE names a Sentinel-2 L2A scene by its SAFE product name (without ``.SAFE``):
``S2B_MSIL2A_20230701T194909_N0509_R085_T11XNA_20230701T222815``. Earth Engine uses a
shorter ``system:index`` (``20230701T194909_20230701T195350_T11XNA``) that CDSE cannot
search for, so each source says which form it takes and rejects the other with a
message that names both (the reference accepted either and failed later, obscurely).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from darts.errors import ConfigError
from darts.store.atomic import atomic_write_text

SOURCES = ("cdse", "gee", "cdse-mosaic")

# S2D is planned; accepting its letter now avoids a release that rejects new scenes.
_CDSE_RE = re.compile(
    r"^(?P<mission>S2[A-D])_MSIL2A_(?P<sensing>\d{8}T\d{6})_(?P<baseline>N\d{4})"
    r"_R(?P<orbit>\d{3})_T(?P<tile>\d{2}[A-Z]{3})_(?P<discriminator>\d{8}T\d{6})$"
)
_GEE_RE = re.compile(
    r"^(?P<sensing>\d{8}T\d{6})_(?P<granule>\d{8}T\d{6})_T(?P<tile>\d{2}[A-Z]{3})$"
)
_MOSAIC_RE = re.compile(
    r"^Sentinel-2_mosaic_(?P<year>\d{4})_Q(?P<quarter>[1-4])_(?P<tile>\d{2}[A-Z]{3})_0_0$"
)
# A product of another level or instrument (L1C, S1...) gets a more helpful message.
_OTHER_PRODUCT_RE = re.compile(r"^S\d[A-D]_[A-Z0-9]{3,}_\d{8}T\d{6}_")

CDSE_EXAMPLE = "S2B_MSIL2A_20230701T194909_N0509_R085_T11XNA_20230701T222815"
GEE_EXAMPLE = "20230701T194909_20230701T195350_T11XNA"
CDSE_FORM = (
    f"the CDSE product id S2x_MSIL2A_<sensing>_Nxxxx_Rxxx_Txxxxx_<time>, e.g. {CDSE_EXAMPLE}"
)
GEE_FORM = f"the Earth Engine id <sensing>_<granule time>_Txxxxx, e.g. {GEE_EXAMPLE}"
MOSAIC_EXAMPLE = "Sentinel-2_mosaic_2024_Q3_08WNB_0_0"
MOSAIC_FORM = (
    f"the quarterly mosaic id Sentinel-2_mosaic_<year>_Q<quarter>_<tile>_0_0, e.g. {MOSAIC_EXAMPLE}"
)
_FORMS = {"cdse": CDSE_FORM, "gee": GEE_FORM, "cdse-mosaic": MOSAIC_FORM}


@dataclass(frozen=True)
class SceneIdParts:
    """The fields of a CDSE Sentinel-2 L2A product id."""

    mission: str  # S2A, S2B, S2C
    # Datatake sensing start, UTC; None when the id's digits name no real moment (the
    # id is still well-formed: only the catalogue can say it names no product).
    sensing_time: datetime | None
    baseline: str  # processing baseline as in the id, e.g. N0509
    relative_orbit: int
    tile: str  # MGRS tile without the T, e.g. 11XNA
    discriminator: str  # product discriminator (a generation time), e.g. 20230701T222815

    @property
    def processing_version(self) -> str:
        """The baseline as STAC's ``processing:version`` writes it (N0509 → 05.09)."""
        digits = self.baseline[1:]
        return f"{digits[:2]}.{digits[2:]}"


def normalize_scene_id(text: str) -> str:
    """Trim whitespace and a ``.SAFE`` suffix (ids are often copied from folder names)."""
    return text.strip().removesuffix("/").removesuffix(".SAFE")


def parse_scene_id(scene_id: str) -> SceneIdParts:
    """Split a CDSE product id; `ConfigError` with the expected form if it is not one."""
    text = normalize_scene_id(scene_id)
    problem = scene_id_problem(text, "cdse")
    if problem:
        raise ConfigError(f"scene id {scene_id!r} {problem}")
    match = _CDSE_RE.match(text)
    assert match is not None  # scene_id_problem checked it
    return SceneIdParts(
        mission=match["mission"],
        sensing_time=_timestamp(match["sensing"]),
        baseline=match["baseline"],
        relative_orbit=int(match["orbit"]),
        tile=match["tile"],
        discriminator=match["discriminator"],
    )


def scene_id_problem(scene_id: str, source: str = "cdse") -> str | None:
    """Why ``scene_id`` is not an id ``source`` accepts, or None when it is fine."""
    reason = _reason(scene_id, source)
    return f"{reason}; {_needs(source)}" if reason else None


def validate_scene_ids(
    scene_ids: Iterable[str], source: str = "cdse", *, option: str = "--scene-ids"
) -> tuple[str, ...]:
    """Normalised, de-duplicated ids (first occurrence kept); every invalid one in one error."""
    ids: list[str] = []
    problems: list[str] = []
    for raw in scene_ids:
        if not isinstance(raw, str):
            problems.append(f"{raw!r} is not a string")
            continue
        reason = _reason(raw, source)
        if reason:
            problems.append(f"{raw.strip()!r} {reason}")
        else:
            ids.append(normalize_scene_id(raw))
    if problems:
        raise ConfigError(_invalid_ids_message(option, source, problems))
    if not ids:
        raise ConfigError(f"{option}: no scene ids given")
    return tuple(dict.fromkeys(ids))


def read_scene_id_file(
    path: Path | str, *, source: str = "cdse", option: str = "--scene-id-file"
) -> tuple[str, ...]:
    """Scene ids from a JSON array or a text file with one id per line.

    In the line form, blank lines and ``#`` comments (whole-line or trailing) are
    ignored. Every invalid id is reported at once with its line or position.
    """
    _check_source(source)
    path = Path(path)
    if not path.exists():
        # The same words online and offline: the file is either the user's own list or
        # the one prep-data saved, and the message says how to get the latter.
        raise ConfigError(
            f"{option}: {path} does not exist; give an existing id file, or write one "
            "with `darts inference prep-data sentinel2 --tile-ids ... "
            f"--prep-data-scene-id-file {path} --optical --aux` (online)"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{option}: cannot read {path}: {err}") from None

    # Decided by content, not name: ids never start with a bracket, and a JSON object
    # then gets the JSON error rather than "not a scene id".
    is_json = text.lstrip()[:1] in ("[", "{")
    entries = _json_entries(path, text, option) if is_json else _line_entries(text)
    problems: list[str] = []
    ids: list[str] = []
    for where, value in entries:
        if not isinstance(value, str):
            problems.append(f"{where}: {json.dumps(value)} is not a string")
            continue
        reason = _reason(value, source)
        if reason:
            problems.append(f"{where}: {value.strip()!r} {reason}")
        else:
            ids.append(normalize_scene_id(value))
    if problems:
        raise ConfigError(_invalid_ids_message(f"{option} {path}", source, problems))
    if not ids:
        raise ConfigError(f"{option}: {path} holds no scene ids")
    return tuple(dict.fromkeys(ids))


def write_scene_id_file(
    path: Path | str,
    scene_ids: Iterable[str],
    scenes: Iterable[Mapping[str, Any]] | None = None,
) -> Path:
    """Write ids atomically: a crash leaves the old file or the new one.

    Without ``scenes``: a JSON array of ids. With ``scenes`` (the scene documents, as
    prep-data has them): a GeoJSON FeatureCollection of their footprints that also
    lists the ids under ``scene_ids``. GIS tools then show where the scenes lie, and an
    offline run can name the auxiliary tiles a scene needs before the scene itself is
    staged. Both forms read back with `read_scene_id_file`.
    """
    path = Path(path)
    ids = list(scene_ids)
    bad = [i for i in ids if not isinstance(i, str)]
    if bad:
        raise TypeError(f"scene ids must be strings, got {bad!r}")
    document: Any = ids
    if scenes is not None:
        features = [_footprint_feature(scene) for scene in scenes if scene.get("id") in ids]
        document = {"type": "FeatureCollection", "scene_ids": ids, "features": features}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(document, indent=2) + "\n")
    return path


def read_scene_footprints(path: Path | str) -> dict[str, dict[str, Any]]:
    """Scene id → a minimal scene document (``id``, ``geometry``, ``properties`` with
    ``datetime``) from a FeatureCollection id file; empty for the other forms (or a
    file that cannot be read: `read_scene_id_file` reports that)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("features"), list):
        return {}
    found: dict[str, dict[str, Any]] = {}
    for feature in data["features"]:
        if not isinstance(feature, dict) or not isinstance(feature.get("id"), str):
            continue
        geometry, properties = feature.get("geometry"), feature.get("properties")
        if isinstance(geometry, dict) and isinstance(properties, dict):
            found[feature["id"]] = {
                "id": feature["id"],
                "geometry": geometry,
                "properties": {"datetime": properties.get("datetime")},
            }
    return found


def _footprint_feature(scene: Mapping[str, Any]) -> dict[str, Any]:
    properties = scene.get("properties") or {}
    return {
        "type": "Feature",
        "id": scene["id"],
        "geometry": scene.get("geometry"),
        "properties": {"scene_id": scene["id"], "datetime": properties.get("datetime")},
    }


def normalize_tile_id(tile_id: str) -> str:
    """``T33UUP``, ``33uup``, ``33UUP`` → ``33UUP``; `ConfigError` if not an MGRS tile."""
    from darts.grid.mgrs import parse_tile_id

    try:
        zone, band, column, row = parse_tile_id(tile_id)
    except ValueError as err:
        raise ConfigError(f"--tile-ids: {err}") from None
    return f"{zone:02d}{band}{column}{row}"


def normalize_tile_ids(tile_ids: Iterable[str]) -> tuple[str, ...]:
    """Normalised, de-duplicated tile ids; every invalid one named in one error."""
    tiles: list[str] = []
    bad: list[str] = []
    for raw in tile_ids:
        try:
            tiles.append(normalize_tile_id(raw))
        except ConfigError:
            bad.append(repr(raw))
    if bad:
        raise ConfigError(
            f"--tile-ids: not Sentinel-2 MGRS tile ids: {', '.join(bad)} "
            "(expected e.g. 33UUP or T33UUP: UTM zone, latitude band, two grid letters)"
        )
    return tuple(dict.fromkeys(tiles))


# -- helpers ---------------------------------------------------------------------------


def _reason(scene_id: str, source: str) -> str | None:
    """A short reason why ``scene_id`` is not an id of ``source``; the expected form is
    added once per message by the callers, not once per id."""
    _check_source(source)
    text = normalize_scene_id(scene_id)
    if source == "cdse-mosaic":
        return _mosaic_reason(text)
    return _cdse_reason(text) if source == "cdse" else _gee_reason(text)


def _needs(source: str) -> str:
    return f"source {source} needs {_FORMS[source]}"


def parse_mosaic_id(scene_id: str) -> tuple[int, int, str]:
    """(year, quarter, tile) of a quarterly mosaic id; `ConfigError` if it is not one."""
    match = _MOSAIC_RE.match(normalize_scene_id(scene_id))
    if match is None:
        raise ConfigError(f"scene id {scene_id!r} is not a mosaic id; {_needs('cdse-mosaic')}")
    return int(match["year"]), int(match["quarter"]), match["tile"]


def _mosaic_reason(text: str) -> str | None:
    if _CDSE_RE.match(text):
        return "is the CDSE product id form (source cdse)"
    if _GEE_RE.match(text):
        return "is the Earth Engine form (source gee)"
    if _MOSAIC_RE.match(text) is None:
        return "is not a quarterly mosaic id"
    return None


def _cdse_reason(text: str) -> str | None:
    if _GEE_RE.match(text):
        return "is the Earth Engine form (source gee)"
    if _MOSAIC_RE.match(text):
        return "is a quarterly mosaic id (source cdse-mosaic)"
    if _CDSE_RE.match(text) is None:
        if _OTHER_PRODUCT_RE.match(text) and "_MSIL2A_" not in text:
            return "is not a Sentinel-2 L2A product"
        return "is not a scene id"
    # The form is all that is checked: digits that name no real moment (an example id
    # with an invented time, say) are the catalogue's to report as not found.
    return None


def _gee_reason(text: str) -> str | None:
    if _CDSE_RE.match(text):
        return "is the CDSE product id form (source cdse)"
    if _MOSAIC_RE.match(text):
        return "is a quarterly mosaic id (source cdse-mosaic)"
    if _GEE_RE.match(text) is None:
        return "is not a scene id"
    return None


def _timestamp(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown scene source {source!r}; known: {', '.join(SOURCES)}")


def _invalid_ids_message(where: str, source: str, problems: list[str]) -> str:
    count = len(problems)
    noun = "entry" if count == 1 else "entries"
    listed = "; ".join(problems)
    return (
        f"{where}: {count} invalid scene id {noun} for source {source}: {listed}; {_needs(source)}"
    )


def _json_entries(path: Path, text: str, option: str) -> list[tuple[str, object]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{option}: {path} is not valid JSON (line {err.lineno}, column {err.colno}: "
            f"{err.msg}); write a JSON array of ids or one id per line"
        ) from None
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        # The form prep-data writes with footprints: the ids are listed as they are.
        data = data.get("scene_ids")
        if not isinstance(data, list):
            raise ConfigError(
                f"{option}: {path} is a FeatureCollection without a 'scene_ids' "
                "list; write it with `darts inference prep-data sentinel2 --tile-ids ... "
                "--prep-data-scene-id-file FILE --optical --aux` or give a JSON array of ids"
            )
        return [(f"scene_ids entry {i}", value) for i, value in enumerate(data, start=1)]
    if not isinstance(data, list):
        raise ConfigError(
            f"{option}: {path} must hold a JSON array of scene ids (or the "
            "FeatureCollection prep-data writes)"
        )
    return [(f"entry {i}", value) for i, value in enumerate(data, start=1)]


def _line_entries(text: str) -> list[tuple[str, object]]:
    entries: list[tuple[str, object]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if content:
            entries.append((f"line {number}", content))
    return entries
