"""The optional extras (``darts-rts[inference]``, ``[sandbox]``): the base install
stages data, and a command whose extra is missing says what to install in one line.

"Not installed" is simulated: the subprocesses start with a ``sitecustomize`` whose
import hook refuses the named packages, as an install without them would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from darts import compat

REPO = Path(__file__).resolve().parents[1]
INFERENCE = ("torch", "torchvision", "segmentation_models_pytorch", "timm", "scipy", "PIL")
SANDBOX = ("moto", "flask", "werkzeug", "cql2")

BLOCKER = '''
import os, sys

_BLOCKED = tuple(n for n in os.environ.get("DARTS_TEST_BLOCK", "").split(",") if n)


class _NotInstalled:
    """Refuses the blocked packages, as if they were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
'''


@pytest.fixture
def without(tmp_path: Path):
    """Runs ``darts ARGS`` (the script's entry point) in a fresh interpreter in which
    the given packages cannot be imported."""
    site = tmp_path / "blocker"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)

    def run(blocked: tuple[str, ...], *args: str, code: str | None = None):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
        env["DARTS_TEST_BLOCK"] = ",".join(blocked)
        env.setdefault("DARTS_DATA_DIR", str(tmp_path / "darts"))
        script = code or "from darts.compat import script; script()"
        return subprocess.run(
            [sys.executable, "-c", script, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )

    return run


def _one_line_error(result: subprocess.CompletedProcess, extra: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("darts: error: ")
    assert f"pip install 'darts-rts[{extra}]'" in lines[0]
    return lines[0]


def test_the_blocker_really_blocks(without) -> None:
    result = without(("torch",), code="import torch")
    assert result.returncode == 1 and "No module named 'torch'" in result.stderr


def test_inference_without_torch_names_the_inference_extra(without) -> None:
    result = without(INFERENCE, "inference", "sentinel2-sequential", "--scene-ids", "X")
    line = _one_line_error(result, "inference")
    assert "`darts inference sentinel2-sequential`" in line and "torch" in line


@pytest.mark.parametrize("module", ["darts", "darts.cli.main"])
def test_module_entry_points_check_extras_too(without, module: str) -> None:
    # `python -m ...` where the console script is not on PATH: the same one line.
    script = f"import runpy, sys; sys.argv[0] = 'darts'; runpy.run_module({module!r}, "
    script += "run_name='__main__', alter_sys=True)"
    result = without(
        INFERENCE, "inference", "sentinel2-sequential", "--scene-ids", "X", code=script
    )
    assert "`darts inference sentinel2-sequential`" in _one_line_error(result, "inference")


def _installed(extra: str) -> bool:
    return not compat.missing_modules(extra)


@pytest.mark.skipif(not _installed("inference"), reason="the [inference] extra is not installed")
def test_only_the_missing_package_is_named(without) -> None:
    line = _one_line_error(
        without(("segmentation_models_pytorch",), "inference", "sentinel2-sequential"),
        "inference",
    )
    assert "segmentation_models_pytorch not installed" in line


def test_the_dask_run_without_dask_names_the_dask_extra(without) -> None:
    result = without(("distributed",), "inference", "sentinel2-dask", "--scene-ids", "X")
    # Where [inference] is missing too (CI's Python 3.12 / 3.13 runs), both are named.
    line = _one_line_error(result, "dask" if _installed("inference") else "inference,dask")
    # The first missing package of the extra is named: dask itself where it is absent too.
    first_missing = compat.missing_modules("dask")[0] if not _installed("dask") else "distributed"
    assert "`darts inference sentinel2-dask`" in line and f"{first_missing} not installed" in line


def test_sandbox_without_its_servers_names_the_sandbox_extra(without) -> None:
    for command in (["sandbox", "build"], ["sandbox", "serve"], ["sandbox", "selftest"]):
        line = _one_line_error(without(SANDBOX, *command), "sandbox")
        assert "(moto not installed)" in line


def test_demo_names_both_extras(without) -> None:
    _one_line_error(without(("torch", "cql2"), "demo"), "inference,sandbox")
    # Where [inference] is installed (not in CI's Python 3.12 / 3.13 runs), only the
    # sandbox is missing.
    only_sandbox = "sandbox" if _installed("inference") else "inference,sandbox"
    _one_line_error(without(("moto",), "demo"), only_sandbox)


def test_base_commands_run_without_the_extras(without, tmp_path: Path) -> None:
    blocked = INFERENCE + SANDBOX
    for args in (
        ["--help"],
        ["--version"],
        ["debug-paths"],
        ["inference", "prep-data", "sentinel2", "--help"],
        ["inference", "readiness", "sentinel2", "--help"],
        # --help of a command whose extra is missing still shows the help.
        ["inference", "sentinel2-sequential", "--help"],
    ):
        result = without(blocked, *args)
        assert result.returncode == 0, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "darts").exists()  # debug-paths creates nothing
    # What staging and the Python API's discover/stage import.
    result = without(
        blocked,
        code="import darts.pipelines.prep_data, darts.cli.inference, darts.cli.debug_paths, "
        "darts.store.datacube, darts.store.datacube.read, darts.store.readiness, "
        "darts.sources.cdse_source, darts.sources.gee, darts.workspace; "
        "from darts import Workspace",
    )
    assert result.returncode == 0, result.stderr


def test_a_usage_error_is_still_argparse_s(without) -> None:
    result = without(INFERENCE, "inference", "sentinel2-sequential", "--no-such-flag")
    assert result.returncode == 2 and "unknown option --no-such-flag" in result.stderr


def test_prep_data_stages_and_readiness_passes_without_torch_or_the_servers(
    sandbox, sandbox_world, data_dir: Path, without
) -> None:
    """The base install's job: stage a scene and its auxiliary cubes, then check them
    offline. The stand-ins run in this (full) process; the darts under test in a
    process where torch, scipy, pillow, moto, flask, werkzeug and cql2 do not exist."""
    manifest = json.loads(sandbox_world.manifest.read_text())
    tile = manifest["main_tile"]
    scene = sorted(
        s["id"]
        for s in manifest["scenes"]
        if s["tile"] == tile and s["eo:cloud_cover"] <= 10 and s["eo:snow_cover"] <= 10
    )[0]
    blocked = INFERENCE + SANDBOX
    staged = without(
        blocked, "inference", "prep-data", "sentinel2", "--scene-ids", scene, "--optical", "--aux"
    )
    assert staged.returncode == 0, staged.stdout + staged.stderr
    # icechunk 2's warnings about local repositories are kept out of the output.
    assert "not safe for concurrent commits" not in staged.stderr
    ready = without(blocked, "inference", "readiness", "sentinel2", "--scene-ids", scene)
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert "ready for an offline run" in ready.stdout
    assert list((data_dir / "sentinel2" / "cdse").glob(f"{scene}*"))


def test_require_extras_lists_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "installed", lambda module: module not in {"torch", "cql2"})
    compat.require_extras()  # nothing asked: nothing missing
    with pytest.raises(compat.MissingExtra) as error:
        compat.require_extras("inference", "sandbox", what="the demo")
    assert error.value.exit_code == 2
    assert str(error.value) == (
        "the demo needs the inference and sandbox extras of DARTS (torch, cql2 not installed): "
        "pip install 'darts-rts[inference,sandbox]'"
    )
    monkeypatch.setattr(compat, "installed", lambda module: True)
    compat.require_extras("inference", "sandbox")


def test_every_command_s_extras_are_known() -> None:
    from darts.cli.commands import ALL_COMMANDS

    paths = {command.spec.path for command in ALL_COMMANDS}
    for words, extras in compat.COMMAND_EXTRAS.items():
        assert any(path[: len(words)] == words for path in paths), words
        assert set(extras) <= set(compat.EXTRAS)
    assert compat.extras_for(("inference", "prep-data", "sentinel2")) == ()
    assert compat.extras_for(("inference", "readiness", "sentinel2")) == ()
    assert compat.extras_for(("debug-paths",)) == ()
    assert compat.extras_for(("sandbox", "serve")) == ("sandbox",)


# --- pyproject.toml: what each install brings -------------------------------------------

# Distribution name -> the import name darts.compat checks.
_IMPORT_NAME = {
    "torch": "torch",
    "torchvision": "torchvision",
    "segmentation-models-pytorch": "segmentation_models_pytorch",
    "scipy": "scipy",
    "pillow": "PIL",
    "moto": "moto",
    "werkzeug": "werkzeug",
    "cql2": "cql2",
    "dask": "dask",
    "distributed": "distributed",
    "dask-jobqueue": "dask_jobqueue",
}


def _name(requirement: str) -> str:
    for stop in "[<>=!~; ":
        requirement = requirement.split(stop)[0]
    return requirement.strip().lower()


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_pyproject_extras_match_what_compat_checks() -> None:
    project = _project()
    assert project["name"] == compat.DISTRIBUTION
    assert project["scripts"]["darts"] == "darts.compat:script"
    base = {_name(r) for r in project["dependencies"]}
    optional = project["optional-dependencies"]
    assert not base & {"torch", "torchvision", "segmentation-models-pytorch", "moto", "werkzeug"}
    assert not base & {"cql2", "pytest", "ruff"}
    for extra in ("inference", "sandbox", "dask"):
        modules = {_IMPORT_NAME[_name(r)] for r in optional[extra]}
        assert modules <= set(compat.EXTRAS[extra]), extra
    assert any(r.startswith("moto[server]") for r in optional["sandbox"])
    # [dev] is everything: the extras, plus the tools.
    assert f"{compat.DISTRIBUTION}[inference,sandbox,dask]" in optional["dev"]
    assert {"pytest", "ruff"} <= {_name(r) for r in optional["dev"]}
