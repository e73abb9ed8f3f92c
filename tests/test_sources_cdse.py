"""Scene discovery on CDSE, against the sandbox's CDSE STAC stand-in.

Expected results are computed from the world's manifest (``world.json``) and item files,
never hard-coded, so the tests follow the world builder when its scenes change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon, box, shape
from shapely.geometry.base import BaseGeometry

from darts.errors import ConfigError
from darts.net import HttpClient, NetworkSettings, OfflineError, forbid_sockets, get_gate
from darts.sandbox.layout import WorldLayout
from darts.sandbox.servers.faults import FaultConfig
from darts.sandbox.service import Sandbox
from darts.sources.cdse import (
    DiscoveryError,
    describe_query,
    discover_cdse,
    discover_offline,
    item_tile,
    no_scenes_message,
    scene_footprint,
)
from darts.sources.query import SceneFilters, SceneSelection, date_spans
from darts.sources.scene_ids import write_scene_id_file

FAST = NetworkSettings(timeout_s=20, max_retries=8, backoff_base_s=0.01, backoff_max_s=0.05)
ANY_COVER = {"max_cloud_cover": 100, "max_snow_cover": 100}
TODAY = date(2030, 1, 1)
UNUSED_URL = "http://127.0.0.1:9/v1/"  # discard port: nothing may connect to it


@dataclass(frozen=True)
class Scene:
    id: str
    tile: str
    when: datetime
    cloud: float
    snow: float
    footprint: BaseGeometry


@dataclass(frozen=True)
class World:
    scenes: tuple[Scene, ...]
    main_tile: str

    def ids(self, keep: Callable[[Scene], bool]) -> list[str]:
        chosen = [s for s in self.scenes if keep(s)]
        return [s.id for s in sorted(chosen, key=lambda s: (s.when, s.id))]

    def tiles(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for scene in self.scenes:
            counts[scene.tile] = counts.get(scene.tile, 0) + 1
        return counts


@pytest.fixture(scope="module")
def world(sandbox_world: WorldLayout) -> World:
    manifest = json.loads(sandbox_world.manifest.read_text())
    items_dir = sandbox_world.cdse_items / "sentinel-2-l2a"
    scenes = []
    for entry in manifest["scenes"]:
        item = json.loads((items_dir / f"{entry['id']}.json").read_text())
        scenes.append(
            Scene(
                id=entry["id"],
                tile=entry["tile"],
                when=datetime.fromisoformat(entry["datetime"]),
                cloud=entry["eo:cloud_cover"],
                snow=entry["eo:snow_cover"],
                footprint=shape(item["geometry"]),
            )
        )
    return World(tuple(scenes), manifest["main_tile"])


@pytest.fixture
def stac(sandbox: Sandbox, loopback_only: Any) -> Iterator[str]:
    sandbox.clear_requests()
    yield sandbox.endpoints.cdse_stac_url


def _discover(url: str, selection: SceneSelection, filters: SceneFilters, **kw: Any) -> list[str]:
    items = discover_cdse(selection, filters, stac_url=url, net=FAST, today=TODAY, **kw)
    return [item["id"] for item in items]


def _searches(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [
        r
        for r in sandbox.injector("cdse-stac").requests()
        if r["method"] == "POST" and r["path"].endswith("/search")
    ]


# -- tiles and filters -----------------------------------------------------------------


def test_tile_ids_with_default_filters(stac: str, world: World) -> None:
    selection = SceneSelection(tile_ids=(f"T{world.main_tile.lower()}",))
    items = discover_cdse(selection, SceneFilters(), stac_url=stac, net=FAST, today=TODAY)
    expected = world.ids(lambda s: s.tile == world.main_tile and s.cloud <= 10 and s.snow <= 10)
    assert expected, "the world should hold clear main-tile scenes"
    assert len(expected) < world.tiles()[world.main_tile], "the filters should drop some"
    assert [i["id"] for i in items] == expected
    for item in items:
        assert item_tile(item) == world.main_tile
        assert isinstance(scene_footprint(item), Polygon)
        assert item["assets"], "full item dicts, assets included"


def _in_range(s: Scene) -> bool:
    return date(2020, 1, 1) <= s.when.date() <= date(2023, 12, 31)


FILTER_CASES: list[tuple[str, SceneFilters, Callable[[Scene], bool]]] = [
    (
        "dates",
        SceneFilters(start_date=date(2020, 1, 1), end_date=date(2023, 12, 31), **ANY_COVER),
        _in_range,
    ),
    ("months", SceneFilters(months=(7,), **ANY_COVER), lambda s: s.when.month == 7),
    ("years", SceneFilters(years=(2020, 2023), **ANY_COVER), lambda s: s.when.year in (2020, 2023)),
    ("quarters", SceneFilters(quarters=(3,), **ANY_COVER), lambda s: s.when.month in (7, 8, 9)),
    ("cloud", SceneFilters(max_cloud_cover=5, max_snow_cover=100), lambda s: s.cloud <= 5),
    ("snow", SceneFilters(max_cloud_cover=100, max_snow_cover=10), lambda s: s.snow <= 10),
    (
        "snow-100-disables",
        SceneFilters(max_cloud_cover=30, max_snow_cover=100),
        lambda s: s.cloud <= 30,
    ),
]


@pytest.mark.parametrize(
    ("name", "filters", "keep"), FILTER_CASES, ids=[c[0] for c in FILTER_CASES]
)
def test_each_filter(
    stac: str, world: World, name: str, filters: SceneFilters, keep: Callable[[Scene], bool]
) -> None:
    tiles = ("08WNB", "08WPB")
    expected = world.ids(lambda s: s.tile in tiles and keep(s))
    everything = world.ids(lambda s: s.tile in tiles)
    assert expected and len(expected) < len(everything), f"{name}: the world cannot test this"
    assert _discover(stac, SceneSelection(tile_ids=tiles), filters) == expected
    if name == "snow-100-disables":
        assert any(s.snow > 10 for s in world.scenes if s.id in expected)


def test_more_than_one_page(stac: str, world: World, sandbox: Sandbox) -> None:
    big_tile, count = max(world.tiles().items(), key=lambda kv: kv[1])
    assert count >= 230
    filters = SceneFilters(**ANY_COVER)
    found = _discover(stac, SceneSelection(tile_ids=(big_tile,)), filters)
    assert found == world.ids(lambda s: s.tile == big_tile)
    assert len(_searches(sandbox)) == 2  # one span, two pages of 200

    sandbox.clear_requests()
    with HttpClient(FAST) as client:  # a caller's own client works the same
        items = discover_cdse(
            SceneSelection(tile_ids=(big_tile,)),
            filters,
            stac_url=stac,
            net=client,
            page_limit=100,
            today=TODAY,
        )
    assert [i["id"] for i in items] == found
    assert len(_searches(sandbox)) == 3


def test_one_request_per_contiguous_span(stac: str, world: World, sandbox: Sandbox) -> None:
    filters = SceneFilters(years=(2019, 2020, 2021), months=(6, 7, 8), **ANY_COVER)
    spans = date_spans(filters, TODAY)
    assert len(spans) == 3
    found = _discover(stac, SceneSelection(tile_ids=(world.main_tile,)), filters)
    expected = world.ids(
        lambda s: (
            s.tile == world.main_tile
            and s.when.year in (2019, 2020, 2021)
            and s.when.month in (6, 7, 8)
        )
    )
    assert found == expected
    assert len(_searches(sandbox)) == len(spans)


def test_nothing_found_gives_a_clear_message(stac: str, world: World) -> None:
    selection = SceneSelection(tile_ids=("08WPB",))
    filters = SceneFilters(years=(2019,), max_cloud_cover=1)
    assert not world.ids(lambda s: s.tile == "08WPB" and s.when.year == 2019)
    assert _discover(stac, selection, filters) == []
    message = no_scenes_message(selection, filters, today=TODAY)
    assert "no Sentinel-2 L2A scenes found for tiles 08WPB" in message
    assert "years 2019" in message and "cloud cover <= 1%" in message
    assert "relax the filters" in message and "--max-cloud-cover" in message
    assert "1 date span" in describe_query(selection, filters, today=TODAY)


# -- AOIs ------------------------------------------------------------------------------

_TO_POLAR = Transformer.from_crs(4326, 3413, always_xy=True)
_FROM_POLAR = Transformer.from_crs(3413, 4326, always_xy=True)


def _polar_square(lon: float, lat: float, half_m: float) -> Polygon:
    x, y = _TO_POLAR.transform(lon, lat)
    return box(x - half_m, y - half_m, x + half_m, y + half_m)


def _to_wgs84(geometry: BaseGeometry) -> BaseGeometry:
    dense = shapely.segmentize(geometry, 100.0)
    return shapely.transform(
        dense, lambda xy: list(zip(*_FROM_POLAR.transform(*xy.T), strict=True))
    )


def _write_aoi(path: Path, geometries: list[BaseGeometry]) -> Path:
    gpd.GeoDataFrame(geometry=geometries, crs=3413).to_file(path)
    return path


def _pick_point(world: World, tile: str, avoid: tuple[str, ...]) -> tuple[float, float]:
    """A lon/lat inside every footprint of ``tile`` and outside those of ``avoid``."""
    inside = shapely.intersection_all([s.footprint for s in world.scenes if s.tile == tile])
    outside = shapely.union_all([s.footprint for s in world.scenes if s.tile in avoid])
    region = inside.difference(outside.buffer(0.02))
    assert not region.is_empty, f"no ground seen only by {tile}"
    point = region.representative_point()
    return point.x, point.y


def test_aoi_in_polar_stereographic(
    stac: str, world: World, tmp_path: Path, sandbox: Sandbox
) -> None:
    lon, lat = _pick_point(world, world.main_tile, avoid=("08WPB", "09WUS"))
    square = _polar_square(lon, lat, 1000)
    path = _write_aoi(tmp_path / "aoi.gpkg", [square])
    aoi = _to_wgs84(square)
    found = _discover(stac, SceneSelection(aoi_file=path), SceneFilters(**ANY_COVER))
    expected = world.ids(lambda s: s.footprint.intersects(aoi))
    assert expected and {s.tile for s in world.scenes if s.id in expected} == {world.main_tile}
    assert found == expected
    assert len(_searches(sandbox)) == 1


def test_multipolygon_aoi_is_one_search(
    stac: str, world: World, tmp_path: Path, sandbox: Sandbox
) -> None:
    west = _polar_square(*_pick_point(world, world.main_tile, ("08WPB", "09WUS")), 800)
    east = _polar_square(*_pick_point(world, "08WPB", (world.main_tile, "09WUS")), 800)
    path = _write_aoi(tmp_path / "two.gpkg", [MultiPolygon([west, east])])
    filters = SceneFilters(years=(2018, 2020, 2023), **ANY_COVER)
    found = _discover(stac, SceneSelection(aoi_file=path), filters)
    aoi = _to_wgs84(MultiPolygon([west, east]))
    expected = world.ids(
        lambda s: s.when.year in (2018, 2020, 2023) and s.footprint.intersects(aoi)
    )
    assert {s.tile for s in world.scenes if s.id in expected} == {world.main_tile, "08WPB"}
    assert found == expected
    assert len(_searches(sandbox)) == len(date_spans(filters, TODAY))


def test_aoi_elsewhere_finds_nothing(stac: str, tmp_path: Path) -> None:
    path = _write_aoi(tmp_path / "svalbard.gpkg", [_polar_square(16.0, 78.2, 5000)])
    selection = SceneSelection(aoi_file=path)
    assert _discover(stac, selection, SceneFilters(**ANY_COVER)) == []
    assert f"AOI {path}" in no_scenes_message(selection, SceneFilters(), today=TODAY)


def test_bad_aoi_fails_before_any_request(stac: str, tmp_path: Path, sandbox: Sandbox) -> None:
    path = tmp_path / "aoi.gpkg"
    path.write_text("not a geopackage")
    with pytest.raises(ConfigError, match=r"--aoi-file: cannot read"):
        _discover(stac, SceneSelection(aoi_file=path), SceneFilters())
    assert sandbox.injector("cdse-stac").requests() == []


# -- scene ids -------------------------------------------------------------------------


def test_scene_ids_ignore_filters_and_come_back_ordered(stac: str, world: World) -> None:
    cloudiest = max(world.scenes, key=lambda s: s.cloud)
    picked = [world.scenes[-1].id, cloudiest.id, world.scenes[0].id + ".SAFE"]
    found = _discover(stac, SceneSelection(scene_ids=tuple(picked)), SceneFilters())
    wanted = {p.removesuffix(".SAFE") for p in picked}
    assert found == world.ids(lambda s: s.id in wanted)


def test_all_scene_ids_in_batches(
    stac: str, world: World, sandbox: Sandbox, tmp_path: Path
) -> None:
    every = [s.id for s in world.scenes]
    assert len(every) > 200
    path = write_scene_id_file(tmp_path / "ids.json", every)
    found = _discover(stac, SceneSelection(scene_id_file=path), SceneFilters())
    assert found == world.ids(lambda s: True)
    assert len(_searches(sandbox)) == 2  # 200 + the rest


def test_unknown_scene_ids_are_all_listed(stac: str, world: World) -> None:
    known = world.scenes[0].id
    ghosts = [
        "S2A_MSIL2A_20190101T000000_N0500_R001_T08WNB_20190101T000000",
        "S2B_MSIL2A_20190102T000000_N0500_R001_T08WNB_20190102T000000",
    ]
    with pytest.raises(DiscoveryError) as err:
        _discover(stac, SceneSelection(scene_ids=(known, *ghosts)), SceneFilters())
    message = str(err.value)
    assert message.startswith("2 of 3 scene id(s) not found in collection sentinel-2-l2a")
    assert all(g in message for g in ghosts) and known not in message


def test_gee_ids_are_refused_without_a_request(stac: str, sandbox: Sandbox) -> None:
    with pytest.raises(ConfigError, match="Earth Engine form"):
        _discover(
            stac,
            SceneSelection(scene_ids=("20230701T194909_20230701T195350_T11XNA",)),
            SceneFilters(),
        )
    assert sandbox.injector("cdse-stac").requests() == []


# -- reliability -----------------------------------------------------------------------


def test_rate_limits_are_retried(stac: str, world: World, sandbox: Sandbox) -> None:
    selection = SceneSelection(tile_ids=("08WNB", "09WUS"))
    filters = SceneFilters(
        years=(2022, 2023, 2024), months=(6, 7), max_snow_cover=100, max_cloud_cover=100
    )
    expected = world.ids(
        lambda s: (
            s.tile in ("08WNB", "09WUS")
            and s.when.year in (2022, 2023, 2024)
            and s.when.month in (6, 7)
        )
    )
    sandbox.set_faults(
        "cdse-stac", FaultConfig(error_rate=0.5, error_statuses=(429,), retry_after_s=0)
    )
    try:
        found = _discover(stac, selection, filters)
    finally:
        sandbox.set_faults("cdse-stac", FaultConfig())
    assert found == expected
    statuses = [r["status"] for r in sandbox.injector("cdse-stac").requests()]
    assert 429 in statuses and 200 in statuses


# -- offline ---------------------------------------------------------------------------


def test_offline_discovery_opens_no_socket(tmp_path: Path) -> None:
    ids = (
        "S2A_MSIL2A_20230702T200859_N0509_R129_T08WNB_20230703T010027",
        "S2A_MSIL2A_20240715T203849_N0510_R029_T08WNB_20240716T012536",
    )
    path = write_scene_id_file(tmp_path / "ids.json", ids)
    with forbid_sockets() as audit, get_gate().offline_mode():
        assert discover_offline(SceneSelection(scene_ids=ids)) == list(ids)
        assert discover_offline(SceneSelection(scene_id_file=path)) == list(ids)
        with pytest.raises(ConfigError, match="darts inference prep-data"):
            discover_offline(SceneSelection(scene_id_file=tmp_path / "missing.json"))
        for selection in (
            SceneSelection(tile_ids=("08WNB",)),
            SceneSelection(aoi_file=tmp_path / "aoi.gpkg"),
        ):
            with pytest.raises(
                ConfigError,
                match="give the scenes with --scene-ids or --scene-id-file, or pass "
                "--prep-data-scene-id-file",
            ):
                discover_offline(selection)
        # The online entry point with an offline gate: the client refuses the search
        # itself, naming the catalogue URL, before any socket opens.
        with pytest.raises(OfflineError, match=UNUSED_URL):
            discover_cdse(
                SceneSelection(tile_ids=("08WNB",)),
                SceneFilters(),
                stac_url=UNUSED_URL,
                net=FAST,
            )
        # A missing id file is reported before any connection would be considered.
        with pytest.raises(ConfigError, match="--prep-data-scene-id-file"):
            discover_cdse(
                SceneSelection(scene_id_file=tmp_path / "missing.json"),
                SceneFilters(),
                stac_url=UNUSED_URL,
                net=FAST,
            )
    assert audit.blocked == [] and audit.allowed == []


def test_offline_settings_refuse_fetching_by_id() -> None:
    ids = ("S2A_MSIL2A_20230702T200859_N0509_R129_T08WNB_20230703T010027",)
    offline = NetworkSettings(offline=True)
    with forbid_sockets() as audit:
        with pytest.raises(OfflineError, match="fetch 1 Sentinel-2 scene"):
            discover_cdse(
                SceneSelection(scene_ids=ids), SceneFilters(), stac_url=UNUSED_URL, net=offline
            )
        with pytest.raises(OfflineError, match="Sentinel-2"):
            discover_cdse(
                SceneSelection(tile_ids=("08WNB",)),
                SceneFilters(),
                stac_url=UNUSED_URL,
                net=offline,
            )
    assert audit.blocked == []


def test_page_limit_is_checked() -> None:
    with pytest.raises(ValueError, match="page_limit"):
        discover_cdse(
            SceneSelection(tile_ids=("08WNB",)),
            SceneFilters(),
            stac_url=UNUSED_URL,
            net=FAST,
            page_limit=500,
        )
