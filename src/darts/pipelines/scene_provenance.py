"""A scene's provenance and its models as the record names them, built from the run.

The export writers take a `Provenance` and know nothing of scene documents, sources or
data directories; this module is where a pipeline turns what it has (the scene's STAC
document, the source's name, the loaded models, the run's parameters, the data paths)
into that description. Every pipeline builds it the same way, so outputs of the same
scene say the same whichever pipeline wrote them.

Model files are named without absolute paths: a record or STAC item is copied between
machines and shared, and an absolute path says nothing there (and may tell more about
the machine than its owner wants). A model under one of the data roots is named
relative to it (``<fast-dir>/models/unet.pt``); one elsewhere by its file name only;
its SHA-256 identifies it in both cases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from darts.processing.provenance import ModelRef, Provenance

if TYPE_CHECKING:
    from darts.paths import DataPaths
    from darts.processing.models import LoadedModel


def scene_provenance(
    item: Mapping[str, Any],
    source: str,
    models: Sequence[LoadedModel],
    parameters: Mapping[str, Any],
) -> Provenance:
    """The provenance of scene document ``item`` processed by ``models``."""
    from darts.sources.scene_docs import DiscoveryError, item_datetime, item_tile

    document = dict(item)
    try:
        tile: str | None = item_tile(document)
    except DiscoveryError:
        tile = None
    properties = document.get("properties") or {}
    return Provenance(
        scene_id=str(document["id"]),
        source=source,
        models=tuple(ModelRef(m.spec.path.name, m.spec.sha256) for m in models),
        parameters=parameters,
        tile_id=tile,
        acquired=item_datetime(document),
        period_start=_moment(properties.get("start_datetime")),
        period_end=_moment(properties.get("end_datetime")),
        footprint=document.get("geometry") or None,
        source_href=self_link(document),
    )


def model_entries(models: Sequence[LoadedModel], paths: DataPaths) -> list[dict[str, Any]]:
    """The record's ``models``: file name, where it lies relative to a data root (or
    None), SHA-256 and what the checkpoint declares."""
    return [
        {
            "file": m.spec.path.name,
            "path": relative_to_data_dirs(m.spec.path, paths),
            "sha256": m.spec.sha256,
            "layout": m.spec.layout,
            "arch": m.spec.arch,
            "encoder": m.spec.encoder_name,
            "bands": list(m.spec.bands),
        }
        for m in models
    ]


def relative_to_data_dirs(path: Path, paths: DataPaths) -> str | None:
    """``<fast-dir>/models/x.pt`` for a file under a data root, else None. The deepest
    root that holds it names it; among equal roots (those left unset equal the darts
    dir) the fast dir, where models belong, then the darts dir."""
    target = Path(path).resolve()
    best: tuple[int, str] | None = None
    for label, root in (
        ("fast-dir", paths.fast_dir),
        ("darts-dir", paths.darts_dir),
        ("large-dir", paths.large_dir),
    ):
        base = Path(root).resolve()
        if not target.is_relative_to(base):
            continue
        relative = target.relative_to(base).as_posix()
        depth = len(base.parts)
        if best is None or depth > best[0]:
            best = (depth, f"<{label}>/{relative}")
    return best[1] if best else None


def self_link(document: Mapping[str, Any]) -> str | None:
    """The document's STAC ``self`` link, when it is an absolute URL."""
    for link in document.get("links") or []:
        if isinstance(link, Mapping) and link.get("rel") == "self":
            href = link.get("href")
            if isinstance(href, str) and "://" in href:
                return href
    return None


def _moment(value: Any) -> Any:
    from darts.sources.scene_docs import item_datetime

    if not isinstance(value, str):
        return None
    return item_datetime({"properties": {"datetime": value}})
