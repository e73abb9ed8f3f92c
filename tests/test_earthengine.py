"""The Earth Engine client and credentials, against the sandbox's Earth Engine stand-in."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from darts.errors import DartsError
from darts.net import HttpClient, NetworkSettings, OfflineError, RemoteError
from darts.net.earthengine import (
    EarthEngineAuthError,
    EarthEngineClient,
    EarthEngineCredentials,
    EarthEngineError,
    affine_grid,
)
from darts.sandbox.layout import WorldLayout
from darts.sandbox.servers.faults import FaultConfig
from darts.sandbox.service import Sandbox
from darts.sources.tcvis import TCVIS_EE_COLLECTIONS, mosaic_expression

FAST = NetworkSettings(timeout_s=30.0, max_retries=8, backoff_base_s=0.01, backoff_max_s=0.05)
BANDS = ["TCB_slope", "TCG_slope", "TCW_slope"]
PERIOD = "2001-2020"


@pytest.fixture
def http() -> Iterator[HttpClient]:
    with HttpClient(FAST) as client:
        yield client


@pytest.fixture
def key_file(sandbox: Sandbox, tmp_path: Path) -> Path:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(sandbox.ee_key_file()))
    return path


def cog(world: WorldLayout) -> Path:
    (path,) = sorted((world.tcvis_data / PERIOD).glob("*.tif"))
    return path


def cog_grid(world: WorldLayout, row_shift: int = 0, col_shift: int = 0) -> dict:
    """The COG's own grid, moved by whole pixels (so partly outside the TCVIS box)."""
    with rasterio.open(cog(world)) as dataset:
        t = dataset.transform
        return affine_grid(
            dataset.width,
            dataset.height,
            (t.a, 0.0, t.c + col_shift * t.a, 0.0, t.e, t.f + row_shift * t.e),
            "EPSG:4326",
        )


def client_for(
    sandbox: Sandbox,
    credentials: EarthEngineCredentials,
    http: HttpClient,
    project: str | None = None,
) -> EarthEngineClient:
    ep = sandbox.endpoints
    return EarthEngineClient(ep.earth_engine_url, project or ep.ee_project, credentials, http)


def pixels(client: EarthEngineClient, world: WorldLayout, asset: str | None = None) -> np.ndarray:
    return client.compute_pixels(
        mosaic_expression(asset or TCVIS_EE_COLLECTIONS[PERIOD]),
        grid=cog_grid(world),
        band_ids=BANDS,
        purpose="TCVIS test pixels",
    )


def requests_to(sandbox: Sandbox, fragment: str) -> list[dict]:
    return [r for r in sandbox.injector("earthengine").requests() if fragment in r["path"]]


# -- credentials -------------------------------------------------------------------------


@pytest.mark.usefixtures("loopback_only")
def test_service_account_token_is_exchanged_once_and_cached(
    sandbox: Sandbox, sandbox_world: WorldLayout, key_file: Path, http: HttpClient
) -> None:
    sandbox.clear_requests()
    credentials = EarthEngineCredentials.from_settings(key_file, "darts-sandbox")
    client = client_for(sandbox, credentials, http)
    first = pixels(client, sandbox_world)
    second = pixels(client, sandbox_world)
    np.testing.assert_array_equal(first, second)
    assert credentials.exchanges == 1
    assert len(requests_to(sandbox, "/token")) == 1
    assert len(requests_to(sandbox, "computePixels")) == 2


@pytest.mark.usefixtures("loopback_only")
def test_an_access_token_file_works_without_any_exchange(
    sandbox: Sandbox, sandbox_world: WorldLayout, key_file: Path, http: HttpClient, tmp_path: Path
) -> None:
    token = EarthEngineCredentials.from_settings(key_file, "darts-sandbox").access_token(http)
    token_file = tmp_path / "token.txt"
    token_file.write_text(token + "\n")
    sandbox.clear_requests()
    credentials = EarthEngineCredentials.from_settings(token_file, "darts-sandbox")
    assert pixels(client_for(sandbox, credentials, http), sandbox_world).shape
    assert requests_to(sandbox, "/token") == []


@pytest.mark.usefixtures("loopback_only")
def test_a_wrong_key_is_refused_with_a_clear_message(
    sandbox: Sandbox, sandbox_world: WorldLayout, http: HttpClient, tmp_path: Path
) -> None:
    forged = dict(sandbox.ee_key_file())
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged["private_key"] = other_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = tmp_path / "stale-key.json"
    path.write_text(json.dumps(forged))
    credentials = EarthEngineCredentials.from_settings(path, "darts-sandbox")
    with pytest.raises(EarthEngineAuthError) as caught:
        pixels(client_for(sandbox, credentials, http), sandbox_world)
    message = str(caught.value)
    assert isinstance(caught.value, DartsError)
    assert str(path) in message and "Invalid JWT Signature" in message
    assert "BEGIN PRIVATE KEY" not in message


@pytest.mark.parametrize(("has_file", "project"), [(False, "darts-sandbox"), (True, None)])
def test_missing_credentials_or_project_say_how_to_authenticate(
    key_file: Path, has_file: bool, project: str | None
) -> None:
    with pytest.raises(EarthEngineAuthError) as caught:
        EarthEngineCredentials.from_settings(key_file if has_file else None, project)
    message = str(caught.value)
    for hint in (
        "service-account key",
        "--ee-credentials-file",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "--ee-project",
    ):
        assert hint in message


def test_unusable_credential_files_are_named(tmp_path: Path) -> None:
    user = tmp_path / "adc.json"
    user.write_text(json.dumps({"type": "authorized_user", "refresh_token": "x"}))
    with pytest.raises(EarthEngineAuthError, match="authorized_user") as caught:
        EarthEngineCredentials.from_settings(user, "p")
    assert str(user) in str(caught.value)
    with pytest.raises(EarthEngineAuthError, match="does not exist"):
        EarthEngineCredentials.from_settings(tmp_path / "missing.json", "p")
    broken = tmp_path / "broken.json"
    broken.write_text('{"type": "service_account"')
    with pytest.raises(EarthEngineAuthError, match="not valid JSON"):
        EarthEngineCredentials.from_settings(broken, "p")


@pytest.mark.usefixtures("loopback_only")
def test_rejected_token_is_a_clear_401_message(
    sandbox: Sandbox, sandbox_world: WorldLayout, http: HttpClient, tmp_path: Path
) -> None:
    token_file = tmp_path / "expired-token.txt"
    token_file.write_text("ya29.expired-long-ago\n")
    credentials = EarthEngineCredentials.from_settings(token_file, "darts-sandbox")
    with pytest.raises(EarthEngineAuthError) as caught:
        pixels(client_for(sandbox, credentials, http), sandbox_world)
    message = str(caught.value)
    assert "'darts-sandbox'" in message and str(token_file) in message and "401" in message
    assert "ya29.expired-long-ago" not in message


@pytest.mark.usefixtures("loopback_only")
def test_a_project_the_account_may_not_use_is_named(
    sandbox: Sandbox, sandbox_world: WorldLayout, key_file: Path, http: HttpClient
) -> None:
    credentials = EarthEngineCredentials.from_settings(key_file, "someone-elses-project")
    client = client_for(sandbox, credentials, http, project="someone-elses-project")
    with pytest.raises(EarthEngineAuthError, match=r"'someone-elses-project'.*403"):
        pixels(client, sandbox_world)


@pytest.mark.usefixtures("loopback_only")
def test_earth_engine_error_messages_are_passed_on(
    sandbox: Sandbox, sandbox_world: WorldLayout, key_file: Path, http: HttpClient
) -> None:
    client = client_for(
        sandbox, EarthEngineCredentials.from_settings(key_file, "darts-sandbox"), http
    )
    with pytest.raises(EarthEngineError) as caught:
        pixels(client, sandbox_world, asset="users/nobody/NoSuchCollection")
    assert caught.value.status == 404
    assert "users/nobody/NoSuchCollection" in str(caught.value) and "not found" in str(caught.value)
    assert not isinstance(caught.value, EarthEngineAuthError)


@pytest.mark.usefixtures("no_network")
def test_offline_refuses_before_any_request(
    sandbox: Sandbox, sandbox_world: WorldLayout, key_file: Path, offline_gate: object
) -> None:
    sandbox.clear_requests()
    with HttpClient(FAST) as http:
        credentials = EarthEngineCredentials.from_settings(key_file, "darts-sandbox")
        with pytest.raises(OfflineError, match="TCVIS test pixels"):
            pixels(client_for(sandbox, credentials, http), sandbox_world)
        # The token exchange itself is gated too.
        with pytest.raises(OfflineError, match="access token"):
            credentials.access_token(http)
    assert sandbox.injector("earthengine").requests() == []


@pytest.mark.usefixtures("loopback_only")
def test_token_endpoint_503_is_retried(
    sandbox: Sandbox, sandbox_world: WorldLayout, key_file: Path, http: HttpClient
) -> None:
    sandbox.clear_requests()
    sandbox.set_faults(
        "earthengine", FaultConfig(error_rate=0.5, error_statuses=(503,), match="^/token$")
    )
    try:
        credentials = EarthEngineCredentials.from_settings(key_file, "darts-sandbox")
        attempts = 0
        while 503 not in [r["status"] for r in requests_to(sandbox, "/token")] and attempts < 10:
            credentials.invalidate()
            credentials.access_token(http)
            attempts += 1
    finally:
        sandbox.set_faults("earthengine", FaultConfig())
    statuses = [r["status"] for r in requests_to(sandbox, "/token")]
    assert 503 in statuses and statuses.count(200) == attempts == credentials.exchanges


# -- the stand-in itself -------------------------------------------------------------------


@pytest.mark.usefixtures("loopback_only")
def test_stand_in_requires_a_bearer_token(
    sandbox: Sandbox, sandbox_world: WorldLayout, http: HttpClient
) -> None:
    url = f"{sandbox.endpoints.earth_engine_url}/v1/projects/darts-sandbox/image:computePixels"
    body = {
        "expression": mosaic_expression(TCVIS_EE_COLLECTIONS[PERIOD]),
        "fileFormat": "NPY",
        "grid": cog_grid(sandbox_world),
    }
    with pytest.raises(RemoteError) as caught:
        http.post_json(url, body, purpose="no token")
    assert caught.value.status == 401
    assert json.loads(caught.value.body_excerpt)["error"]["status"] == "UNAUTHENTICATED"


@pytest.mark.usefixtures("loopback_only")
def test_stand_in_token_endpoint_refuses_other_grants(sandbox: Sandbox, http: HttpClient) -> None:
    with pytest.raises(RemoteError) as caught:
        http.request(
            "POST",
            sandbox.endpoints.earth_engine_url + "/token",
            purpose="bad grant",
            data=b"grant_type=password&username=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert caught.value.status == 400
    assert json.loads(caught.value.body_excerpt)["error"] == "unsupported_grant_type"


@pytest.mark.usefixtures("loopback_only")
def test_stand_in_honours_a_shifted_grid_and_zero_outside_the_box(
    sandbox: Sandbox, sandbox_world: WorldLayout, key_file: Path, http: HttpClient
) -> None:
    client = client_for(
        sandbox, EarthEngineCredentials.from_settings(key_file, "darts-sandbox"), http
    )
    with rasterio.open(cog(sandbox_world)) as dataset:
        disk = dataset.read()
    # 100 rows down and 300 columns left: the left 300 columns lie west of the box.
    answer = client.compute_pixels(
        mosaic_expression(TCVIS_EE_COLLECTIONS[PERIOD]),
        grid=cog_grid(sandbox_world, row_shift=100, col_shift=-300),
        band_ids=["TCW_slope", "TCB_slope"],
        purpose="shifted grid",
    )
    assert answer.dtype.names == ("TCW_slope", "TCB_slope")
    height, width = disk.shape[1:]
    np.testing.assert_array_equal(
        answer["TCB_slope"][: height - 100, 300:], disk[0, 100:, : width - 300]
    )
    np.testing.assert_array_equal(
        answer["TCW_slope"][: height - 100, 300:], disk[2, 100:, : width - 300]
    )
    assert not answer["TCB_slope"][:, :300].any() and not answer["TCB_slope"][height - 100 :].any()


@pytest.mark.usefixtures("loopback_only")
def test_stand_in_resamples_other_grids(
    sandbox: Sandbox, sandbox_world: WorldLayout, key_file: Path, http: HttpClient
) -> None:
    client = client_for(
        sandbox, EarthEngineCredentials.from_settings(key_file, "darts-sandbox"), http
    )
    with rasterio.open(cog(sandbox_world)) as dataset:
        t, disk = dataset.transform, dataset.read(2)
        width, height = dataset.width, dataset.height
    # Pixels three times as large, starting on the COG's corner: nearest neighbour
    # picks the COG pixel under each coarse pixel's centre.
    coarse = affine_grid(
        math.ceil(width / 3),
        math.ceil(height / 3),
        (3 * t.a, 0.0, t.c, 0.0, 3 * t.e, t.f),
        "EPSG:4326",
    )
    answer = client.compute_pixels(
        mosaic_expression(TCVIS_EE_COLLECTIONS[PERIOD]),
        grid=coarse,
        band_ids=["TCG_slope"],
        purpose="coarse",
    )
    rows, cols = height // 3, width // 3
    np.testing.assert_array_equal(
        answer["TCG_slope"][:rows, :cols], disk[1 : 3 * rows : 3, 1 : 3 * cols : 3]
    )


@pytest.mark.usefixtures("loopback_only")
def test_sandbox_config_names_the_stand_in_and_a_working_key(
    sandbox: Sandbox,
    sandbox_config: Path,
    sandbox_world: WorldLayout,
    http: HttpClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import stat
    import tomllib

    from darts.cli.main import main

    endpoints = tomllib.loads(sandbox_config.read_text())["darts"]["endpoints"]
    assert endpoints["earth-engine-url"] == sandbox.endpoints.earth_engine_url
    assert endpoints["ee-project"] == "darts-sandbox"
    assert endpoints["tcvis-source"] == "gee"
    key_path = Path(endpoints["ee-credentials-file"])
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key = json.loads(key_path.read_text())
    assert key["type"] == "service_account"
    assert key["token_uri"] == sandbox.endpoints.earth_engine_url + "/token"
    credentials = EarthEngineCredentials.from_settings(key_path, endpoints["ee-project"])
    assert pixels(client_for(sandbox, credentials, http), sandbox_world).shape
    # The settings layer accepts every key the sandbox writes.
    assert main(["--config-file", str(sandbox_config), "debug-paths"]) == 0
    capsys.readouterr()
