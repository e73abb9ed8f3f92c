"""Scene selection, filters and the date spans that become STAC searches."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from darts.errors import ConfigError
from darts.sources.query import (
    SENTINEL2_START,
    SceneFilters,
    SceneSelection,
    date_spans,
    format_instant,
    format_span,
)

TODAY = date(2031, 5, 5)  # later than any hard-coded year could reach


def _days(spans: list[tuple[datetime, datetime]]) -> list[tuple[str, str]]:
    return [(a.date().isoformat(), b.date().isoformat()) for a, b in spans]


# -- SceneSelection --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"scene_ids": ("a",), "tile_ids": ("33UUP",)},
        {"scene_id_file": Path("x.json"), "aoi_file": Path("a.gpkg")},
        {"scene_ids": ("a",), "scene_id_file": "f", "tile_ids": ("33UUP",), "aoi_file": "g"},
    ],
)
def test_selection_needs_exactly_one_option(kwargs: dict) -> None:
    with pytest.raises(ConfigError) as err:
        SceneSelection(**kwargs)
    message = str(err.value)
    for flag in ("--scene-ids", "--scene-id-file", "--tile-ids", "--aoi-file"):
        assert flag in message
    assert "exactly one" in message
    assert "\n" not in message


def test_selection_normalises_values() -> None:
    selection = SceneSelection(tile_ids=["T08wnb", "08WNB", "9WUS"])  # type: ignore[arg-type]
    assert selection.tile_ids == ("08WNB", "09WUS")
    assert selection.kind == "tile_ids" and selection.needs_search

    from_file = SceneSelection(scene_id_file="ids.json")  # type: ignore[arg-type]
    assert from_file.scene_id_file == Path("ids.json")
    assert from_file.kind == "scene_id_file" and not from_file.needs_search

    assert SceneSelection(aoi_file="a.gpkg").aoi_file == Path("a.gpkg")  # type: ignore[arg-type]
    assert SceneSelection(scene_ids=(" x ", "")).scene_ids == ("x",)
    # An empty list is "not given", so the other option decides.
    assert SceneSelection(scene_ids=(), tile_ids=("33UUP",)).kind == "tile_ids"


def test_selection_rejects_bad_tile_ids_all_at_once() -> None:
    with pytest.raises(ConfigError, match=r"--tile-ids.*'XX'.*'33III'"):
        SceneSelection(tile_ids=("33UUP", "XX", "33III"))


# -- SceneFilters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"months": (0, 13)}, r"--months: 0, 13 not allowed; use values 1-12"),
        ({"quarters": (5,)}, r"--quarters: 5 not allowed; use values 1-4"),
        ({"years": (2014,)}, r"--years: 2014 not allowed; use years from 2015"),
        ({"months": (True,)}, r"--months"),
        ({"max_cloud_cover": 101}, r"--max-cloud-cover: 101 is not a percentage"),
        ({"max_snow_cover": -1}, r"--max-snow-cover"),
        ({"max_cloud_cover": float("nan")}, r"--max-cloud-cover"),
        (
            {"start_date": date(2024, 2, 1), "end_date": date(2024, 1, 1)},
            r"--start-date 2024-02-01 is after --end-date 2024-01-01",
        ),
    ],
)
def test_filters_are_validated(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        SceneFilters(**kwargs)


def test_filters_normalise() -> None:
    filters = SceneFilters(
        start_date=datetime(2020, 1, 2, 13, 0),  # type: ignore[arg-type]
        months=(8, 6, 6),
        years=(2021, 2019),
    )
    assert filters.start_date == date(2020, 1, 2)
    assert filters.months == (6, 8)
    assert filters.years == (2019, 2021)
    assert filters.cloud_filter and filters.snow_filter
    assert not SceneFilters(max_snow_cover=100).snow_filter
    assert not SceneFilters(max_cloud_cover=100).cloud_filter
    assert SceneFilters(quarters=(3,), months=(1,)).allowed_months == {1, 7, 8, 9}
    assert SceneFilters().allowed_months == set(range(1, 13))


def test_filters_from_strings() -> None:
    filters = SceneFilters.from_strings(
        start_date="2019-06-01",
        end_date="2021-08-31",
        max_cloud_cover="25",
        max_snow_cover=100,
        months="6,7 8",
        years=["2019", 2020],
        quarters=(),
    )
    assert filters == SceneFilters(
        start_date=date(2019, 6, 1),
        end_date=date(2021, 8, 31),
        max_cloud_cover=25.0,
        max_snow_cover=100.0,
        months=(6, 7, 8),
        years=(2019, 2020),
    )
    assert SceneFilters.from_strings(start_date="", end_date=None) == SceneFilters()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("start_date", "2023-13-01"),
        ("start_date", "2023-02-30"),
        ("end_date", "20230701"),
        ("end_date", "01.07.2023"),
        ("start_date", "yesterday"),
    ],
)
def test_bad_dates_name_the_option(field: str, value: str) -> None:
    flag = "--" + field.replace("_", "-")
    with pytest.raises(
        ConfigError, match=rf"{flag}: '{value}' is not a valid date; use YYYY-MM-DD"
    ):
        SceneFilters.from_strings(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_cloud_cover", "lots"), ("months", "june"), ("years", "2020.5")],
)
def test_bad_numbers_name_the_option(field: str, value: str) -> None:
    with pytest.raises(ConfigError, match="--" + field.replace("_", "-")):
        SceneFilters.from_strings(**{field: value})


# -- date_spans ------------------------------------------------------------------------


def test_one_span_per_summer_not_per_month() -> None:
    spans = date_spans(SceneFilters(years=(2019, 2020, 2021), months=(6, 7, 8)), TODAY)
    assert _days(spans) == [
        ("2019-06-01", "2019-08-31"),
        ("2020-06-01", "2020-08-31"),
        ("2021-06-01", "2021-08-31"),
    ]
    start, end = spans[0]
    assert start == datetime(2019, 6, 1, tzinfo=UTC)
    assert end == datetime(2019, 8, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert format_span(spans[0]) == "2019-06-01T00:00:00Z/2019-08-31T23:59:59.999999Z"


def test_winter_months_belong_to_the_listed_years() -> None:
    spans = date_spans(SceneFilters(years=(2020, 2021), months=(12, 1, 2)), TODAY)
    assert _days(spans) == [
        ("2020-01-01", "2020-02-29"),
        ("2020-12-01", "2021-02-28"),
        ("2021-12-01", "2021-12-31"),
    ]


def test_winter_runs_cross_year_ends_without_years() -> None:
    filters = SceneFilters(
        start_date=date(2021, 11, 15), end_date=date(2023, 1, 10), months=(12, 1)
    )
    assert _days(date_spans(filters, TODAY)) == [
        ("2021-12-01", "2022-01-31"),
        ("2022-12-01", "2023-01-10"),
    ]


def test_quarters_map_to_months() -> None:
    filters = SceneFilters(years=(2022,), quarters=(1, 3))
    assert _days(date_spans(filters, TODAY)) == [
        ("2022-01-01", "2022-03-31"),
        ("2022-07-01", "2022-09-30"),
    ]
    # Adjacent quarters merge into one span.
    merged = SceneFilters(years=(2022,), quarters=(2, 3))
    assert _days(date_spans(merged, TODAY)) == [("2022-04-01", "2022-09-30")]


def test_no_years_means_sentinel2_start_to_today() -> None:
    spans = date_spans(SceneFilters(), TODAY)
    assert _days(spans) == [(SENTINEL2_START.isoformat(), TODAY.isoformat())]
    summers = date_spans(SceneFilters(months=(7,)), TODAY)
    # One span per July from 2015 up to the last July before "today": no fixed end year.
    assert [a.year for a, _ in summers] == list(range(2015, 2031))


def test_spans_are_intersected_with_start_and_end() -> None:
    filters = SceneFilters(
        start_date=date(2019, 7, 15), end_date=date(2021, 6, 10), months=(6, 7, 8)
    )
    assert _days(date_spans(filters, TODAY)) == [
        ("2019-07-15", "2019-08-31"),
        ("2020-06-01", "2020-08-31"),
        ("2021-06-01", "2021-06-10"),
    ]
    # Years outside the date range, or a start after today: nothing to search.
    assert date_spans(SceneFilters(end_date=date(2019, 1, 1), years=(2020,)), TODAY) == []
    assert date_spans(SceneFilters(start_date=date(2032, 1, 1)), TODAY) == []
    # A start before Sentinel-2 is clamped to its first day.
    early = SceneFilters(start_date=date(2010, 1, 1), end_date=date(2015, 12, 31))
    assert _days(date_spans(early, TODAY)) == [("2015-06-23", "2015-12-31")]


def test_format_instant_is_utc_with_z() -> None:
    from datetime import timedelta, timezone

    moment = datetime(2024, 7, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_instant(moment) == "2024-07-01T00:00:00Z"
