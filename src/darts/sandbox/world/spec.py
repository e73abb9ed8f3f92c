"""What each named world contains: tiles, windows, acquisitions and their weather.

Region: the Canadian western Arctic east of the Mackenzie Delta (~69°N, 132.6°W), where
UTM zones 8 and 9 meet. Tiles:

- ``08WNB`` (main, zone 8) and ``08WPB`` (its eastern neighbour): the 9.8 km overlap
  strip is x 600,000–609,800 m. The main window (x 590,000–602,000) reaches into the
  strip and the second window (x 600,000–606,000) lies in it, so the two overlap on
  the ground by 2 km.
- ``09WUS`` (zone 9): its window lies on the same ground as the main window, seen in
  the other zone's projection.

The main window sits where EPSG:3413's 100 km lines cross, so its footprint (plus
200 m) touches four ArcticDEM 10 m supertiles (39_17, 39_18, 40_17, 40_18).

Windows are given in 10 m pixels from the tile's upper-left corner; offsets and sizes
are multiples of 6 so the 10, 20 and 60 m grids align exactly.

``small`` (tests, builds in well under a minute on 2 cores):
- ``08WNB``: 1200² px window, 10 scenes over the summers 2018–2025: clear, partly
  cloudy, overcast, cirrus, one snowy (early June), one cut by the swath edge;
- ``08WPB``: 600² px window, 4 scenes sharing datatakes (time, orbit, clouds) with the
  main tile;
- ``09WUS``: 240² px window, near-daily June–September 2022–2024 (260 scenes, mostly
  cloudy) so catalogue searches page past 200 results. Its scenes reuse 12 weather
  states under one mid-summer ground (``ground_date``), so equal states give equal
  pixels and are encoded once;
- quarterly mosaics 2023 Q3, 2024 Q2, 2024 Q3 for each tile; 14 slumps in the main
  window (plus one in the zone-9 window, which lies inside it), 3 more in the eastern
  window and a sprinkle around the scenes.

``full`` (benchmarks, built once and cached): the whole ``08WNB`` tile (10980² px at
10 m) with 2 scenes, one mosaic, ArcticDEM 10 m and 32 m over the tile plus 3 km, 2 m
over a 10×10 km square near the tile centre, TCVIS over the tile, ~400 slumps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property

from affine import Affine

from darts.grid import mgrs
from darts.sandbox.world.coords import RasterGrid
from darts.sandbox.world.seeds import rng

WORLD_NAMES = ("small", "full")
RESOLUTIONS = (10, 20, 60)


@dataclass(frozen=True)
class TileWindow:
    """The part of an MGRS tile a world writes (10 m pixels from the tile's UL corner)."""

    tile: str
    col_off: int
    row_off: int
    width: int
    height: int

    def __post_init__(self) -> None:
        for value in (self.col_off, self.row_off, self.width, self.height):
            if value % 6:
                raise ValueError(f"{self}: offsets and sizes must be multiples of 6 pixels")

    @cached_property
    def epsg(self) -> int:
        return mgrs.tile_bounds(self.tile)[0]

    @cached_property
    def tile_origin(self) -> tuple[float, float]:
        _, (xmin, _, _, ymax) = mgrs.tile_bounds(self.tile)
        return xmin, ymax

    def grid(self, res: int = 10) -> RasterGrid:
        factor = res // 10
        x0, y0 = self.tile_origin
        transform = Affine(res, 0.0, x0 + self.col_off * 10, 0.0, -res, y0 - self.row_off * 10)
        return RasterGrid(self.epsg, transform, self.height // factor, self.width // factor)

    def tile_grid(self, res: int = 10) -> RasterGrid:
        """The whole tile's grid at ``res`` (for ``proj:`` fields of full tiles)."""
        x0, y0 = self.tile_origin
        n = 109_800 // res
        return RasterGrid(self.epsg, Affine(res, 0.0, x0, 0.0, -res, y0), n, n)


@dataclass(frozen=True)
class Weather:
    """Sky and ground state of one acquisition."""

    cloud: float  # fraction of the scene under cloud (0..1)
    cirrus: float = 0.0  # amount of thin cirrus (0..1)
    snow: float = 0.0  # fraction of land under snow (0..1)
    swath_edge: bool = False  # the scene is cut by the edge of the swath
    pattern: int = 0  # selects the cloud field; equal patterns give equal clouds


@dataclass(frozen=True)
class Acquisition:
    window: TileWindow
    sensing: datetime  # datatake start (UTC), the item's datetime
    platform: str  # sentinel-2a|b|c
    relative_orbit: int
    weather: Weather
    # Acquisitions sharing a ground_date see the same ground (season); the zone-9 daily
    # stack uses one so identical weather gives identical files.
    ground_date: date | None = None

    @property
    def season_date(self) -> date:
        return self.ground_date or self.sensing.date()


@dataclass(frozen=True)
class MosaicSpec:
    window: TileWindow
    year: int
    quarter: int


@dataclass(frozen=True)
class WorldSpec:
    name: str
    windows: tuple[TileWindow, ...]
    acquisitions: tuple[Acquisition, ...]
    mosaics: tuple[MosaicSpec, ...]
    slump_counts: dict[str, int] = field(default_factory=dict)
    dem_margin_m: float = 3000.0
    # 2 m ArcticDEM is written only around this window (EPSG:3413 box half-size, m).
    dem_2m_half_size_m: float = 1500.0
    tcvis_margin_m: float = 2000.0
    surroundings_slumps_per_km2: float = 0.05

    @property
    def main(self) -> TileWindow:
        return self.windows[0]


# Relative orbits seen over the region and the UTC time their datatakes start.
ORBIT_TIMES = {29: (20, 38, 49), 72: (20, 58, 19), 129: (20, 8, 59), 86: (19, 48, 39)}

MAIN = TileWindow("08WNB", col_off=9000, row_off=3900, width=1200, height=1200)
SECOND = TileWindow("08WPB", col_off=0, row_off=4200, width=600, height=600)
ZONE9 = TileWindow("09WUS", col_off=5520, row_off=4158, width=240, height=240)
FULL = TileWindow("08WNB", col_off=0, row_off=0, width=10980, height=10980)


def _at(day: date, orbit: int) -> datetime:
    h, m, s = ORBIT_TIMES[orbit]
    return datetime(day.year, day.month, day.day, h, m, s, tzinfo=UTC)


def _platform(day: date, index: int) -> str:
    if day.year >= 2025:
        return ("sentinel-2b", "sentinel-2c")[index % 2]
    return ("sentinel-2a", "sentinel-2b")[index % 2]


# (date, orbit, weather) of the main tile's scenes: clear, cloudy, snowy, swath edge...
_MAIN_SCENES = (
    (date(2018, 7, 14), 29, Weather(cloud=0.02, pattern=1)),
    (date(2019, 8, 3), 72, Weather(cloud=0.35, pattern=2)),
    (date(2020, 6, 8), 129, Weather(cloud=0.08, snow=0.65, pattern=3)),
    (date(2020, 7, 21), 86, Weather(cloud=0.0, swath_edge=True, pattern=4)),
    (date(2021, 7, 9), 29, Weather(cloud=0.8, cirrus=0.3, pattern=5)),
    (date(2022, 8, 17), 72, Weather(cloud=0.15, cirrus=0.7, pattern=6)),
    (date(2023, 7, 2), 129, Weather(cloud=0.04, pattern=7)),
    (date(2023, 9, 12), 29, Weather(cloud=0.5, pattern=8)),
    (date(2024, 7, 15), 29, Weather(cloud=0.0, pattern=9)),
    (date(2025, 7, 28), 72, Weather(cloud=0.25, cirrus=0.2, pattern=10)),
)
# The eastern neighbour shares these datatakes (same time, same clouds).
_SECOND_SCENES = (0, 3, 6, 8)


def _zone9_acquisitions(seed: int) -> list[Acquisition]:
    """Near-daily summers 2022–2024 (>= 230 scenes), mostly cloudy, 12 weather states."""
    generator = rng(seed, "zone9-schedule")
    states = [
        Weather(cloud=c, cirrus=ci, pattern=100 + i)
        for i, (c, ci) in enumerate(
            [
                (1.0, 0.0),
                (0.97, 0.2),
                (0.9, 0.0),
                (0.85, 0.4),
                (0.75, 0.1),
                (0.95, 0.0),
                (0.6, 0.3),
                (0.99, 0.0),
                (0.4, 0.0),
                (0.2, 0.1),
                (0.05, 0.0),
                (0.0, 0.0),
            ]
        )
    ]
    weights = [0.16, 0.12, 0.12, 0.1, 0.09, 0.1, 0.07, 0.08, 0.05, 0.04, 0.04, 0.03]
    orbits = sorted(ORBIT_TIMES)
    result: list[Acquisition] = []
    for year in (2022, 2023, 2024):
        day = date(year, 6, 1)
        index = 0
        while day <= date(year, 9, 20):
            if generator.random() < 0.75:
                state = states[int(generator.choice(len(states), p=weights))]
                orbit = orbits[(day.toordinal()) % len(orbits)]
                result.append(
                    Acquisition(
                        ZONE9,
                        _at(day, orbit),
                        _platform(day, index),
                        orbit,
                        state,
                        ground_date=date(2023, 7, 20),
                    )
                )
                index += 1
            day += timedelta(days=1)
    return result


def _main_acquisitions() -> list[Acquisition]:
    main, second = [], []
    for i, (day, orbit, weather) in enumerate(_MAIN_SCENES):
        main.append(Acquisition(MAIN, _at(day, orbit), _platform(day, i), orbit, weather))
        if i in _SECOND_SCENES:
            second.append(Acquisition(SECOND, _at(day, orbit), _platform(day, i), orbit, weather))
    return main + second


def small_spec(seed: int) -> WorldSpec:
    quarters = ((2023, 3), (2024, 2), (2024, 3))
    return WorldSpec(
        name="small",
        windows=(MAIN, SECOND, ZONE9),
        acquisitions=tuple(_main_acquisitions() + _zone9_acquisitions(seed)),
        mosaics=tuple(MosaicSpec(w, y, q) for w in (MAIN, SECOND, ZONE9) for y, q in quarters),
        slump_counts={"main": 14, "zone9": 1, "second": 3},
    )


def full_spec(seed: int) -> WorldSpec:
    del seed  # the full world's schedule is fixed; only its fields depend on the seed
    scenes = (
        Acquisition(FULL, _at(date(2023, 7, 2), 129), "sentinel-2a", 129, Weather(0.03, pattern=7)),
        Acquisition(
            FULL,
            _at(date(2024, 7, 15), 29),
            "sentinel-2b",
            29,
            Weather(0.3, cirrus=0.2, pattern=9),
        ),
    )
    return WorldSpec(
        name="full",
        windows=(FULL,),
        acquisitions=scenes,
        mosaics=(MosaicSpec(FULL, 2024, 3),),
        slump_counts={"tile": 400},
        dem_2m_half_size_m=5000.0,
        surroundings_slumps_per_km2=0.0,
    )


def world_spec(name: str, seed: int) -> WorldSpec:
    if name == "small":
        return small_spec(seed)
    if name == "full":
        return full_spec(seed)
    raise ValueError(f"unknown world {name!r}; known worlds: {', '.join(WORLD_NAMES)}")
