"""AWS Signature Version 4 verification for the S3 stand-in.

moto accepts any signature, and its optional IAM mode is process-global (a class-level
request counter and a module setting), hands out its own random keys and would also
apply to any ``mock_aws`` test in the same process. CDSE refuses unsigned or wrongly
signed requests, so the stand-in checks signatures itself, before moto sees a request:
the signature is recomputed from the request as received and compared with the one the
client sent (SigV4 spec: canonical request -> string to sign -> HMAC chain).

Both forms are accepted: the ``Authorization`` header (boto3, obstore, GDAL) and
presigned URLs (``X-Amz-*`` query parameters). The payload hash is taken from
``x-amz-content-sha256`` as sent (``UNSIGNED-PAYLOAD``, ``STREAMING-*`` or a hex digest);
whether a hex digest matches the body is checked by the caller for requests with a body.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from darts.sandbox.servers.runner import WSGIEnviron

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
# S3 refuses requests whose timestamp is more than 15 minutes off.
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class AuthFailure:
    """Why a request was refused, in S3's terms."""

    status: int
    code: str
    message: str


@dataclass(frozen=True)
class _Signed:
    access_key: str
    date: str  # yyyymmdd of the credential scope
    region: str
    service: str
    terminator: str
    timestamp: str  # x-amz-date, yyyymmddThhmmssZ
    signed_headers: list[str]
    signature: str
    payload_hash: str
    presigned: bool
    expires_s: int | None = None


class SigV4Verifier:
    """Checks that requests are signed with one access key / secret key pair."""

    def __init__(
        self, access_key: str, secret_key: str, clock: type[dt.datetime] = dt.datetime
    ) -> None:
        self.access_key = access_key
        self._secret = secret_key
        self._clock = clock
        self._signing_keys: dict[tuple[str, str, str], bytes] = {}

    def verify(self, environ: WSGIEnviron) -> AuthFailure | None:
        """None if the request is correctly signed, else why it is not."""
        parsed = _parse(environ)
        if isinstance(parsed, AuthFailure):
            return parsed
        if parsed.access_key != self.access_key:
            return AuthFailure(
                403,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
            )
        failure = self._check_scope_and_time(parsed)
        if failure is not None:
            return failure
        if "host" not in parsed.signed_headers:
            return AuthFailure(400, "AuthorizationHeaderMalformed", "host must be signed")
        key = self._signing_key(parsed.date, parsed.region, parsed.service)
        scope = f"{parsed.date}/{parsed.region}/{parsed.service}/{parsed.terminator}"
        headers = _canonical_headers(environ, parsed.signed_headers)
        if headers is None:
            return _mismatch()
        query = _canonical_query(environ.get("QUERY_STRING", ""), parsed.presigned)
        for uri in _canonical_uris(environ):
            canonical = "\n".join(
                [
                    environ.get("REQUEST_METHOD", "GET"),
                    uri,
                    query,
                    headers,
                    ";".join(parsed.signed_headers),
                    parsed.payload_hash,
                ]
            )
            to_sign = "\n".join(
                [ALGORITHM, parsed.timestamp, scope, _sha256_hex(canonical.encode())]
            )
            expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
            if hmac.compare_digest(expected, parsed.signature):
                return None
        return _mismatch()

    def _check_scope_and_time(self, signed: _Signed) -> AuthFailure | None:
        if signed.terminator != "aws4_request" or signed.service != "s3":
            return AuthFailure(
                400,
                "AuthorizationHeaderMalformed",
                "the credential scope must be <date>/<region>/s3/aws4_request",
            )
        try:
            when = dt.datetime.strptime(signed.timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        except ValueError:
            return AuthFailure(403, "AccessDenied", "X-Amz-Date is not yyyymmddThhmmssZ")
        if signed.timestamp[:8] != signed.date:
            return AuthFailure(
                400, "AuthorizationHeaderMalformed", "the credential date does not match"
            )
        now = self._clock.now(dt.UTC)
        if signed.presigned:
            if signed.expires_s is None or now > when + dt.timedelta(seconds=signed.expires_s):
                return AuthFailure(403, "AccessDenied", "Request has expired")
            if when - now > MAX_CLOCK_SKEW:
                return AuthFailure(403, "AccessDenied", "Request is not yet valid")
        elif abs(now - when) > MAX_CLOCK_SKEW:
            return AuthFailure(
                403,
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
            )
        return None

    def _signing_key(self, date: str, region: str, service: str) -> bytes:
        # Derived keys are valid for a day; caching saves four HMACs per request.
        cache_key = (date, region, service)
        key = self._signing_keys.get(cache_key)
        if key is None:
            key = ("AWS4" + self._secret).encode()
            for part in (date, region, service, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._signing_keys[cache_key] = key
        return key


def _mismatch() -> AuthFailure:
    return AuthFailure(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    )


def _parse(environ: WSGIEnviron) -> _Signed | AuthFailure:
    authorization = environ.get("HTTP_AUTHORIZATION")
    if authorization:
        return _parse_header(environ, authorization)
    query = environ.get("QUERY_STRING", "")
    if "X-Amz-Signature=" in query or "x-amz-signature=" in query.lower():
        return _parse_query(query)
    return AuthFailure(403, "AccessDenied", "Access Denied")


def _parse_header(environ: WSGIEnviron, authorization: str) -> _Signed | AuthFailure:
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        return AuthFailure(
            400,
            "InvalidArgument",
            f"Unsupported Authorization Type: only {ALGORITHM} is accepted",
        )
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, _, value = item.strip().partition("=")
        fields[name] = value.strip()
    try:
        credential = fields["Credential"]
        signed_headers = fields["SignedHeaders"]
        signature = fields["Signature"]
    except KeyError:
        return AuthFailure(400, "AuthorizationHeaderMalformed", "incomplete Authorization")
    timestamp = environ.get("HTTP_X_AMZ_DATE")
    if not timestamp:
        return AuthFailure(403, "AccessDenied", "AWS authentication requires x-amz-date")
    payload_hash = environ.get("HTTP_X_AMZ_CONTENT_SHA256") or EMPTY_SHA256
    return _signed(credential, timestamp, signed_headers, signature, payload_hash, None)


def _parse_query(query: str) -> _Signed | AuthFailure:
    params: dict[str, str] = {}
    for item in query.split("&"):
        name, _, value = item.partition("=")
        params[unquote(name)] = unquote(value)
    if params.get("X-Amz-Algorithm") != ALGORITHM:
        return AuthFailure(400, "AuthorizationQueryParametersError", f"use {ALGORITHM}")
    try:
        expires = int(params["X-Amz-Expires"])
        return _signed(
            params["X-Amz-Credential"],
            params["X-Amz-Date"],
            params["X-Amz-SignedHeaders"],
            params["X-Amz-Signature"],
            params.get("X-Amz-Content-Sha256", UNSIGNED_PAYLOAD),
            expires,
        )
    except (KeyError, ValueError):
        return AuthFailure(400, "AuthorizationQueryParametersError", "incomplete presigned query")


def _signed(
    credential: str,
    timestamp: str,
    signed_headers: str,
    signature: str,
    payload_hash: str,
    expires_s: int | None,
) -> _Signed | AuthFailure:
    parts = credential.split("/")
    if len(parts) != 5:
        return AuthFailure(400, "AuthorizationHeaderMalformed", "malformed Credential")
    access_key, date, region, service, terminator = parts
    return _Signed(
        access_key=access_key,
        date=date,
        region=region,
        service=service,
        terminator=terminator,
        timestamp=timestamp,
        signed_headers=[h.strip().lower() for h in signed_headers.split(";") if h.strip()],
        signature=signature.lower(),
        payload_hash=payload_hash,
        presigned=expires_s is not None,
        expires_s=expires_s,
    )


def _environ_header(environ: WSGIEnviron, name: str) -> str | None:
    if name == "content-type":
        return environ.get("CONTENT_TYPE")
    if name == "content-length":
        return environ.get("CONTENT_LENGTH")
    return environ.get("HTTP_" + name.upper().replace("-", "_"))


def _canonical_headers(environ: WSGIEnviron, names: list[str]) -> str | None:
    lines = []
    for name in names:
        value = _environ_header(environ, name)
        if value is None:
            return None  # a signed header that did not arrive cannot match
        # werkzeug joins repeated headers with ","; SigV4 wants exactly that, with each
        # value trimmed and inner runs of spaces folded.
        value = ",".join(_SPACES.sub(" ", v.strip()) for v in value.split(","))
        lines.append(f"{name}:{value}\n")
    return "".join(lines)


def _uri_encode(text: str) -> str:
    # SigV4 "UriEncode": everything but A-Z a-z 0-9 - _ . ~ is percent-encoded.
    return quote(text, safe="-_.~")


def _canonical_query(query: str, presigned: bool) -> str:
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        name, value = unquote(name), unquote(value)
        if presigned and name == "X-Amz-Signature":
            continue
        pairs.append((_uri_encode(name), _uri_encode(value)))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _canonical_uris(environ: WSGIEnviron) -> list[str]:
    """Candidate canonical URIs: the path exactly as the client sent it (S3 clients
    sign the path they send, without re-encoding it), then the decoded path encoded
    per the spec, for clients that encode the request line differently."""
    candidates = []
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        if "://" in raw.split("?", 1)[0]:
            raw = urlsplit(raw).path  # absolute-form request line
        candidates.append(raw.split("?", 1)[0] or "/")
    decoded = str(environ.get("PATH_INFO", "") or "/")
    # WSGI passes the path as latin-1 characters; keys are UTF-8 (else keep the bytes).
    with contextlib.suppress(UnicodeError):
        decoded = decoded.encode("latin-1").decode("utf-8")
    normalized = quote(decoded, safe="/-_.~")
    if normalized not in candidates:
        candidates.append(normalized)
    return candidates


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
