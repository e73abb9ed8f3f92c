"""Where a scene's outputs came from, carried by every file the export writes.

Outputs of many scenes end up side by side: polygon layers merged into one table, GeoTIFFs
in one mosaic or catalogue, thumbnails in a report. Each file must therefore say on its own
which scene, tile, date, source and models produced it, and under which parameters, not
only the folder it was written to. `Provenance` is that description; the pipeline builds
it (it knows the scene document and the run) and the export writers only read it, so they
stay independent of how a run is composed.

Encodings shared by the writers:

- models as ``<file name>@<SHA-256>``, joined by ``"; "`` in ensemble order; the polygon
  column shortens each checksum to :data:`SHORT_CHECKSUM` hex digits (still unique among
  any realistic set of checkpoints, and short enough to read in a table);
- the parameters digest: SHA-256 of their canonical JSON (keys sorted, no whitespace,
  UTF-8, no NaN): equal for every scene of one run, so merged outputs group by it;
- datetimes in ISO 8601 UTC with a ``Z`` (milliseconds when the source gives them).

Nothing here reads a clock: provenance depends only on the inputs, like the outputs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from darts import __version__

SHORT_CHECKSUM = 12
MODEL_SEPARATOR = "; "


@dataclass(frozen=True)
class ModelRef:
    """One checkpoint of the ensemble: its file name and the file's SHA-256."""

    name: str
    sha256: str

    def label(self, *, short: bool = False) -> str:
        return f"{self.name}@{self.sha256[:SHORT_CHECKSUM] if short else self.sha256}"


@dataclass(frozen=True)
class Provenance:
    """What produced one scene's outputs.

    ``parameters``: the run's choices that determine the outputs' values (JSON values
    only), the same for every scene of the run. ``footprint``: the scene's footprint as
    a GeoJSON geometry in EPSG:4326, when the source document has one. ``source_href``:
    the source item's own address (its STAC ``self`` link), when it has one.
    ``acquired``: the acquisition time (STAC ``datetime``; for a composite such as a
    quarterly mosaic, the start of its span); ``period_start``/``period_end``: the span
    a composite covers (STAC ``start_datetime``/``end_datetime``).
    """

    scene_id: str
    source: str
    models: tuple[ModelRef, ...]
    parameters: Mapping[str, Any] = field(default_factory=dict)
    tile_id: str | None = None
    acquired: datetime | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    footprint: Mapping[str, Any] | None = None
    source_href: str | None = None
    darts_version: str = __version__
    parameters_sha256: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if not self.scene_id:
            raise ValueError("provenance needs the scene id")
        object.__setattr__(self, "models", tuple(self.models))
        for name in ("acquired", "period_start", "period_end"):
            moment = getattr(self, name)
            if moment is not None:
                # Naive datetimes are read as UTC, the convention of every source's documents.
                utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
                object.__setattr__(self, name, utc)
        # Computed here, so parameters that are not JSON fail at the pipeline, not
        # half-way through the export.
        digest = hashlib.sha256(canonical_json(self.parameters)).hexdigest()
        object.__setattr__(self, "parameters_sha256", digest)

    def models_text(self, *, short: bool = False) -> str:
        """``name@sha256; …`` in ensemble order (``short``: abbreviated checksums)."""
        return MODEL_SEPARATOR.join(m.label(short=short) for m in self.models)

    def acquired_text(self) -> str | None:
        return iso_utc(self.acquired)

    def raster_tags(self) -> dict[str, str]:
        """GDAL metadata items (the default domain) of every GeoTIFF of the scene."""
        tags = {
            "scene_id": self.scene_id,
            "tile_id": self.tile_id or "",
            "datetime": self.acquired_text() or "",
            "source": self.source,
            "models": self.models_text(),
            "darts_version": self.darts_version,
            "parameters_sha256": self.parameters_sha256,
        }
        return {key: value for key, value in tags.items() if value}


def canonical_json(value: Any) -> bytes:
    """One byte string per JSON value: sorted keys, no whitespace, UTF-8, no NaN."""
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"the run's parameters are not plain JSON values: {error}") from None
    return text.encode("utf-8")


def iso_utc(moment: datetime | None) -> str | None:
    """``2018-07-14T20:38:49.024Z`` (or whole seconds when there is no fraction)."""
    if moment is None:
        return None
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    spec = "milliseconds" if utc.microsecond else "seconds"
    return utc.isoformat(timespec=spec).replace("+00:00", "Z")
