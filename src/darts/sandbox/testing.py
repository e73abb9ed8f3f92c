"""Pytest fixtures for code that talks to the sandbox (like odc-stac's ``testing``).

Load them with ``pytest_plugins = ["darts.sandbox.testing"]`` in a conftest.py.

- ``sandbox_world``: the small world, built once per test session and cached under
  ``$DARTS_SANDBOX_CACHE`` (default ``<repo>/.sandbox`` when run from a checkout, else
  a temporary folder) in a folder keyed by a hash of the world builder's source, so a
  change to the builder never reuses a stale world;
- ``sandbox``: all stand-ins running for the session, faults off;
- ``sandbox_config``: a darts TOML config file pointing at them;
- ``data_dir``: a fresh ``DARTS_DATA_DIR`` for one test, with the sandbox config as
  ``DARTS_CONFIG_FILE`` and no AWS or offline setting leaking in from the environment.

Tests that change faults must restore them (``sandbox.set_faults(name, FaultConfig())``)
and may clear the request log with ``sandbox.clear_requests()``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from darts.sandbox.layout import WorldLayout
from darts.sandbox.service import Sandbox


def world_source_digest() -> str:
    """A short hash of everything that decides the world's bytes."""
    import darts.sandbox.world as world_package

    digest = hashlib.sha256()
    package_dir = Path(world_package.__file__).parent
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(path.relative_to(package_dir).as_posix().encode())
        digest.update(path.read_bytes())
    for module in ("layout.py",):
        digest.update((package_dir.parent / module).read_bytes())
    return digest.hexdigest()[:12]


def sandbox_cache_root(tmp_factory: pytest.TempPathFactory | None = None) -> Path:
    configured = os.environ.get("DARTS_SANDBOX_CACHE")
    if configured:
        base = Path(configured)
    else:
        repo = Path(__file__).resolve().parents[3]
        if (repo / "pyproject.toml").is_file():
            base = repo / ".sandbox"
        elif tmp_factory is not None:
            base = tmp_factory.mktemp("sandbox")
        else:
            raise RuntimeError("set DARTS_SANDBOX_CACHE to a folder for sandbox worlds")
    return base / world_source_digest()


@pytest.fixture(scope="session")
def sandbox_world(tmp_path_factory: pytest.TempPathFactory) -> WorldLayout:
    from darts.sandbox.world import build_world

    return build_world(sandbox_cache_root(tmp_path_factory), "small", seed=0)


@pytest.fixture(scope="session")
def sandbox(sandbox_world: WorldLayout) -> Iterator[Sandbox]:
    with Sandbox(sandbox_world) as running:
        yield running


@pytest.fixture(scope="session")
def sandbox_config(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sandbox.write_config(tmp_path_factory.mktemp("sandbox-config") / "sandbox.toml")


@pytest.fixture
def data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox_config: Path
) -> Iterator[Path]:
    from darts.net.guard import get_gate

    monkeypatch.setenv("DARTS_CONFIG_FILE", str(sandbox_config))
    monkeypatch.setenv("DARTS_DATA_DIR", str(tmp_path / "darts"))
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "DARTS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    yield tmp_path / "darts"
    get_gate().set_offline(False)  # a CLI run with --offline switches the process gate
