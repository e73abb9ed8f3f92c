"""The auxiliary data of a run: the ArcticDEM and TCVIS cubes and what fills them.

Composes the store layer (`Datacube`), the sources (`ArcticDemSource`, the TCVIS
sources) and the region planning of `aux_regions`. Three users:

- ``prep-data --aux`` plans the tiles every region needs and fills what is missing;
- the readiness check (offline) lists every tile that is not staged, per scene;
- the inference pipeline loads a scene's DEM and TCVIS, fetching missing tiles only
  when online.

TCVIS periods live side by side as groups of one repository (``tcvis.icechunk/
<period>``), never nested (pitfall 12); the period is chosen once, from the scene
year, by `darts.sources.tcvis.tcvis_period`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import xarray as xr

from darts.errors import ConfigError, DartsError
from darts.grid.cube import Window
from darts.net.http import HttpClient
from darts.pipelines.aux_regions import AuxRegion, region_bounds
from darts.pipelines.runtime import Runtime
from darts.sources.arcticdem import ArcticDemSource, arcticdem_spec
from darts.sources.arcticdem_index import ArcticDemIndex
from darts.sources.tcvis import tcvis_period, tcvis_spec, tcvis_tile_window, tcvis_tiles_for
from darts.store.datacube import Datacube
from darts.store.datacube.errors import CubeFillError, CubeNotFoundError, IncompleteCubeError
from darts.store.datacube.records import TileRecord
from darts.store.datacube.spec import CubeSpec, TileBuffer, TileFetch, TileSource
from darts.store.readiness import Gap

ARCTICDEM = "arcticdem"
TCVIS = "tcvis"


@dataclass(frozen=True)
class CubeKey:
    """One cube of a run: ArcticDEM (group "") or one TCVIS period (group = period)."""

    dataset: str  # ARCTICDEM | TCVIS
    group: str = ""

    def label(self, resolution_m: int) -> str:
        if self.dataset == ARCTICDEM:
            return f"ArcticDEM {resolution_m} m"
        return f"TCVIS {self.group}"


@dataclass
class CubeNeed:
    """The tiles one cube needs for a set of regions, and which are not staged."""

    key: CubeKey
    label: str
    tiles: list[str]
    missing: list[str]
    by_region: dict[str, list[str]]  # region name -> its tiles
    pixels_missing: int = 0  # cube pixels of the missing tiles (dry-run estimates)
    bytes_per_pixel: float = 0.0

    @property
    def bytes_estimate(self) -> int:
        return round(self.pixels_missing * self.bytes_per_pixel)


@dataclass
class CubeOutcome:
    key: CubeKey
    label: str
    fetched: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # tile -> reason
    seconds: float = 0.0
    # Of ``cached``: the tiles another process fetched while this run waited for them.
    reused: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "cube": self.label,
            "fetched": self.fetched,
            "cached": self.cached,
            "reused": self.reused,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
        }


class _TcvisTiling:
    """The TCVIS tiling alone, for planning without a source (offline: no
    credentials are needed to know which tiles a region needs)."""

    def __init__(self, spec: CubeSpec) -> None:
        self.spec = spec
        self.description = "TCVIS"

    def tiles_for(self, window: Window) -> list[str]:
        return tcvis_tiles_for(self.spec, window)

    def tile_window(self, tile_id: str) -> Window:
        return tcvis_tile_window(self.spec, tile_id)

    def fetch(self, tile_id: str, into: TileBuffer) -> TileFetch:  # pragma: no cover
        raise RuntimeError("the TCVIS tiling fetches nothing; use a TCVIS source")


class AuxCubes:
    """The two auxiliary datasets of a run: cube locations, specs and sources.

    Nothing here touches the network until a source fetches; constructing it offline
    is fine. Built from an offline runtime, it only reads: a cube is never created and
    a tile without a record raises `IncompleteCubeError` naming every such tile, so
    offline is a property of this object rather than a flag its callers pass.
    """

    def __init__(self, runtime: Runtime, http: HttpClient, *, resolution_m: int) -> None:
        self.runtime = runtime
        self.http = http
        self.resolution_m = resolution_m
        self.fetches = not runtime.net.offline
        self.arcticdem_spec = arcticdem_spec(resolution_m)
        self.tcvis_spec = tcvis_spec()
        self._cubes: dict[CubeKey, Datacube] = {}
        self._arcticdem_source: ArcticDemSource | None = None
        self._tcvis_sources: dict[str, TileSource] = {}

    # -- what each cube is --------------------------------------------------------------

    def spec(self, key: CubeKey) -> CubeSpec:
        return self.arcticdem_spec if key.dataset == ARCTICDEM else self.tcvis_spec

    def location(self, key: CubeKey) -> str:
        paths = self.runtime.paths
        return str(paths.arcticdem_dir if key.dataset == ARCTICDEM else paths.tcvis_dir)

    def label(self, key: CubeKey) -> str:
        return key.label(self.resolution_m)

    def cube(self, key: CubeKey, *, create: bool) -> Datacube | None:
        """The opened cube; None when it does not exist and ``create`` is false."""
        cube = self._cubes.get(key)
        if cube is not None:
            return cube
        try:
            cube = Datacube.open(
                self.location(key),
                self.spec(key),
                group=key.group,
                create=create,
                s3=self.runtime.s3,
                net=self.runtime.net,
                lock_timeout_s=self.runtime.lock_wait_s,
            )
        except CubeNotFoundError:
            if create:
                raise
            return None
        self._cubes[key] = cube
        return cube

    # -- where tiles come from ----------------------------------------------------------

    def tiling(self, key: CubeKey) -> TileSource:
        """An object answering ``tiles_for``/``tile_window`` without the network."""
        if key.dataset == ARCTICDEM:
            return self.source(key)
        return _TcvisTiling(self.tcvis_spec)

    def source(self, key: CubeKey) -> TileSource:
        if key.dataset == ARCTICDEM:
            if self._arcticdem_source is None:
                endpoints = self.runtime.endpoints
                paths = self.runtime.paths
                index = ArcticDemIndex(
                    endpoints.arcticdem_index_url,
                    paths.arcticdem_index_dir,
                    self.http,
                    also_read=(paths.legacy_arcticdem_index_dir,),
                )
                self._arcticdem_source = ArcticDemSource(
                    self.resolution_m,
                    index=index,
                    http=self.http,
                    pgc_stac_url=endpoints.pgc_stac_url,
                    spec=self.arcticdem_spec,
                )
            return self._arcticdem_source
        source = self._tcvis_sources.get(key.group)
        if source is None:
            source = _tcvis_source(self.runtime, self.http, key.group, self.tcvis_spec)
            self._tcvis_sources[key.group] = source
        return source

    # -- planning -----------------------------------------------------------------------

    def keys_for(self, regions: Iterable[AuxRegion]) -> list[CubeKey]:
        periods = sorted({tcvis_period(year) for region in regions for year in region.years})
        return [CubeKey(ARCTICDEM)] + [CubeKey(TCVIS, period) for period in periods]

    def window(self, key: CubeKey, region: AuxRegion, buffer_m: float) -> Window:
        spec = self.spec(key)
        bounds = region_bounds(region.footprint, spec.grid.crs, buffer_m)
        return spec.grid.window(bounds)

    def plan(self, regions: Sequence[AuxRegion], buffer_m: float) -> list[CubeNeed]:
        """Per cube: the tiles all regions need and those without a record."""
        needs = []
        for key in self.keys_for(regions):
            tiling = self.tiling(key)
            by_region: dict[str, list[str]] = {}
            for region in regions:
                if key.dataset == TCVIS and key.group not in {
                    tcvis_period(y) for y in region.years
                }:
                    continue
                by_region[region.name] = tiling.tiles_for(self.window(key, region, buffer_m))
            tiles = sorted({t for ts in by_region.values() for t in ts})
            cube = self.cube(key, create=False)
            missing = list(tiles) if cube is None else cube.missing(tiles)
            pixels = sum(_pixels(tiling.tile_window(t)) for t in missing)
            needs.append(
                CubeNeed(
                    key,
                    self.label(key),
                    tiles,
                    missing,
                    by_region,
                    pixels,
                    _bytes_per_pixel(self.spec(key)),
                )
            )
        return needs

    def damaged_tiles(self, need: CubeNeed) -> dict[str, str]:
        """The staged tiles of ``need`` whose record or chunks fail their checks (every
        chunk read and its CRC-32C checked), each with the first problem found."""
        from darts.store.datacube.verify import verify_cube

        staged = [t for t in need.tiles if t not in set(need.missing)]
        cube = self.cube(need.key, create=False)
        if cube is None or not staged:
            return {}
        found: dict[str, str] = {}
        for problem in verify_cube(cube, tiles=staged):
            for tile in problem.tiles:
                found.setdefault(tile, problem.what)
        return found

    # -- staging ------------------------------------------------------------------------

    def stage(
        self,
        needs: Sequence[CubeNeed],
        *,
        on_tile: Callable[[str, str], None] | None = None,
    ) -> list[CubeOutcome]:
        """Fill every missing tile of every need; failures are recorded per tile.

        A tile another process is fetching is waited for and reused, not fetched
        again. Every cube staged is also swept of what dead processes left in its
        hidden folder, whether or not anything is missing."""
        import time

        outcomes = []
        for need in needs:
            started = time.perf_counter()
            outcome = CubeOutcome(need.key, need.label)
            outcome.cached = [t for t in need.tiles if t not in set(need.missing)]
            # Swept even when nothing is missing: dead processes' leftovers in the
            # cube's hidden folder go whenever an aux stage runs (creates no cube).
            cube = self.cube(need.key, create=bool(need.missing))
            if cube is not None:
                cube.remove_leftovers()
            if need.missing:
                assert cube is not None
                self._fill(cube, need, outcome, on_tile)
            outcome.seconds = time.perf_counter() - started
            outcomes.append(outcome)
        return outcomes

    def _fill(
        self,
        cube: Datacube,
        need: CubeNeed,
        outcome: CubeOutcome,
        on_tile: Callable[[str, str], None] | None,
    ) -> None:
        def done(tile: str, _record: TileRecord) -> None:
            if on_tile is not None:
                on_tile(need.label, tile)

        def reused(tile: str, record: TileRecord) -> None:
            outcome.reused.append(tile)
            done(tile, record)

        try:
            records = cube.fill(need.missing, self.source(need.key), on_tile=done, on_reused=reused)
            outcome.fetched = [r.tile_id for r in records]
        except CubeFillError as error:
            outcome.failed = {tile: _reason(exc) for tile, exc in error.failures.items()}
            outcome.fetched = list(error.written)
        outcome.cached += outcome.reused

    # -- reading for a scene --------------------------------------------------------------

    def load_dem(
        self,
        region: AuxRegion,
        buffer_m: float,
        *,
        variables: Sequence[str] | None = ("dem",),
    ) -> xr.Dataset:
        """The ArcticDEM cube over the region; ``dem`` alone by default. The cube's
        heights are NaN wherever its ``datamask`` is 0 (the ArcticDEM source writes
        them so), so the mask adds nothing for consumers of heights, while reading it
        costs a fifth of a scene read's time and 121 MB per 10980² scene.
        ``variables=None`` reads every variable."""
        key = CubeKey(ARCTICDEM)
        return self._load(key, region, buffer_m, variables=variables)

    def load_tcvis(self, region: AuxRegion, year: int, buffer_m: float) -> xr.Dataset:
        key = CubeKey(TCVIS, tcvis_period(year))
        return self._load(key, region, buffer_m)

    def _load(
        self,
        key: CubeKey,
        region: AuxRegion,
        buffer_m: float,
        *,
        variables: Sequence[str] | None = None,
    ) -> xr.Dataset:
        fetch = self.fetches
        spec = self.spec(key)
        cube = self.cube(key, create=fetch)
        if cube is None:
            tiles = self.tiling(key).tiles_for(self.window(key, region, buffer_m))
            raise IncompleteCubeError(f"{self.label(key)} datacube at {self.location(key)}", tiles)
        bounds = region_bounds(region.footprint, spec.grid.crs, buffer_m)
        source = self.source(key) if fetch else self.tiling(key)
        return cube.load(bounds, source=source, fetch=fetch, variables=variables)


def aux_gaps(
    cubes: AuxCubes, regions: Sequence[AuxRegion], buffer_m: float, *, verify: bool = False
) -> list[Gap]:
    """One gap per region and cube with unstaged tiles, naming every tile; with
    ``verify``, also one per region and damaged tile (its chunks read and checked)."""
    gaps = []
    for need in cubes.plan(regions, buffer_m):
        missing = set(need.missing)
        damaged = cubes.damaged_tiles(need) if verify else {}
        for region_name, tiles in need.by_region.items():
            absent = [t for t in tiles if t in missing]
            if absent:
                gaps.append(
                    Gap(region_name, f"{need.label}: tile(s) {', '.join(absent)} not staged")
                )
            gaps += [
                Gap(
                    region_name,
                    f"{need.label}: {damaged[t]}; stage it again with "
                    "`darts cache repair` or prep-data --aux",
                )
                for t in tiles
                if t in damaged
            ]
    return gaps


def _tcvis_source(runtime: Runtime, http: HttpClient, period: str, spec: CubeSpec) -> TileSource:
    endpoints = runtime.endpoints
    if endpoints.tcvis_source == "stac":
        if not endpoints.tcvis_stac_url:
            raise ConfigError(
                "--tcvis-source stac needs --tcvis-stac-url (the STAC API of a TCVIS mirror)"
            )
        from darts.sources.tcvis import TcvisStacSource

        # The run's client: one retry policy, bound and unreachable-endpoint hold.
        return TcvisStacSource(period, endpoints.tcvis_stac_url, spec=spec, http=http)
    from darts.net.earthengine import EarthEngineClient, EarthEngineCredentials
    from darts.sources.tcvis import TcvisGeeSource

    credentials = EarthEngineCredentials.from_settings(
        endpoints.ee_credentials_file, endpoints.ee_project
    )
    client = EarthEngineClient(endpoints.earth_engine_url, endpoints.ee_project, credentials, http)
    return TcvisGeeSource(period, client, spec=spec)


def _reason(error: BaseException) -> str:
    if isinstance(error, DartsError) or type(error).__module__.startswith("darts."):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _pixels(window: Window) -> int:
    return window.height * window.width


# Compressed bytes per cube pixel, for dry-run estimates: ArcticDEM heights stored as
# whole centimetres, with the mask, take ~1.3 bytes/px (132 MB per 10,000 km² at 10 m
# on the full sandbox world, benchmarks/README.md); TCVIS's three smooth uint8 bands ~1.
_BYTES_PER_PIXEL = {ARCTICDEM: 1.3, TCVIS: 1.0}


def _bytes_per_pixel(spec: CubeSpec) -> float:
    return _BYTES_PER_PIXEL[TCVIS if spec.kind == "tcvis" else ARCTICDEM]


def regions_by_name(regions: Iterable[AuxRegion]) -> Mapping[str, AuxRegion]:
    return {region.name: region for region in regions}
