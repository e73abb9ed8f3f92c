"""Scene and tile ids, and the scene-id file that prep-data writes and offline runs read."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from darts.errors import ConfigError
from darts.sources.scene_ids import (
    normalize_tile_id,
    normalize_tile_ids,
    parse_scene_id,
    read_scene_footprints,
    read_scene_id_file,
    scene_id_problem,
    validate_scene_ids,
    write_scene_id_file,
)

ID_A = "S2B_MSIL2A_20230701T194909_N0509_R085_T11XNA_20230701T222815"
ID_B = "S2C_MSIL2A_20260527T014651_N0512_R017_T55WFR_20260527T042005"
GEE_ID = "20230701T194909_20230701T195350_T11XNA"


def test_parse_scene_id() -> None:
    parts = parse_scene_id(ID_A + ".SAFE")
    assert parts.mission == "S2B"
    assert parts.sensing_time == datetime(2023, 7, 1, 19, 49, 9, tzinfo=UTC)
    assert parts.baseline == "N0509"
    assert parts.processing_version == "05.09"
    assert parts.relative_orbit == 85
    assert parts.tile == "11XNA"
    assert parts.discriminator == "20230701T222815"


def test_gee_form_is_rejected_for_cdse_with_both_forms_named() -> None:
    with pytest.raises(ConfigError) as err:
        parse_scene_id(GEE_ID)
    message = str(err.value)
    assert "Earth Engine form" in message
    assert "source cdse needs the CDSE product id" in message
    assert "S2x_MSIL2A_" in message
    # ...and the other way round for gee.
    assert "CDSE product id form" in (scene_id_problem(ID_A, "gee") or "")
    assert scene_id_problem(GEE_ID, "gee") is None


@pytest.mark.parametrize(
    ("scene_id", "fragment"),
    [
        ("S2B_MSIL1C_20230701T194909_N0509_R085_T11XNA_20230701T222815", "not a Sentinel-2 L2A"),
        ("S2B_MSIL2A_20230701T194909_N0509_R085_T11XNA", "is not a scene id"),
        ("hello", "is not a scene id"),
        ("", "is not a scene id"),
    ],
)
def test_invalid_ids_say_why(scene_id: str, fragment: str) -> None:
    assert fragment in (scene_id_problem(scene_id) or "")


@pytest.mark.parametrize(
    ("scene_id", "source"),
    [
        # Month 13, hour 25: well-formed ids whose digits name no real moment.
        ("S2B_MSIL2A_20231301T194909_N0509_R085_T11XNA_20230701T222815", "cdse"),
        ("S2A_MSIL2A_20230725T253101_N0509_R143_T05WPU_20230726T004432", "cdse"),
        ("20230725T253101_20230725T213100_T05WPU", "gee"),
    ],
)
def test_a_well_formed_id_with_an_impossible_time_is_left_to_the_lookup(
    scene_id: str, source: str
) -> None:
    # The catalogue reports it as not found (tests/test_cli_hints.py); its form is fine.
    assert scene_id_problem(scene_id, source) is None
    assert validate_scene_ids([scene_id], source) == (scene_id,)
    if source == "cdse":
        parts = parse_scene_id(scene_id)
        assert parts.sensing_time is None and parts.tile in scene_id


def test_validate_lists_every_invalid_id() -> None:
    with pytest.raises(ConfigError) as err:
        validate_scene_ids([ID_A, GEE_ID, "junk", ID_B])
    message = str(err.value)
    assert message.startswith("--scene-ids: 2 invalid scene id entries for source cdse")
    assert f"'{GEE_ID}' is the Earth Engine form (source gee); 'junk' is not a scene id;" in message
    assert message.count("source cdse needs the CDSE product id") == 1
    assert ID_B not in message
    # Valid ids: trimmed, .SAFE dropped, duplicates removed in order.
    assert validate_scene_ids([f" {ID_B}.SAFE ", ID_A, ID_B]) == (ID_B, ID_A)
    with pytest.raises(ConfigError, match="no scene ids"):
        validate_scene_ids([])


def test_json_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "scene_ids.json"
    write_scene_id_file(path, [ID_A, ID_B])
    assert json.loads(path.read_text()) == [ID_A, ID_B]
    assert read_scene_id_file(path) == (ID_A, ID_B)
    # Rewriting replaces the content and leaves no temporary file behind.
    write_scene_id_file(path, [ID_B])
    assert read_scene_id_file(path) == (ID_B,)
    assert sorted(p.name for p in path.parent.iterdir()) == ["scene_ids.json"]


def test_line_form_with_comments(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text(f"# scenes for the summer\n\n{ID_A}  # clear\n   \n{ID_B}.SAFE\n{ID_A}\n")
    assert read_scene_id_file(path) == (ID_A, ID_B)


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ids.json"
    write_scene_id_file(path, [ID_A])

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_scene_id_file(path, [ID_B])
    assert read_scene_id_file(path) == (ID_A,)
    assert [p.name for p in tmp_path.iterdir()] == ["ids.json"]


def test_missing_file_says_how_prep_data_writes_one(tmp_path: Path) -> None:
    path = tmp_path / "missing.json"
    with pytest.raises(ConfigError) as missing:
        read_scene_id_file(path)
    assert "does not exist" in str(missing.value)
    assert str(path) in str(missing.value)
    assert f"--prep-data-scene-id-file {path}" in str(missing.value)


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ('["S2B_MSIL2A_', r"is not valid JSON \(line 1, column"),
        ('{"ids": []}', "must hold a JSON array"),
        (f'["{ID_A}", 3, null]', r"entry 2: 3 is not a string; entry 3: null is not a string"),
        ("[]", "holds no scene ids"),
        ("# only a comment\n", "holds no scene ids"),
    ],
)
def test_bad_files_are_clear(tmp_path: Path, content: str, pattern: str) -> None:
    path = tmp_path / "ids.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=pattern) as err:
        read_scene_id_file(path)
    assert str(err.value).startswith("--scene-id-file")


def test_every_invalid_id_in_a_file_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text(f"{ID_A}\nnope\n{GEE_ID}\n")
    with pytest.raises(ConfigError) as err:
        read_scene_id_file(path)
    message = str(err.value)
    assert "2 invalid scene id entries" in message
    assert "line 2: 'nope'" in message
    assert f"line 3: '{GEE_ID}' is the Earth Engine form" in message


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "ids.json"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="cannot read"):
        read_scene_id_file(path)
    with pytest.raises(ConfigError, match="cannot read"):
        read_scene_id_file(tmp_path)  # a folder


@pytest.mark.parametrize("raw", ["T33UUP", "33UUP", "33uup", " t33uup "])
def test_tile_ids_are_normalised(raw: str) -> None:
    assert normalize_tile_id(raw) == "33UUP"


def test_invalid_tile_ids_are_listed() -> None:
    assert normalize_tile_ids(["8WNB", "T08WNB"]) == ("08WNB",)
    with pytest.raises(
        ConfigError, match=r"--tile-ids: not Sentinel-2 MGRS tile ids: '33UU', 'T61AAA'"
    ):
        normalize_tile_ids(["33UUP", "33UU", "T61AAA"])
    with pytest.raises(ConfigError, match=r"--tile-ids:.*column letter"):
        normalize_tile_id("33UAP")  # zone 33 uses columns S-Z


def test_the_footprint_form_reads_back_ids_and_footprints(tmp_path: Path) -> None:
    square = {"type": "Polygon", "coordinates": [[[0, 70], [1, 70], [1, 71], [0, 70]]]}
    scenes = [
        {"id": ID_A, "geometry": square, "properties": {"datetime": "2023-07-01T19:49:09Z"}},
        {"id": "not-listed", "geometry": square, "properties": {}},
    ]
    path = write_scene_id_file(tmp_path / "ids.json", [ID_A, ID_B], scenes)
    document = json.loads(path.read_text())
    assert document["type"] == "FeatureCollection" and document["scene_ids"] == [ID_A, ID_B]
    assert [f["id"] for f in document["features"]] == [ID_A]  # only listed scenes
    assert read_scene_id_file(path) == (ID_A, ID_B)
    footprints = read_scene_footprints(path)
    assert list(footprints) == [ID_A]
    assert footprints[ID_A]["geometry"] == square
    assert footprints[ID_A]["properties"]["datetime"] == "2023-07-01T19:49:09Z"
    # The plain forms have no footprints.
    plain = write_scene_id_file(tmp_path / "plain.json", [ID_A])
    assert json.loads(plain.read_text()) == [ID_A]
    assert read_scene_footprints(plain) == {}


def test_a_feature_collection_without_ids_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "fc.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(ConfigError, match="without a 'scene_ids' list"):
        read_scene_id_file(path)
    path.write_text(json.dumps({"ids": [ID_A]}))
    with pytest.raises(ConfigError, match="must hold a JSON array of scene ids"):
        read_scene_id_file(path)
