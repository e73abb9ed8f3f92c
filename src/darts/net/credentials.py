"""Find S3 keys without ever leaving the machine.

Order of precedence:

1. keys given explicitly in `S3Settings` (config file / flags);
2. a profile named explicitly in `S3Settings.profile` (`--aws-profile`). An explicit
   profile beats environment variables, as it does in botocore and the AWS CLI: a user
   who asks for profile "cdse" on a machine that also exports keys for another account
   means "cdse";
3. the standard environment variables AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
   (/ AWS_SESSION_TOKEN);
4. the default profile (AWS_PROFILE, else "default") in the shared credentials file
   (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials) or the config file.

botocore's full default chain is deliberately *not* used: after the files it asks the
EC2/ECS instance-metadata endpoints (169.254.169.254 …) over the network, which on an HPC
compute node is a hidden call that hangs for seconds and breaks the offline guarantee.
We reuse botocore's providers for the env vars and the INI files instead of parsing
them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3.session
import botocore.session
from botocore.credentials import (
    ConfigProvider,
    CredentialProvider,
    EnvProvider,
    SharedCredentialProvider,
)
from botocore.exceptions import BotoCoreError

from darts.net.errors import CredentialsError

if TYPE_CHECKING:
    from darts.net.settings import S3Settings

HOW_TO_PROVIDE_KEYS = (
    "Provide S3 keys with the environment variables AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or store them in a profile in ~/.aws/credentials and pass "
    "--aws-profile NAME. CDSE S3 keys are created in the CDSE S3 key manager "
    "(https://eodata-s3keysmanager.dataspace.copernicus.eu)."
)


@dataclass(frozen=True, repr=False)
class AwsCredentials:
    """A resolved key pair and where it came from (for messages, never the keys)."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    source: str = "explicit settings"
    # The profile the keys were read from, if any.
    profile: str | None = None

    def __repr__(self) -> str:
        return f"AwsCredentials(source={self.source!r}, access_key_id='<set>', secret='<set>')"

    __str__ = __repr__


def resolve_credentials(settings: S3Settings) -> AwsCredentials:
    """Resolve keys for `settings` by the precedence in the module docstring."""
    if settings.access_key_id or settings.secret_access_key:
        if not (settings.access_key_id and settings.secret_access_key):
            raise CredentialsError(
                "Only one of the S3 access key id and secret access key is set; "
                "both are needed. " + HOW_TO_PROVIDE_KEYS
            )
        return AwsCredentials(settings.access_key_id, settings.secret_access_key)

    session = botocore.session.Session(profile=settings.profile)
    # botocore honours AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE / AWS_PROFILE here.
    creds_file = str(
        Path(
            settings.credentials_file or session.get_config_variable("credentials_file")
        ).expanduser()
    )
    config_file = str(Path(session.get_config_variable("config_file")).expanduser())

    if settings.profile is not None:
        found = _load_profile(settings.profile, creds_file, config_file)
        if found is not None:
            return found
        raise CredentialsError(
            f"AWS profile {settings.profile!r} has no S3 keys (looked in {creds_file} and "
            f"{config_file}). {HOW_TO_PROVIDE_KEYS}"
        )

    from_env = _load(EnvProvider(), "environment variables")
    if from_env is not None:
        return from_env

    default_profile = session.get_config_variable("profile") or "default"
    found = _load_profile(default_profile, creds_file, config_file)
    if found is not None:
        return found
    raise CredentialsError(
        f"No S3 credentials found (no explicit keys, no AWS_ACCESS_KEY_ID / "
        f"AWS_SECRET_ACCESS_KEY, no profile {default_profile!r} in {creds_file}). "
        + HOW_TO_PROVIDE_KEYS
    )


def boto3_session(creds: AwsCredentials, region: str) -> boto3.session.Session:
    """A boto3 session that uses exactly `creds` and never looks for others."""
    # botocore reads the shared config file for the session's profile and raises
    # ProfileNotFound when the profile lives elsewhere (AWS_PROFILE naming a missing
    # profile, or a profile from --aws-credentials-file), although the keys are already
    # resolved. The keys and region are explicit, so the session needs no profile.
    core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    return boto3.session.Session(
        botocore_session=core,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        aws_session_token=creds.session_token,
        region_name=region,
    )


def _load_profile(profile: str, creds_file: str, config_file: str) -> AwsCredentials | None:
    from_creds = _load(
        SharedCredentialProvider(creds_file, profile),
        f"profile {profile!r} in {creds_file}",
        profile,
    )
    if from_creds is not None:
        return from_creds
    return _load(
        ConfigProvider(config_file, profile), f"profile {profile!r} in {config_file}", profile
    )


def _load(
    provider: CredentialProvider, source: str, profile: str | None = None
) -> AwsCredentials | None:
    try:
        creds = provider.load()
    except BotoCoreError as exc:
        # e.g. a malformed INI file, or only half a key pair in the env. botocore's
        # message names the variable or file, never the value.
        raise CredentialsError(
            f"Cannot read S3 keys from {source}: {exc}. {HOW_TO_PROVIDE_KEYS}"
        ) from None
    if creds is None:
        return None
    frozen = creds.get_frozen_credentials()
    if not frozen.access_key or not frozen.secret_key:
        return None
    return AwsCredentials(
        frozen.access_key, frozen.secret_key, frozen.token or None, source, profile
    )
