"""Google OAuth2 credentials for Earth Engine, headless and without hidden calls.

The reference implementation fell back to an interactive browser login on any error
(pitfall 17), and the Google client libraries look for credentials by probing the
cloud metadata server (a connection off the machine). Neither is acceptable on an HPC
compute node, so credentials here come from exactly one file, named by the user:

- a service-account key (JSON, ``"type": "service_account"``): a JWT signed with the
  key (RS256) is exchanged at the key's ``token_uri`` for an access token, through
  the `HttpClient` so the offline gate, timeouts and retries cover it; the token is
  cached until shortly before it expires;
- a file holding an access token (e.g. ``gcloud auth print-access-token > file``):
  used as is, never refreshed; when it expires the user writes a new one.

Anything else fails with one message that says how to authenticate.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from darts.errors import DartsError
from darts.net.errors import CredentialsError, RemoteError
from darts.net.http import HttpClient

EARTH_ENGINE_SCOPE = "https://www.googleapis.com/auth/earthengine"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

HOW_TO_AUTHENTICATE = (
    "To use Earth Engine without a browser, create a service-account key for a Google "
    "Cloud project registered for Earth Engine (Cloud console > IAM > Service accounts "
    "> Keys > Add key > JSON), then pass --ee-credentials-file KEY.json (or set "
    "GOOGLE_APPLICATION_CREDENTIALS) and --ee-project PROJECT (or set EE_PROJECT). A file "
    "holding an access token (`gcloud auth print-access-token > token.txt`) also works "
    "until the token expires (about an hour)."
)

# Google accepts assertions valid for at most one hour.
_ASSERTION_LIFETIME_S = 3600
# Renew a cached token this long before it expires, so a request never carries a token
# that expires in flight.
_EXPIRY_MARGIN_S = 120.0


class EarthEngineAuthError(CredentialsError, DartsError):
    """Earth Engine credentials are missing, unreadable or refused.

    A `CredentialsError` for the network layer's callers and a `DartsError` for the
    CLI, which prints the message (it says how to fix it, never a key or token).
    """


@dataclass(frozen=True, repr=False)
class ServiceAccountKey:
    """The parts of a service-account key JSON file that signing needs."""

    path: Path
    client_email: str
    token_uri: str
    private_key_id: str | None
    private_key: rsa.RSAPrivateKey

    def __repr__(self) -> str:
        return f"ServiceAccountKey({self.client_email!r}, path={str(self.path)!r})"

    @classmethod
    def from_json(cls, path: Path, data: dict[str, Any]) -> ServiceAccountKey:
        missing = [
            name
            for name in ("client_email", "private_key", "token_uri")
            if not isinstance(data.get(name), str) or not data[name]
        ]
        if missing:
            raise EarthEngineAuthError(
                f"Earth Engine credentials file {path} is a service-account key without "
                f"{', '.join(missing)}; download a new JSON key for the service account. "
                + HOW_TO_AUTHENTICATE
            )
        try:
            key = serialization.load_pem_private_key(data["private_key"].encode(), None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise EarthEngineAuthError(
                f"the private_key in Earth Engine credentials file {path} is not an "
                "unencrypted RSA key in PEM form; download a new JSON key for the service "
                "account."
            )
        key_id = data.get("private_key_id")
        return cls(
            path=path,
            client_email=data["client_email"],
            token_uri=data["token_uri"],
            private_key_id=key_id if isinstance(key_id, str) and key_id else None,
            private_key=key,
        )

    def assertion(self, scope: str, now: float) -> str:
        """A signed JWT asking ``token_uri`` for an access token with ``scope``."""
        header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
        if self.private_key_id:
            header["kid"] = self.private_key_id
        issued = int(now)
        claims = {
            "iss": self.client_email,
            "scope": scope,
            "aud": self.token_uri,
            "iat": issued,
            "exp": issued + _ASSERTION_LIFETIME_S,
        }
        signing_input = f"{_b64url_json(header)}.{_b64url_json(claims)}".encode("ascii")
        signature = self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode('ascii')}.{_b64url(signature)}"


@dataclass
class _Token:
    value: str
    expires_at: float | None  # time.monotonic(); None: unknown (a token file)


class EarthEngineCredentials:
    """Where Earth Engine access tokens come from: a service-account key or a token file.

    Thread-safe: workers fetching tiles in parallel share one token, and only one of
    them exchanges the key when it is due.
    """

    def __init__(
        self,
        path: Path,
        *,
        key: ServiceAccountKey | None = None,
        token: str | None = None,
        scope: str = EARTH_ENGINE_SCOPE,
    ) -> None:
        if (key is None) == (token is None):
            raise ValueError("give exactly one of a service-account key and a token")
        self.path = path
        self.key = key
        self.scope = scope
        self._lock = threading.Lock()
        self._token = _Token(token, None) if token is not None else None
        self.exchanges = 0  # token exchanges made, for run summaries and tests

    def __repr__(self) -> str:
        return f"EarthEngineCredentials({self.description})"

    @classmethod
    def from_settings(
        cls, credentials_file: Path | None, project: str | None
    ) -> EarthEngineCredentials:
        """Credentials from ``--ee-credentials-file``; refuses to go on without a
        project, since every Earth Engine request is billed to one."""
        if credentials_file is None or not project:
            lacking = " and ".join(
                what
                for what, given in (
                    ("no --ee-credentials-file", credentials_file is not None),
                    ("no --ee-project", bool(project)),
                )
                if not given
            )
            raise EarthEngineAuthError(
                f"Earth Engine needs credentials ({lacking}). {HOW_TO_AUTHENTICATE}"
            )
        return cls.from_file(Path(credentials_file))

    @classmethod
    def from_file(cls, path: Path) -> EarthEngineCredentials:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise EarthEngineAuthError(
                f"Earth Engine credentials file {path} does not exist. {HOW_TO_AUTHENTICATE}"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise EarthEngineAuthError(
                f"cannot read Earth Engine credentials file {path}: {exc}"
            ) from None
        stripped = text.strip()
        if stripped.startswith("{"):
            return cls._from_json(path, stripped)
        if not stripped or len(stripped.split()) != 1:
            raise EarthEngineAuthError(
                f"Earth Engine credentials file {path} should hold a service-account key "
                "(JSON) or exactly one access token on one line, but "
                + ("is empty. " if not stripped else "holds several words. ")
                + HOW_TO_AUTHENTICATE
            )
        return cls(path, token=stripped)

    @classmethod
    def _from_json(cls, path: Path, text: str) -> EarthEngineCredentials:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise EarthEngineAuthError(
                f"Earth Engine credentials file {path} is not valid JSON ({exc}). "
                + HOW_TO_AUTHENTICATE
            ) from None
        kind = data.get("type") if isinstance(data, dict) else None
        if kind != "service_account":
            # "authorized_user" (gcloud application-default login) would need a refresh
            # flow with a client secret; a service account is the headless way.
            raise EarthEngineAuthError(
                f"Earth Engine credentials file {path} is a JSON file of type {kind!r}, not "
                "a service-account key (type 'service_account'). " + HOW_TO_AUTHENTICATE
            )
        return cls(path, key=ServiceAccountKey.from_json(path, data))

    # -- use --------------------------------------------------------------------------

    @property
    def refreshable(self) -> bool:
        """Whether a refused token can be replaced by a new one (service accounts)."""
        return self.key is not None

    @property
    def description(self) -> str:
        """What the credentials are, for messages (never the secret)."""
        if self.key is not None:
            return f"service account {self.key.client_email} (key file {self.path})"
        return f"the access token in {self.path}"

    def access_token(self, http: HttpClient) -> str:
        """A valid access token, exchanging the service-account key first if needed."""
        with self._lock:
            token = self._token
            if token is None or (
                token.expires_at is not None and time.monotonic() >= token.expires_at
            ):
                token = self._token = self._exchange(http)
            return token.value

    def invalidate(self) -> None:
        """Forget a token the server refused, so the next request gets a new one."""
        if self.refreshable:
            with self._lock:
                self._token = None

    def _exchange(self, http: HttpClient) -> _Token:
        key = self.key
        assert key is not None  # a token file's token is set at construction
        body = urlencode(
            {"grant_type": JWT_BEARER_GRANT, "assertion": key.assertion(self.scope, time.time())}
        ).encode("ascii")
        started = time.monotonic()
        try:
            response = http.request(
                "POST",
                key.token_uri,
                data=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                purpose=f"Earth Engine access token for service account {key.client_email}",
            )
        except RemoteError as exc:
            if 400 <= exc.status < 500:
                raise EarthEngineAuthError(
                    f"the token endpoint {key.token_uri} refused service account "
                    f"{key.client_email} (key file {self.path}): "
                    f"{_oauth_error(exc.body_excerpt)}. The key may be revoked, deleted or "
                    "for another account; create a new key for the service account."
                ) from None
            raise
        try:
            answer = response.json()
            value = answer["access_token"]
            lifetime = float(answer.get("expires_in", _ASSERTION_LIFETIME_S))
        except (ValueError, KeyError, TypeError):
            raise EarthEngineAuthError(
                f"the token endpoint {key.token_uri} did not return an access token for "
                f"service account {key.client_email}"
            ) from None
        if not isinstance(value, str) or not value:
            raise EarthEngineAuthError(
                f"the token endpoint {key.token_uri} returned an empty access token"
            )
        self.exchanges += 1
        # Counted from before the request, so network time never makes us think the
        # token lives longer than it does.
        return _Token(value, started + max(lifetime - _EXPIRY_MARGIN_S, 0.0))


def _oauth_error(excerpt: str) -> str:
    """The ``error_description`` (else ``error``) of an OAuth2 error body."""
    try:
        data = json.loads(excerpt)
    except ValueError:
        return excerpt or "no reason given"
    if isinstance(data, dict):
        description = data.get("error_description") or data.get("error")
        if isinstance(description, str) and description:
            return description
    return excerpt


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_json(data: dict[str, Any]) -> str:
    return _b64url(json.dumps(data, separators=(",", ":")).encode("utf-8"))
