"""The zarr group metadata (``zarr.json``) at the root of a scene folder.

It carries zarr-python's inline *consolidated metadata*: the metadata of the
arrays it lists. With it, ``zarr.open_group`` / ``xr.open_zarr`` use that list
instead of scanning the folder, so they see exactly the arrays we put there and
never a staging folder or a half-published band.

The store keeps ``record ⊆ group listing ⊆ array folders`` at every instant:
publishing adds a folder, then lists it, then commits it; cleaning up un-lists
first and deletes the folder after. So a plain zarr reader can at worst see a
complete, verified band that was not committed yet, never a listed band without
data (which zarr would silently read as fill values).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from darts.store.atomic import atomic_write_json

GROUP_METADATA = "zarr.json"


def write_group(
    scene_dir: Path, arrays: Iterable[str], attributes: Mapping[str, Any], *, fsync: bool
) -> None:
    """(Re)write the group metadata listing ``arrays`` (folders that already exist)."""
    members = {
        name: json.loads((scene_dir / name / GROUP_METADATA).read_text(encoding="utf-8"))
        for name in arrays
    }
    document = {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": dict(attributes),
        "consolidated_metadata": {"kind": "inline", "must_understand": False, "metadata": members},
    }
    atomic_write_json(scene_dir / GROUP_METADATA, document, fsync=fsync)


def listed_arrays(scene_dir: Path) -> set[str] | None:
    """Names the group metadata lists; None if there is no readable group metadata."""
    listed = listed_metadata(scene_dir)
    return None if listed is None else set(listed)


def listed_metadata(scene_dir: Path) -> dict[str, dict[str, Any]] | None:
    """The metadata of each array the group metadata lists (what zarr reads them by);
    None if there is no readable group metadata."""
    try:
        document = json.loads((scene_dir / GROUP_METADATA).read_text(encoding="utf-8"))
        members = document["consolidated_metadata"]["metadata"]
        return {str(name): dict(meta) for name, meta in members.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
