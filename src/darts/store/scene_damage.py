"""Which parts of a stored scene are damaged, and clearing them so they can be staged again.

`SceneStore.verify` says *what* is wrong, as sentences. A repair needs to know *which*
parts to drop: the committed bands whose files no longer match the commit record (they
are discarded and fetched again, nothing else), or the whole scene when its record or
its coordinates are unusable (the coordinates were written with the first band, so no
band can be re-added without them). Leftovers of interrupted writes are removed either
way; they were never committed, so nothing needs fetching for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from darts.store.errors import StoreError
from darts.store.group import GROUP_METADATA, listed_arrays
from darts.store.manifest import check_manifest
from darts.store.record import RECORD_NAME, read_record
from darts.store.scene_removal import remove_scene
from darts.store.scenes import COORDINATES, STAGING, SceneStore


@dataclass(frozen=True)
class SceneDamage:
    """What is wrong with one scene, and what a repair drops.

    problems: as `SceneStore.verify` words them (empty: healthy).
    bands: committed bands whose files differ from the record: discarded, fetched again.
    whole: the record is unreadable or the coordinates are damaged: the scene is removed
        and ``restage`` fetched again.
    restage: the bands to fetch after clearing (the damaged bands, or every band the
        scene held).
    item: the STAC item kept with the scene, if its record could be read.
    """

    scene_id: str
    problems: tuple[str, ...]
    bands: tuple[str, ...] = ()
    whole: bool = False
    restage: tuple[str, ...] = ()
    item: dict[str, Any] | None = None

    @property
    def healthy(self) -> bool:
        return not self.problems


def assess(store: SceneStore, scene_id: str) -> SceneDamage:
    """Check the scene in full (sizes and SHA-256 of every file) and say what to drop."""
    problems = tuple(store.verify(scene_id, content=True))
    if any(p.startswith("note:") for p in problems):
        # Another process holds the scene's lock: what looks unfinished is its write in
        # progress, not damage. Only committed data that fails its check counts.
        problems = tuple(
            p for p in problems if not p.startswith(("note:", "leftover:", "no commit record"))
        )
    if not problems:
        return SceneDamage(scene_id, ())
    scene_dir = store.scene_path(scene_id)
    if not scene_dir.exists():
        return SceneDamage(scene_id, problems)
    try:
        record = read_record(scene_dir)
    except StoreError:
        # The record is what says which bands were committed; without it, the folder's
        # array folders are the best account of what the scene held.
        return SceneDamage(scene_id, problems, whole=True, restage=_folder_bands(store, scene_id))
    if record is None:  # nothing was ever committed: only leftovers to clear
        return SceneDamage(scene_id, problems, whole=True)
    damaged = [
        name
        for name, array in record.arrays().items()
        if check_manifest(scene_dir / name, array.files, content=True)
    ]
    if any(name in record.coords for name in damaged):
        return SceneDamage(
            scene_id, problems, whole=True, restage=tuple(sorted(record.bands)), item=record.item
        )
    bands = tuple(sorted(damaged))
    return SceneDamage(scene_id, problems, bands=bands, restage=bands, item=record.item)


@dataclass(frozen=True)
class NeededDamage:
    """What `needed_damage` found: ``problems`` as sentences; ``bands``, the requested
    bands that are damaged; ``whole``: the record or the coordinates are, so every band
    of the scene is unusable."""

    problems: tuple[str, ...] = ()
    bands: tuple[str, ...] = ()
    whole: bool = False

    def __bool__(self) -> bool:
        return bool(self.problems)

    def unusable(self, bands: Iterable[str]) -> list[str]:
        """Which of ``bands`` cannot be read as they are."""
        return [b for b in bands if self.whole or b in self.bands]


def needed_damage(
    store: SceneStore, scene_id: str, bands: Iterable[str], *, content: bool = False
) -> NeededDamage:
    """What is wrong with the committed parts of a scene that reading ``bands`` needs:
    its commit record, its coordinates and those of ``bands`` it holds (bands it does
    not hold are missing, not damaged).

    Without ``content`` only presence and sizes are checked (a ``stat`` per chunk file:
    milliseconds, so staging and readiness do it every time); with it, the SHA-256 of
    every file too (reads every byte). Takes no lock: committed files are only ever
    replaced whole, under the scene's lock, by a repair."""
    scene_dir = store.scene_path(scene_id)
    try:
        record = read_record(scene_dir)
    except StoreError as error:
        return NeededDamage((str(error),), whole=True)
    if record is None:
        return NeededDamage()
    whole: list[str] = []
    for name, array in record.coords.items():
        found = check_manifest(scene_dir / name, array.files, content=content)
        whole += [f"coordinate {name!r}: {problem}" for problem in found]
    wanted = [band for band in dict.fromkeys(bands) if band in record.bands]
    listed = listed_arrays(scene_dir)
    if listed is None:
        whole.append(f"group metadata {GROUP_METADATA} is missing or unreadable")
    per_band: list[str] = []
    damaged: list[str] = []
    for name in wanted:
        found = check_manifest(scene_dir / name, record.bands[name].files, content=content)
        if listed is not None and name not in listed:
            found.append("not listed in the group metadata")
        if found:
            damaged.append(name)
            per_band += [f"band {name!r}: {problem}" for problem in found]
    return NeededDamage(tuple(whole + per_band), tuple(damaged), whole=bool(whole))


def clear(store: SceneStore, scene_id: str) -> SceneDamage:
    """Drop what is damaged (the whole scene, or its damaged bands) and every leftover,
    so that staging the returned damage's ``restage`` bands makes the scene whole again.

    Assessed again under the scene's lock, so a write that was in progress when the
    scene was first checked is seen finished, and never taken for damage."""
    with store.lock(scene_id):
        damage = assess(store, scene_id)
        if damage.healthy:
            return damage
        if damage.whole:
            remove_scene(store, scene_id)
        else:
            store.discard_bands(scene_id, damage.bands)
            store.cleanup_leftovers(scene_id)
        return damage


def _folder_bands(store: SceneStore, scene_id: str) -> tuple[str, ...]:
    scene_dir = store.scene_path(scene_id)
    skip = {*COORDINATES, STAGING, RECORD_NAME, GROUP_METADATA}
    return tuple(
        sorted(
            entry.name
            for entry in scene_dir.iterdir()
            if entry.is_dir() and entry.name not in skip and not entry.name.startswith(".")
        )
    )
