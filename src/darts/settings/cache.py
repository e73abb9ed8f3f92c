"""Option sections of `darts cache` (all spelled ``--cache.<name>``).

``--scene-ids`` and ``--tile-ids`` here name what is *in* the caches: scene ids of any
source, and cube tiles (ArcticDEM tiles such as ``39_17``, TCVIS tiles), not the MGRS
tiles a pipeline searches by. Values are checked when the section is built, so a bad
one is refused before anything is touched.

They say what one invocation works on, so they are not a run's settings: their
variables are ``DARTS_CACHE_<NAME>`` (``DARTS_SCENE_IDS`` set for a run never selects
what ``darts cache prune`` removes), and a config file sets them only in
``[darts.cache]`` or a table below it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from darts.errors import ConfigError
from darts.settings.options import AT_LEAST_0, Section, option

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(text: str, name: str = "--max-size") -> int:
    """Bytes of ``50GB``, ``800 MB``, ``1.5TiB``, ``2G`` or ``1000`` (decimal units;
    ``KiB``, ``MiB`` … binary)."""
    match = _SIZE.match(text)
    if not match:
        raise ConfigError(
            f"{name} {text!r} is not a size: write a number and a unit, e.g. 50GB, 800MB, 2TiB"
        )
    number, unit = float(match.group(1)), (match.group(2) or "").lower()
    prefix = unit[:1] if unit not in ("", "b") else ""
    scale = 1024 ** ("kmgt".index(prefix) + 1) if "i" in unit else _UNITS[prefix]
    return math.floor(number * scale)


class _CacheSection(Section):
    SECTION = "cache"
    ENV_PREFIX = "DARTS_CACHE_"
    CONFIG_SCOPE = ("cache",)


@dataclass(frozen=True)
class CacheScope(_CacheSection):
    """Which caches, and which entries of them, a `darts cache` command works on."""

    sources: list[str] = option(
        [],
        choices=("cdse", "cdse-mosaic", "gee"),
        help="only the scene stores of these sources",
        default_text="all three",
        metavar="SOURCE",
    )
    only: str | None = option(
        None,
        choices=("scenes", "cubes"),
        help="only the scene stores, or only the cubes",
        default_text="both",
    )
    scene_ids: list[str] = option(
        [],
        help="only these scenes, of any source (prune: remove them)",
        default_text="every scene",
        metavar="ID",
    )
    tile_ids: list[str] = option(
        [],
        help="only these cube tiles, ArcticDEM tiles such as 39_17 and TCVIS tiles such as "
        "r0028_c00085 (prune: remove them)",
        default_text="every tile",
        metavar="TILE",
    )

    @property
    def scenes(self) -> bool:
        """Whether the scene stores are looked at: not with ``--only cubes``, nor when
        only tiles are named."""
        return self.only != "cubes" and not (self.tile_ids and not self.scene_ids)

    @property
    def cubes(self) -> bool:
        return self.only != "scenes" and not (self.scene_ids and not self.tile_ids)


@dataclass(frozen=True)
class CacheOutput(_CacheSection):
    json: bool = option(False, help="print one JSON document instead of tables")


@dataclass(frozen=True)
class CacheDryRun(_CacheSection):
    dry_run: bool = option(False, help="say what would be done, and change nothing")


@dataclass(frozen=True)
class CachePrune(_CacheSection):
    """What `darts cache prune` removes (the criteria add up)."""

    older_than: float | None = option(
        None,
        help="remove scenes staged, and cube tiles written, more than DAYS days ago",
        metavar="DAYS",
        bounds=AT_LEAST_0,
    )
    max_size: str | None = option(
        None,
        help="then remove the least recently staged scenes until the scene stores hold at "
        "most SIZE (e.g. 50GB, 800MB, 2TiB)",
        metavar="SIZE",
    )

    def __post_init__(self) -> None:
        if self.max_size is not None:
            parse_size(self.max_size)

    @property
    def max_bytes(self) -> int | None:
        return None if self.max_size is None else parse_size(self.max_size)


@dataclass(frozen=True)
class CacheExport(_CacheSection):
    to: Path | None = option(
        None,
        help="where the export goes: a new folder, or an archive FILE.tar",
        metavar="DIR|FILE.tar",
    )
    all: bool = option(False, help="export every staged scene and every cube tile")


@dataclass(frozen=True)
class CacheImport(_CacheSection):
    archive: Path | None = option(
        None,
        help="the folder or .tar archive `darts cache export` wrote (also the command's "
        "first argument)",
        metavar="FROM",
    )
