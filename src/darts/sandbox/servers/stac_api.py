"""A generic, read-only STAC API as a WSGI application, serving item JSON files.

One ``StacApiApp`` stands in for one remote STAC service (CDSE, PGC, the TCVIS mirror);
what differs between them is only the ``StacApiConfig`` (see ``stac_services``). The
endpoints are the ones the real services offer and pystac-client uses:

    {root}/                                landing page
    {root}/conformance
    {root}/queryables
    {root}/collections
    {root}/collections/{id}
    {root}/collections/{id}/queryables
    {root}/collections/{id}/items          bbox, datetime, filter, sortby, limit, token
    {root}/collections/{id}/items/{item}
    {root}/search                          GET and POST

Items are loaded on the first request that needs them (the world builder may still be
writing when the app is constructed) and kept in memory.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from darts.sandbox.servers.stac_config import (
    DEFAULT_QUERYABLES,
    GENERIC_CONFORMANCE,
    HOST_URL_TOKEN,
    CollectionSpec,
    StacApiConfig,
)
from darts.sandbox.servers.stac_errors import StacApiError, bad_request, not_found
from darts.sandbox.servers.stac_items import CollectionIndex, ItemRecord
from darts.sandbox.servers.stac_query import (
    encode_token,
    search_from_args,
    search_from_body,
)
from darts.sandbox.servers.stac_render import (
    GEOJSON,
    JSON,
    QUERYABLES_REL,
    SCHEMA_JSON,
    RequestUrls,
    link,
    render_collection,
    render_item,
)
from darts.sandbox.servers.stac_search import SearchPage, run_search
from darts.sandbox.servers.stac_services import (
    cdse_stac_config,
    pgc_stac_config,
    tcvis_stac_config,
)

__all__ = [
    "DEFAULT_QUERYABLES",
    "GENERIC_CONFORMANCE",
    "HOST_URL_TOKEN",
    "CollectionSpec",
    "StacApiApp",
    "StacApiConfig",
    "cdse_stac_config",
    "pgc_stac_config",
    "tcvis_stac_config",
]

log = logging.getLogger(__name__)

# How many renderings (one per host name / rewrite set) an item keeps as JSON text.
_RENDERED_PER_ITEM = 8

WsgiEnviron = dict[str, Any]


class StacApiApp:
    """WSGI callable: ``app(environ, start_response)``."""

    def __init__(self, config: StacApiConfig) -> None:
        self.config = config
        self._root_path = "/" + config.root_path.strip("/") if config.root_path.strip("/") else ""
        self._url_map = _url_map(self._root_path)
        self._indexes: dict[str, CollectionIndex] | None = None
        self._lock = threading.Lock()

    def __call__(self, environ: WsgiEnviron, start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self._dispatch(request)
        return response(environ, start_response)

    def reload(self) -> None:
        """Forget the loaded items; the next request reads the item folders again."""
        with self._lock:
            self._indexes = None

    def indexes(self) -> dict[str, CollectionIndex]:
        """The item index of every collection, loaded on first use."""
        with self._lock:
            if self._indexes is None:
                self._indexes = {
                    spec.id: CollectionIndex.load(spec) for spec in self.config.collections
                }
            return self._indexes

    # -- dispatching ---------------------------------------------------------------

    def _dispatch(self, request: Request) -> Response:
        adapter = self._url_map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
            urls = RequestUrls.build(request.host_url, self._root_path, self.config.href_rewrites)
            handler = getattr(self, f"_on_{endpoint}")
            return handler(request, urls, **args)
        except StacApiError as err:
            return _json(err.to_json(), status=err.status)
        except HTTPException as err:
            # Routing errors (unknown path, wrong method) answer in the same JSON shape.
            code = type(err).__name__
            body = {"code": code, "description": err.description or code}
            response = _json(body, status=err.code or 500)
            if err.code == 405:
                response.headers["Allow"] = ", ".join(getattr(err, "valid_methods", []) or [])
            return response
        except Exception as err:  # a broken world folder must still answer in JSON
            log.exception("STAC API request %s %s failed", request.method, request.url)
            return _json({"code": "InternalServerError", "description": str(err)}, status=500)

    # -- endpoints -----------------------------------------------------------------

    def _on_landing(self, request: Request, urls: RequestUrls) -> Response:
        search = urls.root + "/search"
        links = [
            link("self", urls.landing),
            link("root", urls.landing),
            link("data", urls.root + "/collections"),
            link("conformance", urls.root + "/conformance"),
            link("search", search, GEOJSON, title="STAC search", method="GET"),
            link("search", search, GEOJSON, title="STAC search", method="POST"),
            link(QUERYABLES_REL, urls.root + "/queryables", SCHEMA_JSON, title="Queryables"),
        ]
        for spec in self.config.collections:
            title = spec.document.get("title", spec.id)
            links.append(link("child", urls.collection(spec.id), title=title))
        body = {
            "type": "Catalog",
            "id": self.config.catalog_id,
            "title": self.config.title,
            "description": self.config.description,
            "stac_version": self.config.stac_version,
            "conformsTo": list(self.config.conforms_to),
            "links": links,
            "stac_extensions": [],
        }
        return _json(body)

    def _on_conformance(self, request: Request, urls: RequestUrls) -> Response:
        return _json({"conformsTo": list(self.config.conforms_to)})

    def _on_queryables(
        self, request: Request, urls: RequestUrls, collection_id: str | None = None
    ) -> Response:
        if collection_id is None:
            own, title = urls.root + "/queryables", f"Queryables of {self.config.title}"
        else:
            self._spec(collection_id)
            own, title = urls.collection(collection_id) + "/queryables", collection_id
        body = {
            "$schema": "https://json-schema.org/draft/2019-09/schema",
            "$id": own,
            "type": "object",
            "title": title,
            "properties": self.config.queryables,
            "additionalProperties": True,
        }
        return _json(body, mimetype=SCHEMA_JSON)

    def _on_collections(self, request: Request, urls: RequestUrls) -> Response:
        indexes = self.indexes()
        collections = [
            render_collection(spec, indexes[spec.id], urls) for spec in self.config.collections
        ]
        body = {
            "collections": collections,
            "links": [
                link("root", urls.landing),
                link("parent", urls.landing),
                link("self", urls.root + "/collections"),
            ],
            "numberMatched": len(collections),
            "numberReturned": len(collections),
        }
        return _json(body)

    def _on_collection(self, request: Request, urls: RequestUrls, collection_id: str) -> Response:
        spec = self._spec(collection_id)
        return _json(render_collection(spec, self.indexes()[spec.id], urls))

    def _on_items(self, request: Request, urls: RequestUrls, collection_id: str) -> Response:
        spec = self._spec(collection_id)
        search = search_from_args(request.args)
        search.collections = [spec.id]
        page = run_search(search, self.indexes())
        extra = [
            link("collection", urls.collection(spec.id)),
            link("parent", urls.collection(spec.id)),
        ]
        return self._feature_collection(request, urls, page, None, extra)

    def _on_item(
        self, request: Request, urls: RequestUrls, collection_id: str, item_id: str
    ) -> Response:
        spec = self._spec(collection_id)
        record = self.indexes()[spec.id].by_id.get(item_id)
        if record is None:
            raise not_found(f"Item {item_id} in collection {collection_id} does not exist.")
        return Response(self._item_json(record, urls), mimetype=GEOJSON)

    def _on_search(self, request: Request, urls: RequestUrls) -> Response:
        body: dict[str, Any] | None = None
        if request.method == "POST":
            body = _json_body(request)
            search = search_from_body(body)
        else:
            search = search_from_args(request.args)
        page = run_search(search, self.indexes())
        return self._feature_collection(request, urls, page, body, [])

    # -- helpers -------------------------------------------------------------------

    def _spec(self, collection_id: str) -> CollectionSpec:
        spec = self.config.collection(collection_id)
        if spec is None:
            raise not_found(f"Collection {collection_id} does not exist.")
        return spec

    def _feature_collection(
        self,
        request: Request,
        urls: RequestUrls,
        page: SearchPage,
        post_body: dict[str, Any] | None,
        extra_links: list[dict[str, Any]],
    ) -> Response:
        links = [link("root", urls.landing), link("self", request.url, GEOJSON), *extra_links]
        if page.next_offset is not None:
            token = encode_token(page.next_offset)
            links.append(_next_link(request, token, post_body))
        features = [self._item_json(record, urls) for record in page.records]
        rest = {
            "links": links,
            "numberMatched": page.matched,
            "numberReturned": len(features),
            # Older clients read the counts from the (retired) context extension.
            "context": {"limit": page.limit, "matched": page.matched, "returned": len(features)},
        }
        # Items are spliced in as cached JSON text: serialising 200 full CDSE items
        # (~60 kB each) anew for every page would dominate the answer time.
        text = (
            '{"type":"FeatureCollection","features":['
            + ",".join(features)
            + "],"
            + _dumps(rest)[1:]
        )
        return Response(text, mimetype=GEOJSON)

    def _item_json(self, record: ItemRecord, urls: RequestUrls) -> str:
        # Cached on the record, so a reload() drops it together with the items.
        text = record.rendered.get(urls)
        if text is None:
            text = _dumps(render_item(record, urls))
            if len(record.rendered) >= _RENDERED_PER_ITEM:
                record.rendered.clear()  # crude bound; hosts and rewrites rarely change
            record.rendered[urls] = text
        return text


def _next_link(request: Request, token: str, post_body: dict[str, Any] | None) -> dict[str, Any]:
    """``rel=next``: a GET URL with the token, or a POST body with it (item-search spec)."""
    if post_body is not None:
        return link(
            "next",
            request.base_url,
            GEOJSON,
            method="POST",
            body={**post_body, "token": token},
            merge=False,
        )
    pairs = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
    pairs.append(("token", token))
    return link("next", f"{request.base_url}?{urlencode(pairs)}", GEOJSON, method="GET")


def _json_body(request: Request) -> dict[str, Any]:
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise bad_request(f"The request body is not valid JSON: {err}") from err
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object")
    return body


def _dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


def _json(body: Any, status: int = 200, mimetype: str = JSON) -> Response:
    return Response(_dumps(body), status=status, mimetype=mimetype)


def _url_map(root: str) -> Map:
    collection = root + "/collections/<collection_id>"
    rules = [
        Rule(root + "/", endpoint="landing", methods=["GET"]),
        Rule(root + "/conformance", endpoint="conformance", methods=["GET"]),
        Rule(root + "/queryables", endpoint="queryables", methods=["GET"]),
        Rule(root + "/collections", endpoint="collections", methods=["GET"]),
        Rule(collection, endpoint="collection", methods=["GET"]),
        Rule(collection + "/queryables", endpoint="queryables", methods=["GET"]),
        Rule(collection + "/items", endpoint="items", methods=["GET"]),
        Rule(collection + "/items/<item_id>", endpoint="item", methods=["GET"]),
        Rule(root + "/search", endpoint="search", methods=["GET", "POST"]),
    ]
    # Tolerate "/v1" for "/v1/" (and the reverse) instead of answering with redirects,
    # which would turn a POST into a GET in some clients.
    return Map(rules, strict_slashes=False, merge_slashes=False)
