"""The stand-in for the PGC data hosts: ArcticDEM COGs and the mosaic tile index.

Real data lives on two anonymous hosts (the ``pgc-opendata-dems`` bucket for the COGs
and ``data.pgc.umn.edu`` for the index zip); one loopback server plays both, at the same
paths. The index zip is assembled from the world's GeoParquet tables with the URL
placeholders replaced, because the world is built once and cached while ports are only
known when the servers start.
"""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from darts.sandbox.layout import PGC_DATA_PLACEHOLDER, PGC_STAC_PLACEHOLDER, WorldLayout
from darts.sandbox.servers.runner import StartResponse, WSGIEnviron
from darts.sandbox.servers.static import (
    RangeFileApp,
    Resource,
    bytes_resource,
    not_found,
    request_path,
    serve,
)

ARCTICDEM_INDEX_PATH = "/elev/dem/setsm/ArcticDEM/indexes/ArcticDEM_Mosaic_Index_latest_gpqt.zip"
# Fixed member timestamps make the zip byte-identical for identical inputs, so its ETag
# is stable and caches keyed on it behave as they would against the real file.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)

UrlSource = str | Callable[[], str]


def _base(url: str) -> str:
    return url.rstrip("/") + "/"


def rewrite_placeholders(table: pa.Table, replacements: dict[str, str]) -> pa.Table:
    """Replace substrings in every string column (dictionary-encoded ones included)."""
    for index, column_field in enumerate(table.schema):
        column = table.column(index)
        value_type = column.type
        if pa.types.is_dictionary(value_type):
            value_type = value_type.value_type
            column = column.cast(value_type)
        if not (
            pa.types.is_string(value_type)
            or pa.types.is_large_string(value_type)
            or pa.types.is_string_view(value_type)
        ):
            continue
        for placeholder, url in replacements.items():
            column = pc.replace_substring(column, pattern=placeholder, replacement=url)
        table = table.set_column(index, column_field.with_type(column.type), column)
    return table


def build_index_zip(index_dir: Path, data_base_url: str, stac_base_url: str) -> bytes:
    """The mosaic index zip: every file under ``index_dir`` at its relative path, with
    the placeholders in ``*.parquet`` string columns replaced by the given base URLs."""
    replacements = {
        PGC_DATA_PLACEHOLDER: _base(data_base_url),
        PGC_STAC_PLACEHOLDER: _base(stac_base_url),
    }
    files = sorted(p for p in index_dir.rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(f"no index files under {index_dir}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in files:
            if path.suffix == ".parquet":
                table = rewrite_placeholders(pq.read_table(path), replacements)
                out = io.BytesIO()
                pq.write_table(table, out)
                data = out.getvalue()
            else:
                data = path.read_bytes()
            info = zipfile.ZipInfo(path.relative_to(index_dir).as_posix(), date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


class PgcDataApp:
    """WSGI app: ``layout.pgc_data`` at its relative paths (byte ranges, anonymous) and
    the index zip at :data:`ARCTICDEM_INDEX_PATH`."""

    def __init__(
        self,
        layout: WorldLayout,
        stac_base_url: UrlSource,
        data_base_url: UrlSource | None = None,
    ) -> None:
        self.layout = layout
        self.files = RangeFileApp(layout.pgc_data)
        self._stac_base_url = stac_base_url
        # None: this server's own URL, taken from the Host header of each request, so
        # the app needs no port before it is served.
        self._data_base_url = data_base_url
        self._zips: dict[tuple[str, str], Resource] = {}
        self._lock = threading.Lock()

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        if request_path(environ) != ARCTICDEM_INDEX_PATH:
            return self.files(environ, start_response)
        if not self.layout.pgc_index.is_dir():
            return not_found(environ, start_response)
        data_url = _resolve(self._data_base_url) if self._data_base_url else _own_url(environ)
        try:
            resource = self.index_resource(data_url, _resolve(self._stac_base_url))
        except FileNotFoundError:
            return not_found(environ, start_response)  # a world without an index
        return serve(environ, start_response, resource)

    def index_resource(self, data_base_url: str, stac_base_url: str) -> Resource:
        """The index zip for these base URLs, built on first use and then kept."""
        key = (_base(data_base_url), _base(stac_base_url))
        # One lock for building too: concurrent first requests wait for one build
        # instead of each reading and rewriting the tables.
        with self._lock:
            resource = self._zips.get(key)
            if resource is None:
                index_dir = self.layout.pgc_index
                data = build_index_zip(index_dir, *key)
                newest = max(p.stat().st_mtime for p in index_dir.rglob("*") if p.is_file())
                resource = bytes_resource(data, "application/zip", last_modified=newest)
                self._zips[key] = resource
            return resource


def pgc_data_app(
    layout: WorldLayout,
    stac_base_url: UrlSource,
    data_base_url: UrlSource | None = None,
) -> PgcDataApp:
    """The PGC data stand-in for ``layout``; ``stac_base_url`` (or a callable giving it,
    for servers started later) replaces PGC_STAC_PLACEHOLDER in the index."""
    return PgcDataApp(layout, stac_base_url, data_base_url)


def _resolve(url: UrlSource) -> str:
    return url() if callable(url) else url


def _own_url(environ: WSGIEnviron) -> str:
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    return f"{scheme}://{host}"
