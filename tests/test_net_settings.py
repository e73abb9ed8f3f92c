"""NetworkSettings / S3Settings and S3 credential resolution (no secrets in output)."""

from __future__ import annotations

from pathlib import Path

import pytest

from darts.net import CredentialsError, NetworkSettings, S3Settings
from darts.net.credentials import resolve_credentials

ENV_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CREDENTIAL_EXPIRATION",
)


@pytest.fixture
def aws_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME and no AWS_* variables, so only what a test writes counts."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".aws").mkdir()
    return tmp_path


def write_credentials(path: Path, profiles: dict[str, tuple[str, str]]) -> None:
    lines = []
    for name, (key, secret) in profiles.items():
        lines += [f"[{name}]", f"aws_access_key_id = {key}", f"aws_secret_access_key = {secret}"]
    path.write_text("\n".join(lines) + "\n")


def test_network_settings_defaults_and_timeout_pair() -> None:
    s = NetworkSettings()
    assert (s.timeout_pair, s.max_retries, s.max_concurrency, s.offline) == ((60, 60), 5, 4, False)
    assert NetworkSettings(timeout_s=(3, 30)).timeout_pair == (3.0, 30.0)
    for bad in ({"timeout_s": 0}, {"max_retries": -1}, {"max_concurrency": 0}):
        with pytest.raises(ValueError):
            NetworkSettings(**bad)  # type: ignore[arg-type]


def test_s3_defaults_are_cdse() -> None:
    s = S3Settings()
    assert s.endpoint_url == "https://eodata.dataspace.copernicus.eu"
    assert s.region == "default"


def test_repr_and_str_never_show_secrets() -> None:
    s = S3Settings(access_key_id="AKIDEXAMPLE123", secret_access_key="wJalrSECRETKEY")
    for text in (repr(s), str(s), f"{s}", repr([s])):
        assert "AKIDEXAMPLE123" not in text and "wJalrSECRETKEY" not in text
        assert "<set>" in text
    creds = resolve_credentials(s)
    assert "wJalrSECRETKEY" not in repr(creds) and "AKIDEXAMPLE123" not in str(creds)


def test_explicit_beats_env_beats_default_profile(
    aws_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_credentials(aws_home / ".aws" / "credentials", {"default": ("FILEKEY", "FILESECRET")})
    creds = resolve_credentials(S3Settings())
    assert (creds.access_key_id, creds.secret_access_key) == ("FILEKEY", "FILESECRET")
    assert "profile 'default'" in creds.source

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "ENVTOKEN")
    creds = resolve_credentials(S3Settings())
    assert (creds.access_key_id, creds.session_token) == ("ENVKEY", "ENVTOKEN")
    assert creds.source == "environment variables"

    creds = resolve_credentials(S3Settings(access_key_id="EXPKEY", secret_access_key="EXPSECRET"))
    assert (creds.access_key_id, creds.secret_access_key) == ("EXPKEY", "EXPSECRET")


def test_named_profile_from_shared_credentials_file(
    aws_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    custom = aws_home / "elsewhere.ini"
    write_credentials(custom, {"cdse": ("CDSEKEY", "CDSESECRET"), "other": ("O", "OS")})
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(custom))
    # An explicitly named profile wins over env keys (botocore / AWS CLI behaviour).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET")
    creds = resolve_credentials(S3Settings(profile="cdse"))
    assert (creds.access_key_id, creds.secret_access_key) == ("CDSEKEY", "CDSESECRET")
    assert str(custom) in creds.source


def test_aws_profile_env_selects_default_profile(
    aws_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_credentials(aws_home / ".aws" / "credentials", {"cdse": ("CDSEKEY", "CDSESECRET")})
    monkeypatch.setenv("AWS_PROFILE", "cdse")
    assert resolve_credentials(S3Settings()).access_key_id == "CDSEKEY"


def test_missing_credentials_say_how_to_provide_them(aws_home: Path) -> None:
    with pytest.raises(CredentialsError) as info:
        resolve_credentials(S3Settings())
    message = str(info.value)
    assert "AWS_ACCESS_KEY_ID" in message and "--aws-profile" in message
    assert "CDSE S3 key manager" in message


def test_missing_named_profile(aws_home: Path) -> None:
    write_credentials(aws_home / ".aws" / "credentials", {"default": ("K", "SUPERSECRET")})
    with pytest.raises(CredentialsError, match="'cdse'") as info:
        resolve_credentials(S3Settings(profile="cdse"))
    assert "SUPERSECRET" not in str(info.value)


def test_half_a_key_pair_is_an_error(aws_home: Path) -> None:
    with pytest.raises(CredentialsError, match="both are needed") as info:
        resolve_credentials(S3Settings(access_key_id="ONLYKEY"))
    assert "ONLYKEY" not in str(info.value)
