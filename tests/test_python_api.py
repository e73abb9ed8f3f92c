"""The Python API: the README's example runs as written against the sandbox, online
and (the same snippet with ``offline=True``) without a single connection; settings
resolve like the command line's; offline state is the workspace's, not the process's."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import darts
from darts.errors import ConfigError
from darts.net.guard import forbid_sockets, get_gate
from darts.pipelines.staging import SceneNotStagedError
from darts.sandbox.layout import WorldLayout
from darts.store.readiness import NotStagedError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's Python API section has no example"
    return match.group(1)


@pytest.fixture
def workdir(tmp_path: Path, sandbox_config: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(sandbox_config, tmp_path / "sandbox.toml")
    monkeypatch.chdir(tmp_path)
    for name in ("DARTS_CONFIG_FILE", "DARTS_DATA_DIR", "DARTS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_readme_example_runs_online_then_offline_without_connections(
    workdir: Path, sandbox_world: WorldLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    example = readme_example()
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "{'done': 1}" in printed and "'tc_greenness'" in printed and "'dem'" in printed
    scene_dirs = [p for p in (workdir / "demo-data" / "out").iterdir() if p.name != "runs"]
    assert len(scene_dirs) == 1
    assert (scene_dirs[0] / "prediction_segments.gpkg").is_file()

    offline = example.replace(
        'Workspace("demo-data", config_file="sandbox.toml")',
        'Workspace("demo-data", config_file="sandbox.toml", offline=True)',
    )
    assert offline != example
    with forbid_sockets() as audit:
        exec(compile(offline, "README.md (offline)", "exec"), {})
    assert audit.blocked == []
    assert "{'skipped': 1}" in capsys.readouterr().out
    assert get_gate().offline is False  # the workspace switched nothing process-wide

    # The demo's training data comes from the same input assembly as the runs.
    from darts.demo.data import read_scene_inputs
    from darts.processing.features import ALL_FEATURES

    with forbid_sockets() as audit:
        (inputs,) = read_scene_inputs(workdir / "demo-data", [scene_dirs[0].name], ALL_FEATURES)
    assert audit.blocked == []
    assert inputs.features.shape == (len(ALL_FEATURES), *inputs.quality.shape)
    assert inputs.features.dtype.name == "float32" and inputs.quality.max() == 2


def test_offline_workspace_lists_every_gap_and_refuses_searches(
    workdir: Path, sandbox_world: WorldLayout
) -> None:
    online = darts.Workspace("data", config_file="sandbox.toml")
    (scene,) = online.discover(tile_ids=["08WNB"], years=[2024])
    offline = darts.Workspace("data", config_file="sandbox.toml", offline=True)
    with forbid_sockets() as audit:
        assert offline.discover(tile_ids=["08WNB"], years=[2024]) == []  # nothing staged
        with pytest.raises(NotStagedError) as caught:
            offline.stage([scene])
        with pytest.raises(SceneNotStagedError, match="not in the store"):
            offline.open_scene(scene["id"])
    assert audit.blocked == []
    message = str(caught.value)
    assert "scene not in the raw-data store" in message
    assert "ArcticDEM" in message and "TCVIS" in message


def test_settings_resolve_like_the_command_line(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "cfg.toml").write_text(
        "[darts]\nmax-cloud-cover = 30\nmax-retries = 2\n[darts.api]\nmax-snow-cover = 40\n"
    )
    monkeypatch.setenv("DARTS_MAX_RETRIES", "3")
    ws = darts.Workspace("d", config_file="cfg.toml", raw_data_source="gee", max_retries=4)
    assert ws.source == "gee"
    assert ws.paths.raw_data_store == workdir / "d" / "sentinel2" / "gee"
    assert ws.runtime.net.max_retries == 4  # code beats the environment
    assert darts.Workspace("d", config_file="cfg.toml").runtime.net.max_retries == 3
    filters = ws._filters({})
    assert (filters.max_cloud_cover, filters.max_snow_cover) == (30, 40)
    assert ws._filters({"years": [2024]}).years == (2024,)
    with pytest.raises(ConfigError, match="unknown setting 'max_clouds'"):
        darts.Workspace("d", max_clouds=3)
    with pytest.raises(ConfigError, match="unknown filter"):
        ws.discover(tile_ids=["08WNB"], clouds=3)
    assert "Workspace" in darts.__all__ and repr(ws).startswith("Workspace(")
