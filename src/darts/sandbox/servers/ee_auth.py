"""The sandbox's Google service account and the OAuth2 JWT-bearer exchange it uses.

Each :class:`~darts.sandbox.service.Sandbox` makes its own RSA key, writes it as a
service-account key file beside its config, and the Earth Engine stand-in verifies
assertions against the public half, as Google's token endpoint does. A client that
signs wrongly, with another key, for another audience or with an expired assertion
is refused (400 ``invalid_grant``) here as it would be there.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

EARTH_ENGINE_SCOPE = "https://www.googleapis.com/auth/earthengine"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SANDBOX_EE_PROJECT = "darts-sandbox"
# Google refuses assertions that claim more than an hour; allow a little clock skew.
_MAX_ASSERTION_S = 3600
_SKEW_S = 60


class InvalidGrant(Exception):
    """An assertion the token endpoint refuses; the message is the error_description."""


@dataclass(frozen=True, repr=False)
class SandboxServiceAccount:
    """A throwaway service account: an RSA key made fresh for one sandbox."""

    private_key: rsa.RSAPrivateKey
    key_id: str
    client_email: str = f"darts-sandbox@{SANDBOX_EE_PROJECT}.iam.gserviceaccount.com"
    project: str = SANDBOX_EE_PROJECT

    @classmethod
    def generate(cls) -> SandboxServiceAccount:
        return cls(
            rsa.generate_private_key(public_exponent=65537, key_size=2048), secrets.token_hex(20)
        )

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def key_file(self, token_uri: str) -> dict[str, str]:
        """The JSON of a Google service-account key file for this account."""
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        return {
            "type": "service_account",
            "project_id": self.project,
            "private_key_id": self.key_id,
            "private_key": pem,
            "client_email": self.client_email,
            "client_id": "000000000000000000000",
            "auth_uri": token_uri,
            "token_uri": token_uri,
        }

    def __repr__(self) -> str:
        return f"SandboxServiceAccount({self.client_email}, key_id={self.key_id[:8]}…)"


@dataclass
class TokenIssuer:
    """Verifies JWT-bearer assertions and remembers the access tokens it issued."""

    account: SandboxServiceAccount
    lifetime_s: int = 3600
    _tokens: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def exchange(self, assertion: str, audience: str) -> dict[str, Any]:
        verify_assertion(assertion, self.account, audience)
        return self.issue()

    def issue(self) -> dict[str, Any]:
        token = "ya29.sandbox-" + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.time() + self.lifetime_s
        return {"access_token": token, "expires_in": self.lifetime_s, "token_type": "Bearer"}

    def is_valid(self, token: str) -> bool:
        with self._lock:
            expires = self._tokens.get(token)
        return expires is not None and time.time() < expires

    def revoke_all(self) -> None:
        with self._lock:
            self._tokens.clear()


def verify_assertion(
    assertion: str, account: SandboxServiceAccount, audience: str
) -> dict[str, Any]:
    """The claims of a valid assertion for ``account``; raises :class:`InvalidGrant`."""
    parts = assertion.split(".")
    if len(parts) != 3:
        raise InvalidGrant(
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe"
        )
    try:
        header = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
        signature = _b64decode(parts[2])
    except ValueError:
        raise InvalidGrant("Invalid JWT: the assertion is not base64url-encoded JSON") from None
    if not isinstance(header, dict) or header.get("alg") != "RS256":
        raise InvalidGrant("Invalid JWT: only RS256 signatures are accepted")
    try:
        account.public_key.verify(
            signature, f"{parts[0]}.{parts[1]}".encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        raise InvalidGrant("Invalid JWT Signature.") from None
    if not isinstance(claims, dict):
        raise InvalidGrant("Invalid JWT: the claims are not an object")
    if claims.get("iss") != account.client_email:
        raise InvalidGrant("Invalid JWT: iss is not a known service account")
    if claims.get("aud") != audience:
        raise InvalidGrant(f"Invalid JWT: aud must be {audience}")
    scopes = str(claims.get("scope", "")).split()
    if EARTH_ENGINE_SCOPE not in scopes:
        raise InvalidGrant("Invalid JWT: the scope does not include Earth Engine")
    now = time.time()
    try:
        issued, expires = float(claims["iat"]), float(claims["exp"])
    except (KeyError, TypeError, ValueError):
        raise InvalidGrant("Invalid JWT: iat and exp are required") from None
    if issued > now + _SKEW_S or expires < now - _SKEW_S or expires - issued > _MAX_ASSERTION_S:
        raise InvalidGrant(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
            "reasonable timeframe. Check your iat and exp values in the JWT claim."
        )
    return claims


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
