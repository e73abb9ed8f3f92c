"""The Earth Engine stand-in: the world's TCVIS and Sentinel-2, and a token endpoint.

Routes (everything else is a 404 in Earth Engine's error shape):

- ``POST /token``: the OAuth2 JWT-bearer exchange of Google's token endpoint; the
  assertion must be signed by the sandbox service account (see ``ee_auth``);
- ``POST /v1/projects/<project>/image:computePixels``: needs ``Authorization: Bearer
  <token>`` with a token issued above (401 ``UNAUTHENTICATED`` otherwise); answers
  ``fileFormat: NPY`` with ``numpy.save`` of a structured array, one field per
  requested band: uint8 for the TCVIS mosaics (``ee_pixels``), uint16 / uint8 (SCL)
  for ``Image.load`` of a ``COPERNICUS/S2_SR_HARMONIZED`` image (``ee_s2_pixels``);
- ``GET /v1/projects/earthengine-public/assets/COPERNICUS/S2_SR_HARMONIZED:listImages``:
  the images of the world's Sentinel-2 L2A acquisitions (``ee_sentinel2``,
  ``ee_listing``), same bearer token.

Errors are ``{"error": {"code", "message", "status"}}`` like the real API, so the client
is tested against the bodies it will see in production.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np

from darts.sandbox.layout import WorldLayout
from darts.sandbox.servers.ee_auth import JWT_BEARER_GRANT, InvalidGrant, TokenIssuer
from darts.sandbox.servers.ee_band_cache import DEFAULT_CACHE_BYTES, BandCache
from darts.sandbox.servers.ee_listing import list_images
from darts.sandbox.servers.ee_pixels import (
    TCVIS_EE_BANDS,
    EeRequestError,
    PixelGrid,
    invalid,
    loaded_asset,
    loaded_image,
    render,
)
from darts.sandbox.servers.ee_s2_pixels import render_sentinel2
from darts.sandbox.servers.ee_sentinel2 import COLLECTION_NAME, Sentinel2Catalog
from darts.sandbox.servers.runner import StartResponse, WSGIEnviron
from darts.sandbox.servers.static import request_path

_COMPUTE_PIXELS = re.compile(r"^/v1/projects/([^/]+)/image:computePixels$")
_LIST_IMAGES = re.compile(r"^/v1/(projects/[^/]+/assets/.+):listImages$")
# A computePixels body is a small JSON expression; anything far larger is abuse.
_MAX_BODY = 1 << 20
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
}


class EarthEngineApp:
    """WSGI app serving the Earth Engine stand-in for one world.

    ``band_cache_bytes`` bounds the decoded Sentinel-2 bands kept between requests
    (see ``ee_band_cache``).
    """

    def __init__(
        self,
        layout: WorldLayout,
        issuer: TokenIssuer,
        *,
        band_cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.layout = layout
        self.tcvis_data = Path(layout.tcvis_data)
        self.issuer = issuer
        # The one Cloud project the sandbox service account may use.
        self.project = issuer.account.project
        self.sentinel2 = Sentinel2Catalog(layout)
        self.band_cache = BandCache(band_cache_bytes)

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        path = request_path(environ) or ""
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if path == "/token":
                _require_post(method)
                return self._token(environ, start_response)
            match = _COMPUTE_PIXELS.match(path)
            if match:
                _require_post(method)
                return self._compute_pixels(environ, start_response, match.group(1))
            match = _LIST_IMAGES.match(path)
            if match:
                if method != "GET":
                    raise EeRequestError(
                        405, "METHOD_NOT_ALLOWED", f"{method} is not allowed here; use GET"
                    )
                return self._list_images(environ, start_response, match.group(1))
            raise EeRequestError(404, "NOT_FOUND", f"Method not found: {method} {path}")
        except EeRequestError as error:
            return _json(start_response, error.status, error.to_json())

    def error_document(self, status: int, environ: WSGIEnviron) -> tuple[str, bytes]:
        """Injected faults look like Earth Engine's own 429/5xx answers."""
        code = {429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}.get(status, "INTERNAL")
        message = "Too many concurrent aggregations." if status == 429 else "Service unavailable."
        error = EeRequestError(status, code, f"{message} (injected by the sandbox)")
        return "application/json; charset=UTF-8", json.dumps(error.to_json()).encode()

    # -- /token -----------------------------------------------------------------------

    def _token(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        form = parse_qs(_body(environ).decode("utf-8", errors="replace"))
        grant = (form.get("grant_type") or [""])[0]
        assertion = (form.get("assertion") or [""])[0]
        if grant != JWT_BEARER_GRANT:
            return _json(
                start_response,
                400,
                {"error": "unsupported_grant_type", "error_description": "Invalid grant_type."},
            )
        try:
            answer = self.issuer.exchange(assertion, _own_url(environ, "/token"))
        except InvalidGrant as exc:
            return _json(
                start_response, 400, {"error": "invalid_grant", "error_description": str(exc)}
            )
        return _json(start_response, 200, answer)

    # -- computePixels ----------------------------------------------------------------

    def _compute_pixels(
        self, environ: WSGIEnviron, start_response: StartResponse, project: str
    ) -> Iterable[bytes]:
        self._authenticate(environ)
        if project != self.project:
            raise EeRequestError(
                403,
                "PERMISSION_DENIED",
                f"Caller does not have required permission to use project {project}. Grant "
                "the caller the roles/serviceusage.serviceUsageConsumer role.",
            )
        try:
            request = json.loads(_body(environ))
        except ValueError:
            raise invalid("Invalid JSON payload received.") from None
        if not isinstance(request, dict):
            raise invalid("Invalid JSON payload received.")
        file_format = request.get("fileFormat", "AUTO_JPEG_PNG")
        if file_format != "NPY":
            raise invalid(
                f"the sandbox Earth Engine answers fileFormat NPY only, not {file_format}"
            )
        band_ids = request.get("bandIds") or None
        if band_ids is not None and (
            not isinstance(band_ids, list) or not all(isinstance(b, str) for b in band_ids)
        ):
            raise invalid("bandIds must be a list of band names")
        image = loaded_image(request.get("expression"))
        if image is not None:
            grid = PixelGrid.from_request(request.get("grid"))
            pixels = render_sentinel2(self.sentinel2, self.band_cache, image, grid, band_ids)
        else:
            asset = loaded_asset(request.get("expression"))
            grid = PixelGrid.from_request(request.get("grid"))
            pixels = render(self.tcvis_data, asset, grid, band_ids or list(TCVIS_EE_BANDS))
        buffer = io.BytesIO()
        np.save(buffer, pixels, allow_pickle=False)
        body = buffer.getvalue()
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
        )
        return [body]

    # -- listImages -------------------------------------------------------------------

    def _list_images(
        self, environ: WSGIEnviron, start_response: StartResponse, parent: str
    ) -> Iterable[bytes]:
        self._authenticate(environ)
        if parent != COLLECTION_NAME:
            raise EeRequestError(
                404,
                "NOT_FOUND",
                f"Asset '{parent}' does not exist or doesn't allow this operation.",
            )
        answer = list_images(self.sentinel2.images(), environ.get("QUERY_STRING", ""))
        return _json(start_response, 200, answer)

    def _authenticate(self, environ: WSGIEnviron) -> None:
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not self.issuer.is_valid(token.strip()):
            raise EeRequestError(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
            )


def _require_post(method: str) -> None:
    if method != "POST":
        raise EeRequestError(405, "METHOD_NOT_ALLOWED", f"{method} is not allowed here; use POST")


def _body(environ: WSGIEnviron) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise invalid("bad Content-Length") from None
    if length > _MAX_BODY:
        raise EeRequestError(413, "INVALID_ARGUMENT", "request body too large")
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _own_url(environ: WSGIEnviron, path: str) -> str:
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    return (
        f"{environ.get('wsgi.url_scheme', 'http')}://{host}{environ.get('SCRIPT_NAME', '')}{path}"
    )


def _json(start_response: StartResponse, status: int, document: Any) -> list[bytes]:
    body = json.dumps(document).encode()
    start_response(
        f"{status} {_REASONS.get(status, 'Error')}",
        [("Content-Type", "application/json; charset=UTF-8"), ("Content-Length", str(len(body)))],
    )
    return [body]
