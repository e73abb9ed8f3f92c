"""A minimal Earth Engine REST client: two methods, explicit credentials, no hidden calls.

The ``earthengine-api`` package fetches a discovery document and an algorithm list at
initialisation, reads a deprecation catalogue from storage.googleapis.com and, without
explicit credentials, probes the cloud metadata server (sources.md §3). DARTS only
needs pixels and a catalogue listing, so it speaks the two REST methods that give them,
``projects/<p>/image:computePixels`` and ``<asset>:listImages``, through the
`HttpClient` (gate, timeouts, retries on 429/5xx). Expressions are passed in Earth
Engine's serialized form.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from darts.errors import DartsError
from darts.net.errors import NetworkError, RemoteError
from darts.net.google_auth import (
    HOW_TO_AUTHENTICATE,
    EarthEngineAuthError,
    EarthEngineCredentials,
)
from darts.net.http import HttpClient

__all__ = [
    "EarthEngineAuthError",
    "EarthEngineClient",
    "EarthEngineCredentials",
    "EarthEngineError",
    "affine_grid",
]


class EarthEngineError(NetworkError, DartsError):
    """Earth Engine refused or failed a request; carries its error message."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message, attempts=attempts)
        self.status = status


def affine_grid(
    width: int,
    height: int,
    transform: tuple[float, float, float, float, float, float],
    crs_code: str,
) -> dict[str, Any]:
    """A computePixels ``grid`` from an affine transform (a, b, c, d, e, f) as in
    ``affine.Affine``: x = a·col + b·row + c, y = d·col + e·row + f."""
    a, b, c, d, e, f = transform
    return {
        "dimensions": {"width": int(width), "height": int(height)},
        "affineTransform": {
            "scaleX": a,
            "shearX": b,
            "translateX": c,
            "shearY": d,
            "scaleY": e,
            "translateY": f,
        },
        "crsCode": crs_code,
    }


class EarthEngineClient:
    """Reads pixels from Earth Engine for one Cloud project. Constructing it makes no
    request; every request first gets a token from ``credentials``."""

    def __init__(
        self,
        base_url: str,
        project: str | None,
        credentials: EarthEngineCredentials,
        http: HttpClient,
    ) -> None:
        if not project:
            raise EarthEngineAuthError(
                f"Earth Engine needs a Google Cloud project. {HOW_TO_AUTHENTICATE}"
            )
        self.base_url = base_url.rstrip("/")
        self.project = project
        self.credentials = credentials
        self.http = http

    def compute_pixels(
        self,
        expression: dict[str, Any],
        *,
        grid: dict[str, Any],
        band_ids: list[str],
        purpose: str,
    ) -> np.ndarray:
        """The image ``expression`` evaluated on ``grid``: a structured array of shape
        (height, width) with one field per band id."""
        url = f"{self.base_url}/v1/projects/{self.project}/image:computePixels"
        body = {
            "expression": expression,
            "fileFormat": "NPY",
            "bandIds": list(band_ids),
            "grid": grid,
        }
        # Offline, refuse here, naming the pixels wanted, rather than at the token
        # exchange, whose message would only name the service account.
        self.http.gate.check(url, purpose, offline=self.http.settings.offline)
        token = self.credentials.access_token(self.http)
        try:
            response = self.http.request(
                "POST",
                url,
                purpose=purpose,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            )
        except RemoteError as exc:
            raise self._translate(exc, purpose) from None
        return _parse_npy(response.content, grid, band_ids, url)

    def list_images(
        self,
        parent: str,
        *,
        start_time: str | None = None,
        end_time: str | None = None,
        region: dict[str, Any] | None = None,
        property_filter: str | None = None,
        page_size: int = 1000,
        purpose: str,
    ) -> list[dict[str, Any]]:
        """Every image of the collection ``parent`` (``projects/earthengine-public/assets/
        COPERNICUS/S2_SR_HARMONIZED``) matching the arguments, all pages followed:
        ``startTime`` inclusive, ``endTime`` exclusive (RFC 3339), ``region`` a GeoJSON
        geometry (EPSG:4326), ``property_filter`` the ``filter`` parameter's syntax
        (``properties.MGRS_TILE = "33UUP" AND properties.CLOUDY_PIXEL_PERCENTAGE <= 10``)."""
        url = f"{self.base_url}/v1/{parent}:listImages"
        params: dict[str, Any] = {"pageSize": int(page_size), "view": "FULL"}
        for key, value in (
            ("startTime", start_time),
            ("endTime", end_time),
            ("filter", property_filter),
            ("region", json.dumps(region) if region is not None else None),
        ):
            if value is not None:
                params[key] = value
        self.http.gate.check(url, purpose, offline=self.http.settings.offline)
        images: list[dict[str, Any]] = []
        seen_tokens: set[str] = set()
        while True:
            token = self.credentials.access_token(self.http)
            try:
                page = self.http.get_json(
                    url,
                    purpose=purpose,
                    params=params,
                    headers={
                        "Authorization": f"Bearer {token}",
                        # The listing is of a public collection; usage counts against
                        # the user's project, as with the Python client.
                        "X-Goog-User-Project": self.project,
                    },
                )
            except RemoteError as exc:
                raise self._translate(exc, purpose) from None
            if not isinstance(page, dict):
                raise EarthEngineError(f"GET {url} did not return a JSON object ({purpose})")
            images += [image for image in page.get("images") or [] if isinstance(image, dict)]
            next_token = page.get("nextPageToken")
            if not next_token:
                return images
            if next_token in seen_tokens:  # a server repeating itself would loop forever
                raise EarthEngineError(f"GET {url} repeated page token {next_token!r}")
            seen_tokens.add(next_token)
            params["pageToken"] = next_token

    def _translate(self, exc: RemoteError, purpose: str) -> NetworkError:
        detail = ee_error_message(exc.body_excerpt)
        if exc.status in (401, 403):
            # A cached service-account token may have been revoked early: drop it so a
            # later attempt exchanges the key again instead of repeating the failure.
            self.credentials.invalidate()
            verb = "rejected" if exc.status == 401 else "refused access with"
            return EarthEngineAuthError(
                f"Earth Engine (project {self.project!r}) {verb} the credentials from "
                f"{self.credentials.description} (HTTP {exc.status}: {detail}); check that "
                "the token is not expired, that the account is registered for Earth Engine "
                "and has the Earth Engine Resource Viewer role in the project."
            )
        return EarthEngineError(
            f"Earth Engine (project {self.project!r}) failed {purpose}: HTTP {exc.status}: "
            f"{detail}",
            status=exc.status,
            attempts=exc.attempts,
        )


def ee_error_message(body: str) -> str:
    """The ``error.message`` (and status) of an Earth Engine error body, else the body."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body or "no details"
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and error.get("message"):
        status = error.get("status")
        return f"{error['message']} ({status})" if status else str(error["message"])
    return body


def _parse_npy(data: bytes, grid: dict[str, Any], band_ids: list[str], url: str) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise NetworkError(f"POST {url} did not return an NPY array: {exc}") from None
    dims = grid["dimensions"]
    expected = (int(dims["height"]), int(dims["width"]))
    names = array.dtype.names or ()
    missing = [band for band in band_ids if band not in names]
    if array.shape != expected or missing:
        raise NetworkError(
            f"POST {url} returned an array of shape {array.shape} with bands {list(names)}; "
            f"expected shape {expected} with bands {band_ids}"
        )
    return array
