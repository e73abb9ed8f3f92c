"""What the user asked for: which scenes (selection) and which of them (filters).

Both are frozen values checked when they are built, so every later stage can trust
them and a bad option fails before anything is downloaded, with one line naming the
option. `date_spans` turns the date filters into the fewest search intervals: one per
contiguous run of allowed months (pitfall 15: the reference issued one request per
(year, month) and stopped at a hard-coded 2025).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

from darts.errors import ConfigError
from darts.sources.scene_ids import normalize_tile_ids

# Sentinel-2A's first acquisitions; nothing can be found before this day.
SENTINEL2_START = date(2015, 6, 23)

# The CLI spellings, used in messages so the user knows which option to change.
SELECTION_OPTIONS = ("--scene-ids", "--scene-id-file", "--tile-ids", "--aoi-file")

QUARTER_MONTHS: dict[int, tuple[int, int, int]] = {
    1: (1, 2, 3),
    2: (4, 5, 6),
    3: (7, 8, 9),
    4: (10, 11, 12),
}

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

Span = tuple[datetime, datetime]


@dataclass(frozen=True)
class SceneSelection:
    """Which scenes to process: exactly one of ids, an id file, tiles or an AOI file.

    Tile ids are normalised here (``T33UUP``/``33uup`` → ``33UUP``) because their form
    does not depend on the source; scene ids are checked by the source that uses them,
    since CDSE and Earth Engine name scenes differently.
    """

    scene_ids: tuple[str, ...] = ()
    scene_id_file: Path | None = None
    tile_ids: tuple[str, ...] = ()
    aoi_file: Path | None = None
    # How messages name the id file: the option it was given by (prep-data's saved
    # file is a selection of its own for a run).
    scene_id_file_option: str = "--scene-id-file"

    def __post_init__(self) -> None:
        # Lists and plain strings arrive from config files and the CLI; store tuples and
        # Paths so the value stays hashable and immutable.
        scene_ids = _as_str_tuple("--scene-ids", self.scene_ids)
        tile_ids = _as_str_tuple("--tile-ids", self.tile_ids)
        object.__setattr__(self, "scene_ids", tuple(s.strip() for s in scene_ids if s.strip()))
        if self.scene_id_file is not None:
            object.__setattr__(self, "scene_id_file", Path(self.scene_id_file))
        if self.aoi_file is not None:
            object.__setattr__(self, "aoi_file", Path(self.aoi_file))

        given = [
            name
            for name, value in zip(
                SELECTION_OPTIONS,
                (self.scene_ids, self.scene_id_file, tile_ids, self.aoi_file),
                strict=True,
            )
            if value
        ]
        if len(given) != 1:
            which = "none was given" if not given else f"got {' and '.join(given)}"
            raise ConfigError(
                f"select scenes with exactly one of {', '.join(SELECTION_OPTIONS)} ({which})"
            )
        if tile_ids:
            object.__setattr__(self, "tile_ids", normalize_tile_ids(tile_ids))

    @property
    def kind(self) -> str:
        """``scene_ids``, ``scene_id_file``, ``tile_ids`` or ``aoi_file``."""
        if self.scene_ids:
            return "scene_ids"
        if self.scene_id_file is not None:
            return "scene_id_file"
        if self.tile_ids:
            return "tile_ids"
        return "aoi_file"

    @property
    def needs_search(self) -> bool:
        """Whether finding the scenes needs a catalogue search (tiles, AOI)."""
        return self.kind in ("tile_ids", "aoi_file")


@dataclass(frozen=True)
class SceneFilters:
    """Date, season and quality limits for a tile or AOI search.

    Covers are percentages. A maximum of 100 switches that filter off: every item
    passes it anyway, and leaving it out also keeps items that lack the property.
    ``months`` and ``quarters`` together allow the union of their months (a quarter is a
    shorthand for its three months). ``years`` restricts to those calendar years.
    """

    start_date: date | None = None
    end_date: date | None = None
    max_cloud_cover: float = 10.0
    max_snow_cover: float = 10.0
    months: tuple[int, ...] = ()
    years: tuple[int, ...] = ()
    quarters: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("start_date", "end_date"):
            value = getattr(self, name)
            if isinstance(value, datetime):
                # A datetime is a date too; keep only the day so comparisons are exact.
                object.__setattr__(self, name, value.date())
            elif value is not None and not isinstance(value, date):
                raise ConfigError(f"{_flag(name)}: expected a date, got {value!r}")
        if self.start_date and self.end_date and self.start_date > self.end_date:
            raise ConfigError(
                f"--start-date {self.start_date} is after --end-date {self.end_date}; "
                "swap them or widen the range"
            )
        for name in ("max_cloud_cover", "max_snow_cover"):
            object.__setattr__(self, name, _percentage(name, getattr(self, name)))
        object.__setattr__(self, "months", _int_set("months", self.months, 1, 12))
        object.__setattr__(self, "quarters", _int_set("quarters", self.quarters, 1, 4))
        object.__setattr__(self, "years", _int_set("years", self.years, SENTINEL2_START.year, 9999))

    @classmethod
    def from_strings(
        cls,
        *,
        start_date: str | date | None = None,
        end_date: str | date | None = None,
        max_cloud_cover: float | str = 10.0,
        max_snow_cover: float | str = 10.0,
        months: Iterable[int | str] = (),
        years: Iterable[int | str] = (),
        quarters: Iterable[int | str] = (),
    ) -> SceneFilters:
        """Build filters from CLI/config text: dates as ``YYYY-MM-DD``, numbers as text."""
        return cls(
            start_date=parse_date("start_date", start_date),
            end_date=parse_date("end_date", end_date),
            max_cloud_cover=_number("max_cloud_cover", max_cloud_cover),
            max_snow_cover=_number("max_snow_cover", max_snow_cover),
            months=tuple(_integer("months", v) for v in _listed(months)),
            years=tuple(_integer("years", v) for v in _listed(years)),
            quarters=tuple(_integer("quarters", v) for v in _listed(quarters)),
        )

    @property
    def cloud_filter(self) -> bool:
        return self.max_cloud_cover < 100

    @property
    def snow_filter(self) -> bool:
        return self.max_snow_cover < 100

    @property
    def allowed_months(self) -> frozenset[int]:
        """Months allowed by ``months`` and ``quarters`` (all twelve when neither is set)."""
        chosen = set(self.months)
        for quarter in self.quarters:
            chosen.update(QUARTER_MONTHS[quarter])
        return frozenset(chosen or range(1, 13))


def parse_date(name: str, value: str | date | None) -> date | None:
    """``YYYY-MM-DD`` text (or a date) → date; anything else is a `ConfigError`."""
    if value is None or isinstance(value, date):
        return value
    text = str(value).strip()
    if not text:
        return None
    # Strict form only: date.fromisoformat also takes 20230701 and 2023-W27, which are
    # more likely typos than intent.
    if _DATE_RE.match(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise ConfigError(f"{_flag(name)}: {text!r} is not a valid date; use YYYY-MM-DD (2023-07-01)")


def date_spans(filters: SceneFilters, today: date) -> list[Span]:
    """The search intervals for ``filters``: one per contiguous run of allowed months.

    Semantics (documented because month/year combinations are ambiguous):

    - The allowed days are those in [start, end] whose calendar year is in ``years``
      (any year when empty) and whose month is allowed (`SceneFilters.allowed_months`).
      So ``months`` belong to the listed ``years``: months 12,1,2 with years 2020-2021
      give Jan–Feb 2020, Dec 2020–Feb 2021 and Dec 2021 (not Dec 2019).
    - start defaults to the first Sentinel-2 day (2015-06-23), end to ``today``; there is
      no built-in last year.
    - Runs are contiguous across year ends when both sides are allowed (Dec → Jan).

    Each span is (first instant, last instant) of its days, in UTC, both inclusive as
    STAC intervals are. An empty list means no day is allowed (e.g. all listed years
    lie after ``end``).
    """
    first = max(filters.start_date or SENTINEL2_START, SENTINEL2_START)
    last = filters.end_date or today
    if first > last:
        return []
    years = set(filters.years)
    months = filters.allowed_months

    runs: list[tuple[date, date]] = []  # (first day of first month, first day of last month)
    run_start: date | None = None
    previous: date | None = None
    for month_start in _month_starts(first, last):
        allowed = month_start.month in months and (not years or month_start.year in years)
        if allowed and run_start is None:
            run_start = month_start
        if not allowed and run_start is not None and previous is not None:
            runs.append((run_start, previous))
            run_start = None
        previous = month_start
    if run_start is not None and previous is not None:
        runs.append((run_start, previous))

    spans: list[Span] = []
    for run_first, run_last in runs:
        start_day = max(run_first, first)
        end_day = min(_month_end(run_last), last)
        spans.append(
            (
                datetime.combine(start_day, time.min, tzinfo=UTC),
                datetime.combine(end_day, time.max, tzinfo=UTC),
            )
        )
    return spans


def format_instant(moment: datetime) -> str:
    """RFC 3339 in UTC ending in ``Z``, as CDSE requires (no ``+00:00`` ambiguity)."""
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds") + "Z"


def format_span(span: Span) -> str:
    """A STAC ``datetime`` interval ``start/end``."""
    return f"{format_instant(span[0])}/{format_instant(span[1])}"


def describe_filters(filters: SceneFilters) -> str:
    """The filters in words, for messages (``2019-06-01..today, months 6,7,8, ...``)."""
    parts = [
        f"{filters.start_date or SENTINEL2_START}..{filters.end_date or 'today'}",
    ]
    if filters.years:
        parts.append("years " + ",".join(str(y) for y in filters.years))
    if filters.months:
        parts.append("months " + ",".join(str(m) for m in filters.months))
    if filters.quarters:
        parts.append("quarters " + ",".join(f"Q{q}" for q in filters.quarters))
    parts.append(
        f"cloud cover <= {filters.max_cloud_cover:g}%" if filters.cloud_filter else "any cloud"
    )
    parts.append(
        f"snow cover <= {filters.max_snow_cover:g}%" if filters.snow_filter else "any snow"
    )
    return ", ".join(parts)


# -- helpers ---------------------------------------------------------------------------


def _month_starts(first: date, last: date) -> Iterable[date]:
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        yield date(year, month, 1)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _month_end(month_start: date) -> date:
    if month_start.month == 12:
        return date(month_start.year, 12, 31)
    return date.fromordinal(date(month_start.year, month_start.month + 1, 1).toordinal() - 1)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _as_str_tuple(flag: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        # One comma-separated string is a common config-file spelling.
        return tuple(part for part in value.split(",") if part.strip())
    if not isinstance(value, Iterable):
        raise ConfigError(f"{flag}: expected a list of strings, got {value!r}")
    items = tuple(value)
    bad = [v for v in items if not isinstance(v, str)]
    if bad:
        raise ConfigError(f"{flag}: expected strings, got {', '.join(repr(b) for b in bad)}")
    return items


def _listed(values: Iterable[int | str] | str | int) -> list[int | str]:
    if isinstance(values, int):
        return [values]
    if isinstance(values, str):
        return [part for part in re.split(r"[,\s]+", values) if part]
    return list(values)


def _integer(name: str, value: int | str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{_flag(name)}: expected whole numbers, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{_flag(name)}: expected whole numbers, got {value!r}") from None


def _number(name: str, value: float | str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{_flag(name)}: expected a number from 0 to 100, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{_flag(name)}: expected a number from 0 to 100, got {value!r}"
        ) from None


def _percentage(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{_flag(name)}: expected a number from 0 to 100, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or not 0 <= number <= 100:
        raise ConfigError(
            f"{_flag(name)}: {value!r} is not a percentage from 0 to 100 (100 disables it)"
        )
    return number


def _int_set(name: str, values: object, low: int, high: int) -> tuple[int, ...]:
    if isinstance(values, int) and not isinstance(values, bool):
        values = (values,)
    if not isinstance(values, Iterable) or isinstance(values, str):
        raise ConfigError(f"{_flag(name)}: expected a list of whole numbers, got {values!r}")
    items = tuple(values)
    wrong = [v for v in items if isinstance(v, bool) or not isinstance(v, int)]
    outside = [v for v in items if v not in wrong and not low <= v <= high]
    if wrong or outside:
        shown = ", ".join(repr(v) for v in (*wrong, *outside))
        if name == "years":
            hint = f"years from {low} (the first Sentinel-2 data) on"
        else:
            hint = f"values {low}-{high}"
        raise ConfigError(f"{_flag(name)}: {shown} not allowed; use {hint}")
    # Sorted and unique, so equal filters compare equal and messages read well.
    return tuple(sorted(set(items)))
