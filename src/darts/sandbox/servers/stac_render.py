"""Turning stored documents into answers for one request: links and hrefs.

Stored items and collection documents are never modified; each answer is a shallow
copy in which only the changed parts (links, rewritten hrefs) are new objects. Links
are built from the host the request came in on, so one app serves any port or name.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from darts.sandbox.servers.stac_config import HOST_URL_TOKEN, CollectionSpec
from darts.sandbox.servers.stac_items import CollectionIndex, ItemRecord

JSON = "application/json"
GEOJSON = "application/geo+json"
SCHEMA_JSON = "application/schema+json"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"

# Links the server regenerates; stored ones with these rels are dropped.
_ITEM_NAV_RELS = {"self", "root", "parent", "collection"}
_COLLECTION_NAV_RELS = {"self", "root", "parent", "items", QUERYABLES_REL}


@dataclass(frozen=True)
class RequestUrls:
    """URLs of this request's server, and the href rewrites resolved for it."""

    host_url: str  # "http://127.0.0.1:8123/"
    root: str  # "http://127.0.0.1:8123/v1" (no trailing slash)
    rewrites: tuple[tuple[str, str], ...]  # (prefix, replacement), longest prefix first

    @classmethod
    def build(cls, host_url: str, root_path: str, rewrites: dict[str, str]) -> RequestUrls:
        host_url = host_url.rstrip("/") + "/"
        resolved = [
            (prefix, replacement.replace(HOST_URL_TOKEN, host_url))
            for prefix, replacement in list(rewrites.items())  # a runner may be editing it
            if prefix
        ]
        resolved.sort(key=lambda pair: len(pair[0]), reverse=True)
        return cls(host_url, host_url.rstrip("/") + root_path, tuple(resolved))

    @property
    def landing(self) -> str:
        return self.root + "/"

    def collection(self, collection_id: str) -> str:
        return f"{self.root}/collections/{quote(collection_id, safe='')}"

    def item(self, collection_id: str, item_id: str) -> str:
        return f"{self.collection(collection_id)}/items/{quote(item_id, safe='')}"

    def rewrite(self, href: str) -> str:
        for prefix, replacement in self.rewrites:
            if href.startswith(prefix):
                return replacement + href[len(prefix) :]
        return href


def link(rel: str, href: str, media_type: str = JSON, **extra: Any) -> dict[str, Any]:
    return {"rel": rel, "type": media_type, "href": href, **extra}


def render_item(record: ItemRecord, urls: RequestUrls) -> dict[str, Any]:
    item = dict(record.item)
    collection_url = urls.collection(record.collection)
    navigation = [
        link("collection", collection_url),
        link("parent", collection_url),
        link("root", urls.landing),
        link("self", urls.item(record.collection, record.id), GEOJSON),
    ]
    item["links"] = navigation + _other_links(record.item.get("links"), _ITEM_NAV_RELS, urls)
    assets = record.item.get("assets")
    if isinstance(assets, dict) and urls.rewrites:
        item["assets"] = {key: _rewrite_asset(asset, urls) for key, asset in assets.items()}
    return item


def render_collection(
    spec: CollectionSpec, index: CollectionIndex, urls: RequestUrls
) -> dict[str, Any]:
    document = copy.deepcopy(spec.document)
    document["id"] = spec.id
    document.setdefault("type", "Collection")
    document.setdefault("stac_version", "1.1.0")
    if "extent" not in document:
        document["extent"] = index.extent()
    own = urls.collection(spec.id)
    navigation = [
        link("items", own + "/items", GEOJSON),
        link("parent", urls.landing),
        link("root", urls.landing),
        link("self", own),
        link(QUERYABLES_REL, own + "/queryables", SCHEMA_JSON, title="Queryables"),
    ]
    document["links"] = navigation + _other_links(
        spec.document.get("links"), _COLLECTION_NAV_RELS, urls
    )
    return document


def _other_links(links: Any, skip: set[str], urls: RequestUrls) -> list[dict[str, Any]]:
    if not isinstance(links, list):
        return []
    kept = []
    for entry in links:
        if not isinstance(entry, dict) or entry.get("rel") in skip:
            continue
        href = entry.get("href")
        if isinstance(href, str) and urls.rewrite(href) != href:
            entry = {**entry, "href": urls.rewrite(href)}
        kept.append(entry)
    return kept


def _rewrite_asset(asset: Any, urls: RequestUrls) -> Any:
    if not isinstance(asset, dict):
        return asset
    new = asset
    href = asset.get("href")
    if isinstance(href, str) and urls.rewrite(href) != href:
        new = {**asset, "href": urls.rewrite(href)}
    alternates = asset.get("alternate")
    if isinstance(alternates, dict):
        rewritten = {name: _rewrite_alternate(alt, urls) for name, alt in alternates.items()}
        if any(rewritten[name] is not alternates[name] for name in alternates):
            new = {**new, "alternate": rewritten}
    return new


def _rewrite_alternate(alternate: Any, urls: RequestUrls) -> Any:
    if isinstance(alternate, dict) and isinstance(alternate.get("href"), str):
        href = urls.rewrite(alternate["href"])
        if href != alternate["href"]:
            return {**alternate, "href": href}
    return alternate
