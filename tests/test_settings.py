"""Option spelling and precedence: flag > environment > config file > default."""

from __future__ import annotations

import subprocess
import sys
import typing
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


# -- option values are checked where they are parsed, from every place alike -----------


def _numeric_options():
    from darts.settings.commands import ALL_SPECS

    seen = {}
    for command in ALL_SPECS:
        for spec in command.options():
            base = spec.base_type
            item = typing.get_args(base)[0] if spec.is_list else base
            if item in (int, float):
                seen[spec.dotted] = spec
    return sorted(seen.values(), key=lambda s: s.dotted)


def test_every_numeric_option_declares_its_range() -> None:
    numeric = _numeric_options()
    assert len(numeric) >= 20  # the network, filter, model and postprocess numbers
    for spec in numeric:
        assert spec.info.bounds is not None or spec.info.choices, (
            f"--{spec.dotted} accepts any number: declare bounds= or choices= with it"
        )
        if spec.default not in (None, []) and not spec.is_list:
            # The default itself must be a value the option accepts.
            from darts.settings.options import convert

            assert convert(spec, spec.default, "default") == spec.default


@pytest.mark.parametrize(
    ("args", "env", "config", "says"),
    [
        (["--request-timeout", "-5"], {}, "", "invalid value '-5' for --request-timeout"),
        (["--network.max-concurrency", "0"], {}, "", "for --network.max-concurrency"),
        ([], {"DARTS_MAX_RETRIES": "-2"}, "", "for environment variable DARTS_MAX_RETRIES"),
        ([], {}, "[darts.network]\nmax_concurrency = 0\n", "darts.network.max_concurrency"),
        ([], {}, "[darts]\nrequest-timeout = 0\n", "darts.request-timeout"),
        ([], {}, "[darts.debug-paths]\nnetwork.max-retries = -1\n",
         "darts.debug-paths.network.max-retries"),
        ([], {}, '[darts]\nmax-retries = "3"\n', None),  # text a number: fine
        ([], {}, "[darts]\nmax-retries = 2.5\n", "must be a whole number"),
        ([], {}, "[darts]\nrequest-timeout = inf\n", "must be a finite number"),
        (["--arcticdem-resolution", "3"], {}, "", "choose 2, 10 or 32"),
    ],
)  # fmt: skip
def test_a_refused_value_names_the_spelling_used(
    tmp_path: Path, monkeypatch, capsys, args, env, config, says
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    prefix = []
    if config:
        path = tmp_path / "darts.toml"
        path.write_text(config)
        prefix = ["--config-file", str(path)]
    code, _, err = run_cli([*prefix, "debug-paths", *args], capsys)
    if says is None:
        assert code == 0, err
        return
    assert code == 2
    assert says in err and len(err.strip().splitlines()) == 1
    if config:
        assert str(tmp_path / "darts.toml") in err


def test_bounds_describe_what_a_value_must_be() -> None:
    from darts.settings.options import AT_LEAST_1, FRACTION, POSITIVE, Bounds

    assert FRACTION.describe(whole=False) == "a number from 0 to 1"
    assert AT_LEAST_1.describe(whole=True) == "a whole number of at least 1"
    assert POSITIVE.describe(whole=False) == "a number greater than 0"
    assert Bounds(max=5).describe(whole=True) == "a whole number of at most 5"
    assert POSITIVE.allows(0.001) and not POSITIVE.allows(0)
    assert FRACTION.allows(0) and FRACTION.allows(1) and not FRACTION.allows(1.01)


def test_the_python_api_names_the_keyword(tmp_path: Path) -> None:
    import darts
    from darts.errors import ConfigError

    with pytest.raises(ConfigError, match="for setting 'binarization_threshold'"):
        darts.Workspace(tmp_path / "d", binarization_threshold=1.5)


# -- the names existing DARTS users type (README: "Names from the DARTS guides") --------


def _resolve_for(command, args=(), env=None, config_text=None, tmp_path=None):
    """The settings ``command`` resolves from flags (parsed by the real parser), an
    environment and a config file."""
    from darts.cli.commands import ALL_COMMANDS, GROUP_HELP
    from darts.cli.parser import SPELLINGS, build_parser
    from darts.settings.commands import ALL_SPECS
    from darts.settings.resolve import read_config_file, resolve

    parsed = build_parser(ALL_COMMANDS, GROUP_HELP).parse_args([*command.path, *args])
    flags = {k: v for k, v in vars(parsed).items() if "__" in k}
    config = None
    if config_text is not None:
        path = tmp_path / "darts.toml"
        path.write_text(config_text)
        config = read_config_file(path)
    spellings = getattr(parsed, SPELLINGS, None) or {}
    return resolve(command, flags, env or {}, config, list(ALL_SPECS), spellings)


@pytest.mark.parametrize(
    "args",
    [
        ["--output-data-dir", "/out"],
        ["--pipeline.output-data-dir", "/out"],
        ["--output-dir", "/out"],
        ["--pipeline.output-dir", "/out"],
    ],
)
def test_an_alias_is_the_option_on_the_command_line(args, capsys) -> None:
    code, out, _ = run_cli(["debug-paths", *args], capsys)
    assert code == 0
    value, origin = value_and_origin(out, "output-dir")
    assert value == "/out" and origin == "command line (--output-dir)"


def test_the_reference_names_and_values_mean_the_same() -> None:
    from darts.settings.commands import SEQUENTIAL
    from darts.settings.processing import Export, Models, Postprocess

    settings = _resolve_for(
        SEQUENTIAL,
        ["--reflection", "16", "--export-bands", "probabilities", "metadata", "polygonized",
         "--quality-level", "high_quality", "--write-model-outputs", "--ee-use-highvolume"],
    )  # fmt: skip
    assert settings.get(Models).reflection_padding == 16
    assert settings.get(Export).export == ["probabilities", "polygonized"]  # metadata: always
    assert settings.get(Export).write_model_outputs is True
    assert settings.get(Postprocess).quality_level == 2
    for word, level in (("none", 0), ("low_quality", 1), ("high-quality", 2), ("1", 1)):
        chosen = _resolve_for(SEQUENTIAL, ["--quality-level", word])
        assert chosen.get(Postprocess).quality_level == level, word


def test_every_option_has_an_environment_variable(monkeypatch) -> None:
    from darts.settings.commands import ALL_SPECS, SEQUENTIAL
    from darts.settings.pipeline import Filters
    from darts.settings.processing import Postprocess

    for command in ALL_SPECS:
        for spec in command.options():
            assert spec.env or spec.info.ignored, f"--{spec.name} reads no variable"
    settings = _resolve_for(
        SEQUENTIAL, env={"DARTS_MAX_CLOUD_COVER": "35", "DARTS_QUALITY_LEVEL": "high_quality"}
    )
    assert settings.get(Filters).max_cloud_cover == 35
    assert settings.origin_of(Filters, "max_cloud_cover") == "env DARTS_MAX_CLOUD_COVER"
    assert settings.get(Postprocess).quality_level == 2


GUIDE_STYLE = """\
[default_dirs]
darts_dir = "/guide/darts"

[pipeline]
output_data_dir = "/guide/out"

[darts]
max_cloud_cover = 25
export-bands = ["probabilities", "metadata"]

[darts.paths]
model-file = "/guide/models/one.pt"
input-cache = "/guide/raw"
dask-worker = 4

[darts.numbers]
batch_size = 2

[darts.inference.sentinel2-sequential]
quality-level = "low_quality"
reflection = 8
"""


def test_a_config_file_in_the_guides_shape(tmp_path: Path) -> None:
    from darts.settings.commands import DEBUG_PATHS, SEQUENTIAL
    from darts.settings.pipeline import Filters
    from darts.settings.processing import Export, Models, Postprocess
    from darts.settings.sections import DefaultDirs, Outputs, Storage

    settings = _resolve_for(SEQUENTIAL, config_text=GUIDE_STYLE, tmp_path=tmp_path)
    assert settings.get(DefaultDirs).darts_dir == Path("/guide/darts")
    assert settings.get(Outputs).output_dir == Path("/guide/out")
    assert settings.get(Storage).raw_data_store == Path("/guide/raw")
    assert settings.get(Models).model_files == [Path("/guide/models/one.pt")]
    assert settings.get(Models).batch_size == 2 and settings.get(Models).reflection_padding == 8
    assert settings.get(Filters).max_cloud_cover == 25
    assert settings.get(Export).export == ["probabilities"]
    assert settings.get(Postprocess).quality_level == 1
    assert settings.notes == [
        f"--dask-worker (config file {tmp_path / 'darts.toml'} [darts]) is ignored: this "
        "command runs one scene after another, without Dask workers"
    ]
    # The command table applies to its command only.
    other = _resolve_for(DEBUG_PATHS, config_text=GUIDE_STYLE, tmp_path=tmp_path)
    assert other.get(Outputs).output_dir == Path("/guide/out")


def test_a_runs_selection_never_selects_what_darts_cache_removes(tmp_path: Path, capsys) -> None:
    """`darts cache`'s --scene-ids/--tile-ids share their names with a run's, and prune
    removes what they name: a run's settings (``DARTS_SCENE_IDS``, ``scene-ids`` in
    ``[darts]``) must not reach it; ``DARTS_CACHE_<NAME>`` and ``[darts.cache]`` do."""
    from darts.settings.cache import CachePrune, CacheScope
    from darts.settings.commands import CACHE_PRUNE, SEQUENTIAL
    from darts.settings.pipeline import Selection

    run_wide = '[darts]\nscene-ids = ["S2A_X"]\ntile-ids = ["33UUP"]\n'
    env = {"DARTS_SCENE_IDS": "S2A_Y", "DARTS_TILE_IDS": "33UVP"}
    run = _resolve_for(SEQUENTIAL, env=env, config_text=run_wide, tmp_path=tmp_path)
    assert run.get(Selection).scene_ids == ["S2A_Y"]
    prune = _resolve_for(CACHE_PRUNE, env=env, config_text=run_wide, tmp_path=tmp_path)
    assert prune.get(CacheScope).scene_ids == [] and prune.get(CacheScope).tile_ids == []

    cache_table = '[darts.cache]\nscene-ids = ["S2A_X"]\n\n[darts.cache.prune]\nolder-than = 30\n'
    prune = _resolve_for(
        CACHE_PRUNE,
        env={"DARTS_CACHE_TILE_IDS": "39_17"},
        config_text=cache_table,
        tmp_path=tmp_path,
    )
    assert prune.get(CacheScope).scene_ids == ["S2A_X"]
    assert prune.get(CacheScope).tile_ids == ["39_17"]
    assert prune.get(CachePrune).older_than == 30
    assert prune.origin_of(CacheScope, "tile_ids") == "env DARTS_CACHE_TILE_IDS"

    # An option only `darts cache` has, in a table every command reads: said where it goes.
    config = tmp_path / "misplaced.toml"
    config.write_text("[darts]\nolder-than = 30\n")
    code, _, err = run_cli(["--config-file", str(config), "debug-paths"], capsys)
    assert code == 2
    assert "unknown key 'darts.older-than' (set it under [darts.cache])" in err


def test_every_unknown_key_of_a_file_is_reported_at_once(tmp_path: Path, capsys) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        "[darts]\n"
        "max-cloud-cvoer = 5\n"
        "output_data_dri = '/x'\n"
        "log-dir = '/logs'\n"
        "[darts.inference.sentinel2-sequentail]\n"
        "patch-size = 256\n"
        "[darts.endpoints]\n"
        "cdse-stac = 'http://127.0.0.1:9/'\n"
        "[dartz]\n"
        "x = 1\n"
    )
    code, _out, err = run_cli(["--config-file", str(config), "debug-paths"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and str(config) in err
    for part in (
        "5 unknown keys",
        "'darts.max-cloud-cvoer' (did you mean max-cloud-cover?)",
        "'darts.output_data_dri' (did you mean output-data-dir?)",
        "'darts.inference.sentinel2-sequentail' (a table of no command (did you mean "
        "sentinel2-sequential?))",
        "'darts.endpoints.cdse-stac' (did you mean cdse-stac-url?)",
        "'dartz' (did you mean 'darts'?)",
        "read from the command line only, before the config file: 'darts.log-dir' (pass --log-dir)",
    ):
        assert part in err, part


def test_one_option_set_twice_at_one_level_is_refused(tmp_path: Path, capsys) -> None:
    config = tmp_path / "twice.toml"
    config.write_text("[darts]\noutput-dir = '/a'\n[darts.paths]\noutput-data-dir = '/b'\n")
    code, _out, err = run_cli(["--config-file", str(config), "debug-paths"], capsys)
    assert code == 2
    assert "sets --output-dir twice at the same level" in err
    assert "darts.output-dir" in err and "darts.paths.output-data-dir" in err
    # The same value twice is no conflict; a deeper table still wins.
    config.write_text(
        "[darts]\noutput-dir = '/a'\n[darts.paths]\noutput-data-dir = '/a'\n"
        "[darts.debug-paths]\noutput_data_dir = '/c'\n"
    )
    code, out, _ = run_cli(["--config-file", str(config), "debug-paths"], capsys)
    assert code == 0 and value_and_origin(out, "output-dir")[0] == "/c"


def test_an_unknown_flag_gets_the_closest_one(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["debug-paths", "--output-data-dri", "/x"])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert "unknown option --output-data-dri (did you mean --output-data-dir?)" in err
    with pytest.raises(SystemExit):
        main(["inference", "readiness", "sentinel2", "--dry-run", "--scene-ids", "x"])
    err = capsys.readouterr().err
    assert (
        "--dry-run is not an option of `darts inference readiness sentinel2` (it is one of "
        "`darts inference prep-data sentinel2`, `darts cache repair`, `darts cache prune`)"
    ) in err
    with pytest.raises(SystemExit):
        main(["inference", "prep-dat", "sentinel2"])
    assert "unknown command word 'prep-dat' (did you mean prep-data?)" in capsys.readouterr().err
    # Choices are checked where every value is, with the same suggestion.
    code, _out, err = run_cli(["debug-paths", "--raw-data-source", "cdsee"], capsys)
    assert code == 2 and "(did you mean 'cdse'?)" in err


def test_log_dir_is_read_before_the_config_file(tmp_path: Path, capsys) -> None:
    logs = tmp_path / "logs"
    code, out, _ = run_cli(["--log-dir", str(logs), "debug-paths", "--log-plain"], capsys)
    assert code == 0
    assert value_and_origin(out, "log-dir") == (str(logs), "command line (--log-dir)")
    (log,) = logs.glob("darts-*.log")
    assert log.read_text().startswith("--- darts ")


def test_models_default_to_the_fast_dirs_models_folder(tmp_path: Path, monkeypatch) -> None:
    from darts.errors import ConfigError
    from darts.pipelines.requests import model_files_of
    from darts.settings.commands import SEQUENTIAL

    fast = tmp_path / "fast"
    settings = _resolve_for(SEQUENTIAL, ["--darts-dir", str(tmp_path), "--fast-dir", str(fast)])
    with pytest.raises(ConfigError) as refused:
        model_files_of(settings)
    assert "--model-files" in str(refused.value) and str(fast / "models") in str(refused.value)
    assert "under fast-dir, set by command line (--fast-dir)" in str(refused.value)
    (fast / "models").mkdir(parents=True)
    for name in ("b.ckpt", "a.pt", "notes.txt"):
        (fast / "models" / name).write_bytes(b"")
    assert model_files_of(settings) == [fast / "models/a.pt", fast / "models/b.ckpt"]
    given = _resolve_for(SEQUENTIAL, ["--fast-dir", str(fast), "--model-files", "x.pt"])
    assert model_files_of(given) == [Path("x.pt")]


def test_the_saved_scene_id_file_alone_selects_for_a_run_not_for_prep_data() -> None:
    from darts.errors import ConfigError
    from darts.pipelines.requests import selection_of
    from darts.settings.commands import PREP_DATA, SEQUENTIAL

    args = ["--prep-data-scene-id-file", "ids.json"]
    selection = selection_of(_resolve_for(SEQUENTIAL, args), saved_is_selection=True)
    assert selection.scene_id_file == Path("ids.json")
    assert selection.scene_id_file_option == "--prep-data-scene-id-file"
    with pytest.raises(ConfigError, match="say what to find with --tile-ids or --aoi-file"):
        selection_of(_resolve_for(PREP_DATA, args))
    with pytest.raises(ConfigError, match="or with the --prep-data-scene-id-file"):
        selection_of(_resolve_for(SEQUENTIAL), saved_is_selection=True)


def test_an_ignored_option_says_why_once(tmp_path: Path, capsys) -> None:
    code, _out, err = run_cli(
        ["inference", "readiness", "sentinel2", "--darts-dir", str(tmp_path),
         "--sentinel2-grid-dir", str(tmp_path / "grid"), "--scene-ids",
         "S2A_MSIL2A_20240715T203849_N0510_R029_T08WNB_20240716T012536"],
        capsys,
    )  # fmt: skip
    assert code == 1  # nothing staged
    assert err.count("note: --sentinel2-grid-dir (command line (--sentinel2-grid-dir)) is ") == 1
    assert "ignored: the Sentinel-2 tiling grid is computed" in err


def test_the_api_takes_the_reference_names_too(tmp_path: Path) -> None:
    import darts
    from darts.errors import ConfigError
    from darts.settings.sections import Outputs

    ws = darts.Workspace(tmp_path / "d", environ={}, output_data_dir=tmp_path / "out")
    assert ws.settings.get(Outputs).output_dir == tmp_path / "out"
    with pytest.raises(ConfigError, match="did you mean 'output_data_dir'"):
        darts.Workspace(tmp_path / "d", environ={}, output_data_dri=tmp_path)
