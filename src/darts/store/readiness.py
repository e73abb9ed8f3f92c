"""What a run needs versus what is on disk, without any network.

An offline run must fail before doing any work, and list *everything* that is missing
at once: one missing scene reported per attempt turns staging into a guessing game on
a machine where each attempt waits in a batch queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from darts.errors import DartsError
from darts.store.scene_damage import needed_damage
from darts.store.scenes import SceneStore


@dataclass(frozen=True)
class Gap:
    """One thing a run needs that is not staged."""

    scene_id: str
    what: str

    def __str__(self) -> str:
        return f"{self.scene_id}: {self.what}"


@dataclass
class Readiness:
    """The outcome of a readiness check."""

    checked: list[str] = field(default_factory=list)
    ready: list[str] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.gaps

    def summary(self) -> str:
        missing = sorted({g.scene_id for g in self.gaps})
        lines = [
            f"{len(self.ready)} of {len(self.checked)} scene(s) ready"
            + (f"; {len(missing)} not ready:" if missing else "")
        ]
        lines += [f"  - {gap}" for gap in self.gaps]
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "ready": self.ready,
            "missing": [{"scene_id": g.scene_id, "what": g.what} for g in self.gaps],
        }


class NotStagedError(DartsError):
    """Raised by offline runs when the readiness check fails; lists every gap."""

    def __init__(self, readiness: Readiness) -> None:
        self.readiness = readiness
        super().__init__(
            "offline run cannot start, data is missing (stage it with "
            "`darts inference prep-data sentinel2 ... --optical --aux` on a machine "
            "with internet):\n" + readiness.summary()
        )


def optical_readiness(
    store: SceneStore,
    scene_ids: Sequence[str],
    band_keys: Sequence[str],
    *,
    verify: bool = False,
) -> Readiness:
    """Check that every scene has its STAC item and every band in the store, and that
    the files of those bands and of the scene's coordinates are all there at their
    recorded sizes (with ``verify``: their SHA-256 too, which reads every byte)."""
    readiness = Readiness(checked=list(scene_ids))
    for scene_id in scene_ids:
        damage = needed_damage(store, scene_id, band_keys, content=verify)
        if damage:
            found = "; ".join(damage.problems)
            advice = (
                ""
                if "darts cache repair" in found
                else " (`darts cache repair` or prep-data stages it again)"
            )
            readiness.gaps.append(Gap(scene_id, f"damaged: {found}{advice}"))
            continue
        stored = store.stored_bands(scene_id)
        if not stored and store.item(scene_id) is None:
            readiness.gaps.append(Gap(scene_id, "scene not in the raw-data store"))
            continue
        missing = [band for band in band_keys if band not in stored]
        problems = []
        if missing:
            problems.append(Gap(scene_id, f"missing band(s) {', '.join(missing)}"))
        if store.item(scene_id) is None:
            problems.append(Gap(scene_id, "STAC item (scene metadata) not stored"))
        if problems:
            readiness.gaps.extend(problems)
        else:
            readiness.ready.append(scene_id)
    return readiness
