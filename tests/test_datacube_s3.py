"""Datacube on S3: the sandbox's S3 stand-in (moto behind a SigV4 check), made
writable, holds a cube at s3://eodata/test-cubes/<uuid>; and the offline gate refuses
S3 cubes before anything connects.

The session ``sandbox`` serves ``eodata`` read-only, like CDSE, so these tests start
their own writable stand-in on an empty world. Its request handler keeps headers with
"_" in their names: Icechunk signs ``x-amz-meta-ic_client`` & co., which werkzeug's
default handler silently drops, so the signature check would fail on a request that
real S3 accepts.
"""

from __future__ import annotations

import math
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from werkzeug.serving import WSGIRequestHandler

from darts.grid.cube import CubeGrid, Window
from darts.net.errors import OfflineError
from darts.net.guard import NetworkGate, SocketAudit
from darts.net.icechunk_storage import icechunk_storage
from darts.net.settings import NetworkSettings, S3Settings
from darts.sandbox.layout import CDSE_BUCKET, WorldLayout
from darts.sandbox.servers.runner import ServerThread
from darts.sandbox.servers.s3 import s3_app
from darts.sandbox.service import SandboxCredentials
from darts.store.datacube import Datacube
from darts.store.datacube.errors import CubeMismatchError, CubeNotFoundError, CubeStorageError
from darts.store.datacube.spec import CubeSpec, CubeVariable
from darts.store.datacube.testing import PatternTileSource

GRID = CubeGrid("EPSG:3413", -50_000.0, 60_000.0, 10.0, 1000, 1000)
SPEC = CubeSpec(
    kind="test-aux",
    grid=GRID,
    variables=(CubeVariable("dem", "float32", math.nan), CubeVariable("cls", "uint8", 0)),
    chunk=64,
)
TILE = 100


class _KeepUnderscoreHeaders(WSGIRequestHandler):
    """werkzeug drops request headers containing "_" (a guard against header
    spoofing behind proxies); S3 accepts them, so put them back into the environ."""

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        for key, value in self.headers.items():
            if "_" in key:
                environ["HTTP_" + key.upper().replace("-", "_")] = value
        return environ


@contextmanager
def s3_stand_in(root: Path, *, read_only: bool) -> Iterator[S3Settings]:
    world = WorldLayout(root)
    (world.s3_root / CDSE_BUCKET).mkdir(parents=True)
    keys = SandboxCredentials()
    app = s3_app(world, keys.access_key_id, keys.secret_access_key, read_only=read_only)
    server = ServerThread(app, request_handler=_KeepUnderscoreHeaders, name="cube-s3")
    server.start()
    try:
        yield S3Settings(
            endpoint_url=server.url,
            region="us-east-1",
            access_key_id=keys.access_key_id,
            secret_access_key=keys.secret_access_key,
        )
    finally:
        server.stop()
        app.close()


@pytest.fixture(scope="module")
def s3_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Settings]:
    with s3_stand_in(tmp_path_factory.mktemp("s3-world"), read_only=False) as settings:
        yield settings


@pytest.fixture
def location() -> str:
    return f"s3://{CDSE_BUCKET}/test-cubes/{uuid.uuid4().hex}"


NET = NetworkSettings(timeout_s=10.0, max_retries=1, backoff_base_s=0.01, backoff_max_s=0.1)


def test_write_and_read_a_tile_on_s3(
    s3_settings: S3Settings, location: str, loopback_only: SocketAudit
) -> None:
    cube = Datacube.open(location, SPEC, s3=s3_settings, net=NET)
    assert cube.location == location
    # No folder beside an S3 cube: a per-user one of the system temp folder.
    assert cube.scratch_dir().parts[-4:-2] == (f"darts-{os.getuid()}", "cubes")
    source = PatternTileSource(SPEC, TILE)
    window = Window(20, 180, 30, 190)
    ds = cube.load(GRID.bounds_of(window), source=source, fetch=True)
    assert sorted(source.fetched) == ["0_0", "0_1", "1_0", "1_1"]
    for name in ("dem", "cls"):
        np.testing.assert_array_equal(ds[name].values, source.expected(name, window))
    again = Datacube.open(location, SPEC, s3=s3_settings, net=NET, create=False)
    assert set(again.records()) == {"0_0", "0_1", "1_0", "1_1"}
    assert again.missing(["0_0", "2_2"]) == ["2_2"]
    other = CubeSpec(kind="other", grid=GRID, variables=SPEC.variables, chunk=64)
    with pytest.raises(CubeMismatchError, match=location):
        Datacube.open(location, other, s3=s3_settings, net=NET)


def test_absent_s3_cube_without_create(s3_settings: S3Settings, location: str) -> None:
    with pytest.raises(CubeNotFoundError, match=location):
        Datacube.open(location, SPEC, s3=s3_settings, net=NET, create=False)


def test_concurrent_s3_writers_redo_conflicting_commits(
    s3_settings: S3Settings, location: str
) -> None:
    """No lock spans machines: two writers of tiles sharing chunks conflict, and the
    loser redoes its write on the new tip, keeping the winner's pixels."""
    Datacube.open(location, SPEC, s3=s3_settings, net=NET)
    source = PatternTileSource(SPEC, TILE)
    errors: list[BaseException] = []

    def write(tiles: list[str]) -> None:
        try:
            Datacube.open(location, SPEC, s3=s3_settings, net=NET).fill(tiles, source)
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [
        threading.Thread(target=write, args=(tiles,))
        for tiles in (["0_0", "1_1", "2_2"], ["0_1", "1_0", "2_1"])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    cube = Datacube.open(location, SPEC, s3=s3_settings, net=NET)
    tiles = ["0_0", "0_1", "1_0", "1_1", "2_1", "2_2"]
    assert set(cube.records()) == set(tiles)
    window = Window(0, 300, 0, 300)
    ds = cube.read(window)
    np.testing.assert_array_equal(ds["dem"].values, source.expected("dem", window, tiles))


def test_offline_refuses_s3_cubes_before_connecting(
    location: str, offline_gate: NetworkGate, no_network: SocketAudit
) -> None:
    # No keys anywhere: the gate must refuse before credentials are even looked up.
    settings = S3Settings(endpoint_url="http://127.0.0.1:9", profile=None)
    with pytest.raises(OfflineError, match=r"127\.0\.0\.1:9/eodata/test-cubes") as info:
        Datacube.open(location, SPEC, s3=settings)
    assert "open the test-aux datacube" in info.value.purpose
    with pytest.raises(OfflineError):
        icechunk_storage(location, s3=settings, net=None, purpose="test")


def test_offline_settings_refuse_too(location: str, no_network: SocketAudit) -> None:
    with pytest.raises(OfflineError):
        Datacube.open(location, SPEC, net=NetworkSettings(offline=True))


def test_a_cube_opened_online_stops_at_the_gate(
    s3_settings: S3Settings, location: str, offline_gate: NetworkGate
) -> None:
    with offline_gate.offline_mode(False):
        cube = Datacube.open(location, SPEC, s3=s3_settings, net=NET)
    source = PatternTileSource(SPEC, TILE)
    for call in (
        lambda: cube.read(Window(0, 10, 0, 10)),
        lambda: cube.records(),
        lambda: cube.missing(["0_0"]),
        lambda: cube.load(GRID.bounds_of(Window(0, 10, 0, 10)), source=source, fetch=False),
    ):
        with pytest.raises(OfflineError):
            call()
    assert source.fetched == []


def test_local_paths_and_bad_locations(tmp_path: Path) -> None:
    icechunk_storage(tmp_path / "repo", s3=None, net=None, purpose="test")
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        icechunk_storage("s3://bucket-only", s3=None, net=None, purpose="test")
    with pytest.raises(ValueError, match="unsupported datacube location"):
        icechunk_storage("gs://bucket/x", s3=None, net=None, purpose="test")


def test_storage_failures_are_one_clear_error(
    s3_settings: S3Settings, location: str, tmp_path: Path
) -> None:
    with s3_stand_in(tmp_path, read_only=True) as read_only:  # like CDSE's eodata
        with pytest.raises(CubeStorageError) as info:
            Datacube.open(location, SPEC, s3=read_only, net=NET)
        message = str(info.value)
        assert f"could not open the test-aux datacube at {location}" in message
        assert "AccessDenied" in message and "\n" not in message
        assert "may read and write this bucket" in message
    wrong_key = S3Settings(
        endpoint_url=s3_settings.endpoint_url,
        access_key_id=s3_settings.access_key_id,
        secret_access_key="not-the-secret",
    )
    with pytest.raises(CubeStorageError, match="SignatureDoesNotMatch"):
        Datacube.open(location, SPEC, s3=wrong_key, net=NET)
