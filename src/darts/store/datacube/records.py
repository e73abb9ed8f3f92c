"""Per-tile completeness records of a datacube.

Each filled (or known-empty) source tile is recorded as its *own* node: an empty Zarr
group ``<cube group>/_tiles/<tile>`` whose attributes hold a :class:`TileRecord`. The
reference kept one list attribute on the cube root, rewritten by every commit, so two
writers of different tiles always conflicted (pitfall 10); separate nodes never do.
A record is written in the same commit as its tile's pixels, so a crash leaves both or
neither.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from darts import __version__
from darts.grid.cube import Window
from darts.store.datacube.errors import DatacubeError
from darts.store.datacube.spec import TileStatus

# How a commit that removes tiles (their records with them) begins its message.
REMOVAL_MESSAGE = "darts: remove tile(s)"
TILES_GROUP = "_tiles"
_RECORD_KEY = "darts_tile"
_STATUSES: tuple[TileStatus, ...] = ("filled", "empty")
# Characters a tile id may keep in its node name ("_" too, except first: Zarr reserves
# names starting "__"); everything else is %-escaped, so every id maps to one valid name.
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")


@dataclass(frozen=True)
class TileRecord:
    """What was written for one source tile, and when."""

    tile_id: str
    status: TileStatus
    written_at: str  # ISO 8601, UTC
    window: tuple[int, int, int, int]  # (row0, row1, col0, col1) in cube pixels
    source: dict[str, Any] = field(default_factory=dict)
    darts_version: str = __version__

    @classmethod
    def now(
        cls, tile_id: str, status: TileStatus, window: Window, source: dict[str, Any]
    ) -> TileRecord:
        return cls(
            tile_id=tile_id,
            status=status,
            written_at=datetime.now(UTC).isoformat(timespec="microseconds"),
            window=(window.row0, window.row1, window.col0, window.col1),
            source=dict(source),
        )

    @property
    def pixel_window(self) -> Window:
        return Window(*self.window)

    def to_attrs(self) -> dict[str, Any]:
        return {
            _RECORD_KEY: {
                "tile_id": self.tile_id,
                "status": self.status,
                "written_at": self.written_at,
                "window": list(self.window),
                "source": self.source,
                "darts_version": self.darts_version,
            }
        }

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any], where: str) -> TileRecord:
        try:
            raw = attrs[_RECORD_KEY]
            status = raw["status"]
            if status not in _STATUSES:
                raise ValueError(f"unknown status {status!r}")
            row0, row1, col0, col1 = (int(v) for v in raw["window"])
            return cls(
                tile_id=str(raw["tile_id"]),
                status=cast(TileStatus, status),
                written_at=str(raw["written_at"]),
                window=(row0, row1, col0, col1),
                source=dict(raw.get("source") or {}),
                darts_version=str(raw.get("darts_version", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DatacubeError(
                f"the tile record {where} is damaged ({error}); `darts cache repair` drops "
                "that tile and fetches it again"
            ) from None


def normalise_source(tile_id: str, source: dict[str, Any]) -> dict[str, Any]:
    """``source`` as it reads back from the record (JSON: tuples become lists), so a
    record compares equal to itself after a round trip; refuses what JSON cannot hold."""
    try:
        return dict(json.loads(json.dumps(source, allow_nan=False)))
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"tile {tile_id!r}: the fetch's source description is not plain JSON ({error})"
        ) from None


def node_name(tile_id: str) -> str:
    """The record node's name for ``tile_id`` (reversible, always a valid Zarr name)."""
    if not tile_id:
        raise ValueError("a tile id must not be empty")
    escaped = "".join(
        ch if ch in _PLAIN or (ch == "_" and i > 0) else "".join(f"%{b:02X}" for b in ch.encode())
        for i, ch in enumerate(tile_id)
    )
    # "." and ".." are path components, not names.
    return escaped if escaped.strip(".") else escaped.replace(".", "%2E")


def records_path(group: str) -> str:
    return f"{group}/{TILES_GROUP}" if group else TILES_GROUP
