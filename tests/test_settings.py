"""Option spelling and precedence: flag > environment > config file > default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from darts.cli.main import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def value_and_origin(output: str, name: str) -> tuple[str, str]:
    lines = output.splitlines()
    for i, line in enumerate(lines):
        parts = line.split()
        if parts and parts[0] == name:
            value = line.split(name, 1)[1].strip().replace("  (does not exist yet)", "")
            origin = lines[i + 1].split("from:", 1)[1].strip()
            return value, origin
    raise AssertionError(f"{name} not in output:\n{output}")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in (
        "DARTS_DATA_DIR",
        "DARTS_FAST_DATA_DIR",
        "DARTS_LARGE_DATA_DIR",
        "DARTS_CONFIG_FILE",
        "DARTS_CDSE_STAC_URL",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)


@pytest.mark.parametrize("flag", ["--default-dirs.darts-dir", "--darts-dir"])
def test_both_spellings_of_a_dir_flag(flag: str, tmp_path: Path, capsys) -> None:
    code, out, _ = run_cli(["debug-paths", flag, str(tmp_path / "d")], capsys)
    assert code == 0
    assert value_and_origin(out, "darts-dir") == (str(tmp_path / "d"), "command line (--darts-dir)")
    assert value_and_origin(out, "raw-data-store")[0] == str(tmp_path / "d/sentinel2/cdse")


def test_precedence_flag_env_config_default(tmp_path: Path, monkeypatch, capsys) -> None:
    config = tmp_path / "darts.toml"
    config.write_text('[darts]\ndarts-dir = "/from/config"\n')
    code, out, _ = run_cli(["debug-paths"], capsys)
    assert code == 0
    assert value_and_origin(out, "darts-dir") == (
        str(tmp_path / "home/.local/share/darts"),
        "default (XDG data dir)",
    )

    code, out, _ = run_cli(["--config-file", str(config), "debug-paths"], capsys)
    value, origin = value_and_origin(out, "darts-dir")
    assert value == "/from/config"
    assert str(config) in origin

    monkeypatch.setenv("DARTS_DATA_DIR", "/from/env")
    code, out, _ = run_cli(["--config-file", str(config), "debug-paths"], capsys)
    assert value_and_origin(out, "darts-dir") == ("/from/env", "env DARTS_DATA_DIR")

    code, out, _ = run_cli(
        ["debug-paths", "--config-file", str(config), "--darts-dir", "/from/flag"], capsys
    )
    assert value_and_origin(out, "darts-dir") == ("/from/flag", "command line (--darts-dir)")


def test_fast_and_large_dirs_split_the_layout(monkeypatch, capsys) -> None:
    monkeypatch.setenv("DARTS_FAST_DATA_DIR", "/fast")
    code, out, _ = run_cli(
        ["debug-paths", "--darts-dir", "/d", "--default-dirs.large-dir", "/large"], capsys
    )
    assert code == 0
    assert value_and_origin(out, "arcticdem-dir")[0] == "/fast/auxiliary/arcticdem_10m.icechunk"
    assert value_and_origin(out, "tcvis-dir")[0] == "/fast/auxiliary/tcvis.icechunk"
    assert value_and_origin(out, "raw-data-store")[0] == "/large/sentinel2/cdse"
    assert value_and_origin(out, "output-dir")[0] == "/large/out"
    assert value_and_origin(out, "log-dir")[0] == "/d/logs"


def test_per_command_table_beats_darts_table(tmp_path: Path, capsys) -> None:
    config = tmp_path / "darts.toml"
    config.write_text(
        "[darts]\n"
        'darts-dir = "/general"\n'
        "[darts.default-dirs]\n"
        'large-dir = "/large-general"\n'
        "[darts.debug-paths]\n"
        'default-dirs.darts-dir = "/specific"\n'
        'pipeline.raw-data-source = "gee"\n'
        "arcticdem_resolution = 32\n"
    )
    code, out, _ = run_cli(["debug-paths", "--config-file", str(config)], capsys)
    assert code == 0, out
    value, origin = value_and_origin(out, "darts-dir")
    assert value == "/specific" and "[darts.debug-paths]" in origin
    assert value_and_origin(out, "large-dir")[0] == "/large-general"
    assert value_and_origin(out, "raw-data-store")[0] == "/large-general/sentinel2/gee"
    assert value_and_origin(out, "arcticdem-dir")[0].endswith("arcticdem_32m.icechunk")


@pytest.mark.parametrize(
    ("text", "bad_key"),
    [
        ("[darts]\nno-such-option = 1\n", "darts.no-such-option"),
        ('[darts.default-dirs]\ndarts-dri = "/x"\n', "darts.default-dirs.darts-dri"),
        ('[darts.debug-paths]\nfoo = "x"\n', "darts.debug-paths.foo"),
        ("[other]\nx = 1\n", "other"),
    ],
)
def test_unknown_config_key_names_key_and_file(tmp_path: Path, capsys, text, bad_key) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    code, _out, err = run_cli(["--config-file", str(config), "debug-paths"], capsys)
    assert code == 2
    assert f"'{bad_key}'" in err and str(config) in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_bad_values_are_one_clear_line(tmp_path: Path, capsys, monkeypatch) -> None:
    code, _, err = run_cli(["debug-paths", "--arcticdem-resolution", "5"], capsys)
    assert code == 2 and "choose 2, 10 or 32" in err

    code, _, err = run_cli(["debug-paths", "--max-retries", "many"], capsys)
    assert code == 2 and "max-retries" in err and "many" in err

    config = tmp_path / "broken.toml"
    config.write_text("[darts\n")
    code, _, err = run_cli(["--config-file", str(config), "debug-paths"], capsys)
    assert code == 2 and "not valid TOML" in err and str(config) in err

    code, _, err = run_cli(["--config-file", str(tmp_path / "missing.toml"), "debug-paths"], capsys)
    assert code == 2 and "does not exist" in err

    monkeypatch.setenv("DARTS_MAX_RETRIES", "x")
    code, _, err = run_cli(["debug-paths"], capsys)
    assert code == 2 and "DARTS_MAX_RETRIES" in err


def test_endpoints_from_env_and_config(tmp_path: Path, monkeypatch, capsys) -> None:
    config = tmp_path / "darts.toml"
    config.write_text(
        '[darts.endpoints]\ncdse-stac-url = "http://127.0.0.1:9/v1/"\naws-profile = "cdse"\n'
    )
    monkeypatch.setenv("DARTS_CONFIG_FILE", str(config))
    _, out, _ = run_cli(["debug-paths"], capsys)
    assert value_and_origin(out, "cdse-stac-url")[0] == "http://127.0.0.1:9/v1/"
    assert value_and_origin(out, "aws-profile")[0] == "cdse"
    assert value_and_origin(out, "pgc-stac-url") == ("https://stac.pgc.umn.edu/api/v1/", "default")
    monkeypatch.setenv("DARTS_CDSE_STAC_URL", "http://127.0.0.1:8/v1/")
    _code, out, _ = run_cli(["debug-paths"], capsys)
    assert value_and_origin(out, "cdse-stac-url") == (
        "http://127.0.0.1:8/v1/",
        "env DARTS_CDSE_STAC_URL",
    )


def test_no_raw_data_store_is_shown_as_disabled(capsys) -> None:
    code, out, _ = run_cli(["debug-paths", "--pipeline.no-raw-data-store"], capsys)
    assert code == 0
    value, origin = value_and_origin(out, "raw-data-store")
    assert value == "(none)" and "disabled" in origin


def test_debug_paths_creates_nothing(tmp_path: Path, capsys) -> None:
    root = tmp_path / "never-created"
    code, _, _ = run_cli(
        ["debug-paths", "--darts-dir", str(root), "--fast-dir", str(root / "f")], capsys
    )
    assert code == 0
    assert not root.exists()


def test_console_script_version_and_help() -> None:
    exe = Path(sys.executable).parent / "darts"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("darts ")
    help_text = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    for word in ("--config-file", "--verbose", "--debug", "--log-file", "inference", "debug-paths"):
        assert word in help_text.stdout


def test_log_file_receives_debug_messages(tmp_path: Path, capsys) -> None:
    log_file = tmp_path / "darts.log"
    code, _, _ = run_cli(["debug-paths", "--log-file", str(log_file), "--max-retries", "x"], capsys)
    assert code == 2
    assert log_file.exists()
