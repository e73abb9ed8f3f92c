"""The sandbox STAC API, driven the way production code drives the real services.

A synthetic world (item JSON files shaped like the recorded CDSE item) is written into
a temporary world folder; the servers run on 127.0.0.1 with an ephemeral port and are
queried with pystac-client unchanged and with plain requests. Expected answers are
computed here from the generated items, independently of the server code.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pystac
import pytest
import requests
from pystac_client import Client
from pystac_client.exceptions import APIError
from werkzeug.serving import make_server

from darts.sandbox.layout import (
    PGC_DATA_PLACEHOLDER,
    PGC_STAC_PLACEHOLDER,
    TCVIS_DATA_PLACEHOLDER,
    WorldLayout,
)
from darts.sandbox.servers.stac_api import (
    CollectionSpec,
    StacApiApp,
    StacApiConfig,
    cdse_stac_config,
    pgc_stac_config,
    tcvis_stac_config,
)
from darts.sandbox.servers.stac_query import decode_token, encode_token, parse_bbox
from darts.sandbox.servers.stac_time import parse_request_interval

FIXTURES = Path(__file__).resolve().parents[1] / "src" / "darts" / "sandbox" / "fixtures" / "cdse"
L2A = "sentinel-2-l2a"
MOSAICS = "sentinel-2-global-mosaics"
FIXTURE_L2A_ID = "S2B_MSIL2A_20200322T074609_N0500_R135_T36NYH_20230612T214223"
FIXTURE_MOSAIC_ID = "Sentinel-2_mosaic_2023_Q1_31SDV_0_0"

# Three non-overlapping Arctic tiles: (tile, lon/lat box, relative orbit).
TILES = [
    ("55WFR", (148.9, 67.5, 151.6, 68.5), 17),
    ("08WMB", (-135.0, 68.0, -132.5, 69.0), 98),
    ("33XVG", (14.0, 78.0, 19.0, 79.0), 51),
]
DAYS = 80  # 3 tiles x 80 days = 240 synthetic L2A items, + 1 recorded = 241 (> 200)
FIRST_DAY = datetime(2024, 6, 1, 10, 0, 0, tzinfo=UTC)


def _fixture_item(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())["features"][0]


def _polygon(bounds: tuple[float, float, float, float]) -> dict[str, Any]:
    w, s, e, n = bounds
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _l2a_items() -> list[dict[str, Any]]:
    """Synthetic L2A items in the recorded item's shape (assets trimmed to a few)."""
    template = _fixture_item("search-sentinel-2-l2a-T36NYH.json")
    items = []
    for tile_index, (tile, bounds, orbit) in enumerate(TILES):
        for day in range(DAYS):
            # Same acquisition time on all tiles on a day: exercises the id tie-break.
            moment = FIRST_DAY + timedelta(days=day)
            platform = "abc"[(day + tile_index) % 3]
            stamp = moment.strftime("%Y%m%dT%H%M%S")
            item_id = f"S2{platform.upper()}_MSIL2A_{stamp}_N0511_R{orbit:03d}_T{tile}_{stamp}"
            item = copy.deepcopy(template)
            item["id"] = item_id
            item["geometry"] = _polygon(bounds)
            item["bbox"] = list(bounds)
            item["links"] = [link for link in item["links"] if link["rel"] == "version-history"]
            props = item["properties"]
            props.update(
                {
                    "datetime": _stamp(moment),
                    "start_datetime": _stamp(moment),
                    "end_datetime": _stamp(moment),
                    "grid:code": f"MGRS-{tile}",
                    "platform": f"sentinel-2{platform}",
                    "eo:cloud_cover": float((day * 37 + tile_index * 11) % 100) + 0.5,
                    "eo:snow_cover": float(day % 7),
                    "sat:relative_orbit": orbit,
                    "processing:version": "05.11" if day % 2 else "05.10",
                }
            )
            assets = {}
            for key in ("B02_10m", "SCL_20m"):
                asset = copy.deepcopy(template["assets"][key])
                asset["href"] = f"s3://eodata/Sentinel-2/MSI/L2A/{item_id}.SAFE/{key}.jp2"
                asset["alternate"]["https"]["href"] = (
                    f"https://zipper.dataspace.copernicus.eu/odata/v1/Products({item_id})/{key}"
                )
                assets[key] = asset
            item["assets"] = assets
            items.append(item)
    return items


def _mosaic_items() -> list[dict[str, Any]]:
    template = _fixture_item("search-sentinel-2-global-mosaics-31SDV.json")
    items = []
    for tile, bounds, _ in TILES:
        for quarter in range(4):
            start = datetime(2024, 1 + 3 * quarter, 1, tzinfo=UTC)
            end = datetime(2024 + (quarter == 3), (4 + 3 * quarter - 1) % 12 + 1, 1, tzinfo=UTC)
            item = copy.deepcopy(template)
            item["id"] = f"Sentinel-2_mosaic_2024_Q{quarter + 1}_{tile}_0_0"
            item["geometry"] = _polygon(bounds)
            item["bbox"] = list(bounds)
            item["properties"].update(
                {
                    "datetime": _stamp(start),
                    "start_datetime": _stamp(start),
                    "end_datetime": _stamp(end - timedelta(seconds=1)),
                    "grid:code": f"MGRS-{tile}",
                }
            )
            items.append(item)
    return items


def _pgc_item(collection: str, item_id: str, bounds: tuple[float, ...]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": item_id,
        "collection": collection,
        "geometry": _polygon(bounds),  # type: ignore[arg-type]
        "bbox": list(bounds),
        "properties": {
            "datetime": None,
            "start_datetime": "2007-01-01T00:00:00Z",
            "end_datetime": "2023-12-31T23:59:59Z",
            "gsd": 10,
        },
        "links": [
            {
                "rel": "alternate",
                "href": f"{PGC_STAC_PLACEHOLDER}collections/{collection}/items/{item_id}",
            }
        ],
        "assets": {
            "dem": {
                "href": f"{PGC_DATA_PLACEHOLDER}arcticdem/mosaics/v4.1/10m/{item_id}_dem.tif",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
            }
        },
    }


def _tcvis_item(collection: str, item_id: str) -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": item_id,
        "geometry": _polygon((148.0, 67.0, 152.0, 69.0)),
        "bbox": [148.0, 67.0, 152.0, 69.0],
        "properties": {"datetime": "2022-07-01T00:00:00Z"},
        "links": [],
        "assets": {"data": {"href": f"{TCVIS_DATA_PLACEHOLDER}{collection}/{item_id}.tif"}},
    }


def _write(folder: Path, items: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for item in items:
        (folder / f"{item['id']}.json").write_text(json.dumps(item))


@dataclass
class World:
    layout: WorldLayout
    l2a: list[dict[str, Any]]  # synthetic + recorded, as written / served
    mosaics: list[dict[str, Any]]


@dataclass
class Running:
    url: str  # root URL of the API, with trailing slash
    app: StacApiApp
    port: int


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    layout = WorldLayout(tmp_path_factory.mktemp("stac") / "small-seed1")
    l2a, mosaics = _l2a_items(), _mosaic_items()
    _write(layout.cdse_items / L2A, l2a)
    _write(layout.cdse_items / MOSAICS, mosaics)
    for collection, bounds in (
        ("arcticdem-mosaics-v4.1-10m", (148.0, 67.0, 150.0, 68.0)),
        ("arcticdem-mosaics-v4.1-32m", (148.0, 67.0, 152.0, 69.0)),
    ):
        _write(layout.pgc_items / collection, [_pgc_item(collection, "58_05_10m_v4.1", bounds)])
    for collection in ("TCTrend_SR_2003-2022_TCVIS", "TCTrend_SR_2005-2024_TCVIS"):
        _write(layout.tcvis_items / collection, [_tcvis_item(collection, "tile_0_0")])
    l2a_all = [*l2a, _fixture_item("search-sentinel-2-l2a-T36NYH.json")]
    mosaics_all = [*mosaics, _fixture_item("search-sentinel-2-global-mosaics-31SDV.json")]
    return World(layout, l2a_all, mosaics_all)


def _serve(app: StacApiApp, root_path: str) -> Iterator[Running]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield Running(f"http://127.0.0.1:{server.port}{root_path}/", app, server.port)
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


@pytest.fixture(scope="module")
def cdse(world: World) -> Iterator[Running]:
    yield from _serve(StacApiApp(cdse_stac_config(world.layout)), "/v1")


@pytest.fixture(scope="module")
def client(cdse: Running) -> Client:
    return Client.open(cdse.url)


def _order(items: list[dict[str, Any]]) -> list[str]:
    """The documented default order: datetime, then id."""
    return [i["id"] for i in sorted(items, key=lambda i: (_instant(i), i["id"]))]


def _instant(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))


def _ids(search: Any) -> list[str]:
    return [item.id for item in search.items()]


def _tile_items(world: World, tile: str) -> list[dict[str, Any]]:
    return [i for i in world.l2a if i["properties"]["grid:code"] == f"MGRS-{tile}"]


# -- landing page, conformance, collections, queryables --------------------------------


def test_landing_page_conforms_like_recorded_cdse(cdse: Running) -> None:
    recorded = json.loads((FIXTURES / "landing-page.json").read_text())
    landing = requests.get(cdse.url, timeout=10).json()
    assert landing["conformsTo"] == recorded["conformsTo"]
    assert landing["id"] == recorded["id"]
    rels = {(link["rel"], link.get("method")) for link in landing["links"]}
    for expected in [
        ("conformance", None),
        ("data", None),
        ("search", "GET"),
        ("search", "POST"),
        ("http://www.opengis.net/def/rel/ogc/1.0/queryables", None),
    ]:
        assert expected in rels
    assert all(link["href"].startswith(cdse.url) for link in landing["links"])
    conformance = requests.get(cdse.url + "conformance", timeout=10).json()
    assert conformance["conformsTo"] == recorded["conformsTo"]
    # The root answers with and without its trailing slash, never with a redirect.
    bare = requests.get(cdse.url.rstrip("/"), timeout=10, allow_redirects=False)
    assert bare.status_code == 200 and bare.json()["id"] == recorded["id"]


def test_links_follow_the_request_host(cdse: Running) -> None:
    answer = requests.get(
        cdse.url + "collections", headers={"Host": f"localhost:{cdse.port}"}, timeout=10
    ).json()
    hrefs = [link["href"] for c in answer["collections"] for link in c["links"]]
    assert any(h.startswith(f"http://localhost:{cdse.port}/v1/") for h in hrefs)
    assert not any("127.0.0.1" in h or "stac.dataspace" in h for h in hrefs)


def test_collections_through_pystac_client(client: Client, cdse: Running) -> None:
    assert {c.id for c in client.get_collections()} == {L2A, MOSAICS}
    mosaics = client.get_collection(MOSAICS)
    recorded = json.loads((FIXTURES / "collection-sentinel-2-global-mosaics.json").read_text())
    assert mosaics.title == recorded["title"]
    assert mosaics.get_self_href() == cdse.url + f"collections/{MOSAICS}"
    document = requests.get(cdse.url + f"collections/{MOSAICS}", timeout=10).json()
    for link in document["links"]:
        assert "stac.dataspace.copernicus.eu" not in link["href"]
    l2a = requests.get(cdse.url + f"collections/{L2A}", timeout=10).json()
    assert {"B02_10m", "SCL_20m", "CLD_20m"} <= set(l2a["item_assets"])
    assert pystac.Collection.from_dict(l2a).id == L2A
    missing = requests.get(cdse.url + "collections/nope", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["code"] == "NotFoundError"


@pytest.mark.parametrize("path", ["queryables", f"collections/{L2A}/queryables"])
def test_queryables(cdse: Running, path: str) -> None:
    response = requests.get(cdse.url + path, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/schema+json")
    schema = response.json()
    assert schema["$id"] == cdse.url + path
    expected = {
        "id",
        "collection",
        "datetime",
        "geometry",
        "grid:code",
        "eo:cloud_cover",
        "eo:snow_cover",
        "platform",
        "processing:version",
        "sat:relative_orbit",
    }
    assert expected <= set(schema["properties"])


# -- items and the recorded fixture items ----------------------------------------------


def test_fixture_items_are_served_and_point_to_the_sandbox(cdse: Running) -> None:
    for collection, item_id, band in [
        (L2A, FIXTURE_L2A_ID, "B02_10m"),
        (MOSAICS, FIXTURE_MOSAIC_ID, "B02"),
    ]:
        url = cdse.url + f"collections/{collection}/items/{item_id}"
        answer = requests.get(url, timeout=10)
        assert answer.status_code == 200
        item = pystac.Item.from_dict(answer.json())
        assert item.id == item_id
        assert item.get_self_href() == url
        asset = answer.json()["assets"][band]
        assert asset["href"].startswith("s3://eodata/")
        alternate = asset["alternate"]["https"]["href"]
        assert alternate.startswith(f"http://127.0.0.1:{cdse.port}/odata/v1/Products(")
        for link in answer.json()["links"]:
            if link["rel"] in ("self", "root", "parent", "collection"):
                assert link["href"].startswith(cdse.url)


def test_fixture_items_can_be_left_out(world: World) -> None:
    app = StacApiApp(cdse_stac_config(world.layout, include_fixture_items=False))
    assert FIXTURE_L2A_ID not in app.indexes()[L2A].by_id
    assert len(app.indexes()[L2A].records) == len(world.l2a) - 1


def test_unknown_item_is_a_json_404(cdse: Running) -> None:
    for path in (f"collections/{L2A}/items/nope", "collections/nope/items", "nowhere"):
        answer = requests.get(cdse.url + path, timeout=10)
        assert answer.status_code == 404
        assert set(answer.json()) == {"code", "description"}


def test_href_rewrites_can_change_after_start(cdse: Running) -> None:
    rewrites = cdse.app.config.href_rewrites
    key = "https://zipper.dataspace.copernicus.eu/"
    before = rewrites[key]
    rewrites[key] = "http://127.0.0.1:9/zipper/"
    try:
        item = requests.get(cdse.url + f"collections/{L2A}/items/{FIXTURE_L2A_ID}", timeout=10)
        alternate = item.json()["assets"]["B02_10m"]["alternate"]["https"]["href"]
        assert alternate.startswith("http://127.0.0.1:9/zipper/odata/v1/")
    finally:
        rewrites[key] = before


# -- search through pystac-client ------------------------------------------------------


def test_search_by_collection_pages_over_200_items(client: Client, world: World) -> None:
    search = client.search(collections=[L2A], limit=200)
    pages = list(search.pages_as_dicts())
    assert len(pages) == 2
    assert [p["numberReturned"] for p in pages] == [200, len(world.l2a) - 200]
    assert all(p["numberMatched"] == len(world.l2a) for p in pages)
    ids = [f["id"] for p in pages for f in p["features"]]
    assert ids == _order(world.l2a)  # one logical list, no duplicates, nothing lost
    assert len(set(ids)) == len(ids)
    assert search.matched() == len(world.l2a)


def test_get_paging_matches_post_paging(client: Client, world: World) -> None:
    post = _ids(client.search(collections=[L2A], limit=37, sortby="-properties.eo:cloud_cover"))
    get = _ids(
        client.search(
            collections=[L2A], limit=37, sortby="-properties.eo:cloud_cover", method="GET"
        )
    )
    assert post == get
    assert len(post) == len(set(post)) == len(world.l2a)


def test_max_items(client: Client) -> None:
    assert len(_ids(client.search(collections=[L2A], max_items=25, limit=10))) == 25


def test_search_by_ids(client: Client, world: World) -> None:
    wanted = [world.l2a[5]["id"], FIXTURE_L2A_ID, FIXTURE_MOSAIC_ID]
    assert set(_ids(client.search(ids=wanted))) == set(wanted)
    assert _ids(client.search(ids=wanted, collections=[MOSAICS])) == [FIXTURE_MOSAIC_ID]


def test_search_by_bbox_and_intersects(client: Client, world: World) -> None:
    expected = _order(_tile_items(world, "55WFR"))
    by_bbox = _ids(client.search(collections=[L2A], bbox=[149.5, 67.8, 150.0, 68.0], limit=200))
    assert by_bbox == expected
    area = _polygon((150.0, 68.0, 150.5, 68.2))
    assert _ids(client.search(collections=[L2A], intersects=area, limit=200)) == expected
    assert _ids(client.search(collections=[L2A], intersects=area, method="GET")) == expected
    both = _ids(client.search(collections=[L2A], bbox=[-140, 60, 160, 80], limit=200))
    assert len(both) == 240
    # A bbox over the antimeridian (west > east) covers both sides.
    wrapped = _ids(client.search(collections=[L2A], bbox=[140, 60, -130, 80], limit=200))
    assert set(wrapped) == {
        i["id"] for i in _tile_items(world, "55WFR") + _tile_items(world, "08WMB")
    }


def test_search_by_datetime(client: Client, world: World) -> None:
    def between(start: datetime | None, end: datetime | None) -> list[str]:
        return _order(
            [
                i
                for i in world.l2a
                if (start is None or _instant(i) >= start) and (end is None or _instant(i) <= end)
            ]
        )

    start, end = datetime(2024, 6, 10, tzinfo=UTC), datetime(2024, 6, 20, 10, 0, 0, tzinfo=UTC)
    closed = _ids(client.search(collections=[L2A], datetime=[start, end], limit=200))
    assert closed == between(start, end)
    assert len(closed) == 33  # 11 days x 3 tiles, end inclusive
    text = "2024-06-10T00:00:00Z/2024-06-20T10:00:00+00:00"
    assert _ids(client.search(collections=[L2A], datetime=text, method="GET")) == closed
    assert _ids(client.search(collections=[L2A], datetime="../2020-12-31T00:00:00Z")) == [
        FIXTURE_L2A_ID
    ]
    open_end = _ids(client.search(collections=[L2A], datetime="2024-08-15T00:00:00Z/..", limit=200))
    assert open_end == between(datetime(2024, 8, 15, tzinfo=UTC), None)
    instant = _ids(client.search(collections=[L2A], datetime="2024-06-03T10:00:00Z"))
    assert len(instant) == 3
    # Mosaics match by their time span: a day inside Q2 finds the Q2 mosaics.
    quarter = _ids(client.search(collections=[MOSAICS], datetime="2024-05-05T00:00:00Z"))
    assert sorted(quarter) == sorted(f"Sentinel-2_mosaic_2024_Q2_{t}_0_0" for t, _, _ in TILES)


def test_filter_cql2_json(client: Client, world: World) -> None:
    expression = {
        "op": "and",
        "args": [
            {"op": "<", "args": [{"property": "eo:cloud_cover"}, 30]},
            {"op": "=", "args": [{"property": "grid:code"}, "MGRS-33XVG"]},
            {"op": ">=", "args": [{"property": "datetime"}, {"timestamp": "2024-07-01T00:00:00Z"}]},
        ],
    }
    expected = _order(
        [
            i
            for i in _tile_items(world, "33XVG")
            if i["properties"]["eo:cloud_cover"] < 30
            and _instant(i) >= datetime(2024, 7, 1, tzinfo=UTC)
        ]
    )
    assert expected
    assert _ids(client.search(collections=[L2A], filter=expression)) == expected
    assert _ids(client.search(collections=[L2A], filter=expression, method="GET")) == expected


def test_filter_cql2_text(client: Client, world: World) -> None:
    text = (
        "\"eo:cloud_cover\" <= 20 AND platform = 'sentinel-2b' "
        "AND S_INTERSECTS(geometry, "
        "POLYGON((-134 68.5, -133 68.5, -133 68.7, -134 68.7, -134 68.5)))"
    )
    expected = _order(
        [
            i
            for i in _tile_items(world, "08WMB")
            if i["properties"]["eo:cloud_cover"] <= 20
            and i["properties"]["platform"] == "sentinel-2b"
        ]
    )
    assert expected
    for method in ("POST", "GET"):
        search = client.search(
            collections=[L2A], filter=text, filter_lang="cql2-text", method=method
        )
        assert _ids(search) == expected


def test_filter_timestamp_between_and_missing_properties(client: Client, world: World) -> None:
    between = (
        "datetime BETWEEN TIMESTAMP('2024-06-02T00:00:00Z') AND TIMESTAMP('2024-06-04T00:00:00Z')"
    )
    assert len(_ids(client.search(collections=[L2A], filter=between, filter_lang="cql2-text"))) == 6
    dates = "datetime >= DATE('2024-08-19') AND \"sat:relative_orbit\" = 17"
    assert len(_ids(client.search(collections=[L2A], filter=dates, filter_lang="cql2-text"))) == 1
    # A property no item has is null: nothing matches, and it is no error.
    absent = '"sat:unknown" = 3 OR NOT ("sat:unknown" = 4)'
    assert _ids(client.search(collections=[L2A], filter=absent, filter_lang="cql2-text")) == []


def test_sortby(client: Client, world: World) -> None:
    newest_first = _ids(
        client.search(collections=[L2A], sortby="-properties.datetime,+id", limit=200, max_items=9)
    )
    expected = sorted(world.l2a, key=lambda i: i["id"])
    expected = sorted(expected, key=_instant, reverse=True)
    assert newest_first == [i["id"] for i in expected[:9]]
    clearest = _ids(
        client.search(
            collections=[L2A],
            sortby=[{"field": "properties.eo:cloud_cover", "direction": "asc"}],
            max_items=20,
            limit=7,
        )
    )
    covers = {i["id"]: i["properties"]["eo:cloud_cover"] for i in world.l2a}
    assert [covers[i] for i in clearest] == sorted(covers.values())[:20]


# -- search with plain requests ---------------------------------------------------------


def test_post_next_link_carries_the_token_in_the_body(cdse: Running, world: World) -> None:
    body = {"collections": [L2A], "limit": 100, "bbox": [-180, -90, 180, 90]}
    seen: list[str] = []
    answer = requests.post(cdse.url + "search", json=body, timeout=10).json()
    while True:
        seen += [f["id"] for f in answer["features"]]
        assert answer["numberMatched"] == len(world.l2a)
        following = [link for link in answer["links"] if link["rel"] == "next"]
        if not following:
            break
        (next_link,) = following
        assert next_link["method"] == "POST"
        assert next_link["body"]["bbox"] == body["bbox"] and "token" in next_link["body"]
        answer = requests.post(next_link["href"], json=next_link["body"], timeout=10).json()
    assert seen == _order(world.l2a)


def test_get_next_link_keeps_the_query(cdse: Running, world: World) -> None:
    url: str | None = cdse.url + f"search?collections={L2A}&limit=150&bbox=140,60,160,80"
    seen: list[str] = []
    while url:
        answer = requests.get(url, timeout=10).json()
        seen += [f["id"] for f in answer["features"]]
        url = next((link["href"] for link in answer["links"] if link["rel"] == "next"), None)
        assert url is None or ("bbox=140" in url and "token=" in url)
    assert seen == _order(_tile_items(world, "55WFR"))


def test_collection_items_endpoint(cdse: Running, world: World) -> None:
    url: str | None = cdse.url + f"collections/{L2A}/items?limit=100"
    seen: list[str] = []
    while url:
        answer = requests.get(url, timeout=10).json()
        seen += [f["id"] for f in answer["features"]]
        url = next((link["href"] for link in answer["links"] if link["rel"] == "next"), None)
    assert seen == _order(world.l2a)
    default_page = requests.get(cdse.url + f"collections/{MOSAICS}/items", timeout=10).json()
    assert default_page["numberReturned"] == 10
    assert default_page["numberMatched"] == len(world.mosaics)


def test_query_extension_and_fields_are_accepted(cdse: Running, world: World) -> None:
    body = {
        "collections": [L2A],
        "query": {"eo:cloud_cover": {"lt": 10}, "grid:code": {"eq": "MGRS-55WFR"}},
        "fields": {"include": ["id"], "exclude": []},
        "limit": 200,
    }
    answer = requests.post(cdse.url + "search", json=body, timeout=10)
    assert answer.status_code == 200
    expected = [i for i in _tile_items(world, "55WFR") if i["properties"]["eo:cloud_cover"] < 10]
    assert [f["id"] for f in answer.json()["features"]] == _order(expected)


def test_limit_over_the_maximum_is_a_400(cdse: Running) -> None:
    for response in (
        requests.post(cdse.url + "search", json={"collections": [L2A], "limit": 201}, timeout=10),
        requests.get(cdse.url + "search", params={"collections": L2A, "limit": 201}, timeout=10),
        requests.get(cdse.url + f"collections/{L2A}/items?limit=201", timeout=10),
    ):
        assert response.status_code == 400
        assert "200" in response.json()["description"]
    ok = requests.post(cdse.url + "search", json={"collections": [L2A], "limit": 200}, timeout=10)
    assert ok.status_code == 200
    assert ok.json()["numberReturned"] == 200


def test_limit_over_the_maximum_through_pystac_client(client: Client) -> None:
    with pytest.raises(APIError):
        next(iter(client.search(collections=[L2A], limit=201).items()))


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"datetime": "2024-06-01"}, "datetime"),
        ({"datetime": "2024-06-01T00:00:00+02:00"}, "datetime"),
        ({"datetime": "2024-06-01T00:00:00"}, "datetime"),
        ({"datetime": "2024-07-01T00:00:00Z/2024-06-01T00:00:00Z"}, "datetime"),
        ({"datetime": "../.."}, "datetime"),
        ({"bbox": [10, 20, 30]}, "bbox"),
        ({"bbox": [10, 80, 30, 70]}, "bbox"),
        ({"collections": ["no-such-collection"]}, "collection"),
        ({"filter": "eo:cloud_cover <<< 3", "filter-lang": "cql2-text"}, "filter"),
        ({"filter": {"op": "nonsense"}}, "filter"),
        ({"filter": "x = 1", "filter-lang": "cql3"}, "filter-lang"),
        ({"intersects": {"type": "Polygon", "coordinates": "nope"}}, "intersects"),
        ({"limit": 0}, "limit"),
        ({"token": "garbage"}, "token"),
        ({"sortby": [{"field": "id", "direction": "sideways"}]}, "direction"),
    ],
)
def test_bad_post_searches_are_400(cdse: Running, body: dict[str, Any], word: str) -> None:
    response = requests.post(cdse.url + "search", json=body, timeout=10)
    assert response.status_code == 400, response.text
    error = response.json()
    assert set(error) == {"code", "description"}
    assert word in error["description"].lower()


def test_bad_get_search_and_bad_json_are_400(cdse: Running) -> None:
    for params in ({"datetime": "yesterday"}, {"bbox": "1,2,x,4"}, {"intersects": "{"}):
        assert requests.get(cdse.url + "search", params=params, timeout=10).status_code == 400
    broken = requests.post(
        cdse.url + "search",
        data="{not json",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert broken.status_code == 400
    assert "json" in broken.json()["description"].lower()
    wrong_method = requests.delete(cdse.url + "search", timeout=10)
    assert wrong_method.status_code == 405


# -- PGC and TCVIS stand-ins, generic configs -------------------------------------------


def test_pgc_stand_in(world: World) -> None:
    config = pgc_stac_config(world.layout)
    assert [c.id for c in config.collections] == [
        "arcticdem-mosaics-v4.1-2m",
        "arcticdem-mosaics-v4.1-10m",
        "arcticdem-mosaics-v4.1-32m",
    ]
    assert all(c.max_limit is None for c in config.collections)
    app = StacApiApp(config)
    for running in _serve(app, "/api/v1"):
        # The data server's port is known only now: fill in the rewrite after start.
        config.href_rewrites[PGC_DATA_PLACEHOLDER] = "http://127.0.0.1:4321/pgc/"
        client = Client.open(running.url)
        items = list(client.search(bbox=[149.0, 67.5, 149.5, 67.7], limit=500).items())
        assert sorted(i.collection_id for i in items) == [
            "arcticdem-mosaics-v4.1-10m",
            "arcticdem-mosaics-v4.1-32m",
        ]
        href = items[0].assets["dem"].href
        assert href.startswith("http://127.0.0.1:4321/pgc/arcticdem/mosaics/v4.1/10m/")
        # PGC_STAC_PLACEHOLDER stands for the API's own root, without any set-up.
        (alternate,) = [link for link in items[0].links if link.rel == "alternate"]
        assert alternate.href.startswith(running.url + "collections/")
        empty = requests.get(
            running.url + "collections/arcticdem-mosaics-v4.1-2m/items", timeout=10
        )
        assert empty.json()["numberMatched"] == 0
        collection = client.get_collection("arcticdem-mosaics-v4.1-32m")
        assert collection.extent.spatial.bboxes == [[148.0, 67.0, 152.0, 69.0]]


def test_tcvis_stand_in(world: World) -> None:
    config = tcvis_stac_config(world.layout)
    config.href_rewrites[TCVIS_DATA_PLACEHOLDER] = "{host_url}data/"
    assert [c.id for c in config.collections] == [
        "TCTrend_SR_2003-2022_TCVIS",
        "TCTrend_SR_2005-2024_TCVIS",
    ]
    for running in _serve(StacApiApp(config), "/stac/v1"):
        client = Client.open(running.url)
        items = list(client.search(collections=["TCTrend_SR_2005-2024_TCVIS"]).items())
        assert [i.id for i in items] == ["tile_0_0"]
        assert items[0].assets["data"].href == (
            f"http://127.0.0.1:{running.port}/data/TCTrend_SR_2005-2024_TCVIS/tile_0_0.tif"
        )


def test_missing_item_folders_serve_empty_collections(tmp_path: Path) -> None:
    layout = WorldLayout(tmp_path / "not-built")
    assert tcvis_stac_config(layout).collections == []
    config = cdse_stac_config(layout, include_fixture_items=False)
    for running in _serve(StacApiApp(config), "/v1"):
        answer = requests.post(running.url + "search", json={}, timeout=10).json()
        assert answer["features"] == [] and answer["numberMatched"] == 0


def test_generic_config_and_broken_item_file(tmp_path: Path) -> None:
    folder = tmp_path / "things"
    _write(folder, [_tcvis_item("things", "a")])
    (folder / "broken.json").write_text("{")
    config = StacApiConfig(
        title="t",
        root_path="/",
        collections=[CollectionSpec(id="things", items_dir=folder, document={})],
        conforms_to=[],
    )
    for running in _serve(StacApiApp(config), ""):
        answer = requests.get(running.url + "search", timeout=10)
        assert answer.status_code == 500
        assert "broken.json" in answer.json()["description"]
        (folder / "broken.json").unlink()
        assert requests.get(running.url + "search", timeout=10).json()["numberMatched"] == 1


# -- small parsers ----------------------------------------------------------------------


def test_token_round_trip_and_parsers() -> None:
    assert decode_token(encode_token(12345)) == 12345
    assert parse_bbox([170, -10, -170, 10]).bounds == (-180.0, -10.0, 180.0, 10.0)
    start, end = parse_request_interval("2024-01-01T00:00:00.123456789Z/..")
    assert start % 1_000_000 == 123456 and end > start
