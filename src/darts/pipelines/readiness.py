"""The readiness check: does what is staged cover a run, without any network?

One check for every caller — the ``readiness`` command, an offline run before its first
scene, and an offline `Workspace.stage` — so they all list the same gaps: scenes and
bands missing from the raw-data store (`darts.store.readiness`), and per scene every
ArcticDEM/TCVIS tile its footprint needs that the cubes have no record of. Scenes the
store does not know have no footprint here, so their auxiliary tiles cannot be named.

Offline runs must prove readiness before doing any work; online runs fetch what is
missing as they go. That difference lives here and nowhere else in the pipelines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from darts.pipelines.aux_regions import regions_for_scenes
from darts.store.readiness import NotStagedError, Readiness, optical_readiness

if TYPE_CHECKING:
    from darts.pipelines.aux_data import AuxCubes
    from darts.pipelines.runtime import Runtime
    from darts.store.scenes import SceneStore


def staged_readiness(
    documents: Sequence[Mapping[str, Any]],
    store: SceneStore | None,
    band_keys: Sequence[str] | None,
    cubes: AuxCubes | None,
    buffer_m: float,
    *,
    needs_dem: bool = True,
    needs_tcvis: bool = True,
    verify: bool = False,
) -> Readiness:
    """What is missing or damaged for ``documents``: their ``band_keys`` in ``store``
    (None: the optical data is not checked) and, with ``cubes``, the auxiliary tiles the
    models need (``needs_dem``/``needs_tcvis``) around each footprint.

    Scene files are checked for presence and size; with ``verify`` every byte is read
    and checked (SHA-256 of scene files, CRC-32C of the cube chunks of the tiles)."""
    from darts.pipelines.aux_data import aux_gaps

    ids = [str(document["id"]) for document in documents]
    if band_keys is None:
        readiness = Readiness(checked=ids, ready=list(ids))
    elif store is None:
        readiness = Readiness(checked=ids)
        readiness.gaps.extend(_no_store(ids))
    else:
        readiness = optical_readiness(store, ids, band_keys, verify=verify)
    located = [document for document in documents if document.get("geometry")]
    if cubes is not None and located:
        gaps = aux_gaps(cubes, regions_for_scenes(located), buffer_m, verify=verify)
        wanted = [gap for gap in gaps if _gap_matters(gap.what, needs_dem, needs_tcvis)]
        readiness.gaps.extend(wanted)
        failing = {gap.scene_id for gap in wanted}
        readiness.ready = [i for i in readiness.ready if i not in failing]
    return readiness


def require_ready(
    runtime: Runtime,
    documents: Sequence[Mapping[str, Any]],
    store: SceneStore | None,
    band_keys: Sequence[str] | None,
    cubes: AuxCubes | None,
    buffer_m: float,
    *,
    needs_dem: bool = True,
    needs_tcvis: bool = True,
) -> None:
    """Offline: raise `NotStagedError` listing every gap, before any work starts.
    Online: nothing to prove, since missing data is fetched when it is needed."""
    if not runtime.offline:
        return
    readiness = staged_readiness(
        documents, store, band_keys, cubes, buffer_m, needs_dem=needs_dem, needs_tcvis=needs_tcvis
    )
    if not readiness.ok:
        raise NotStagedError(readiness)


def _no_store(ids: Sequence[str]) -> list[Any]:
    from darts.store.readiness import Gap

    return [Gap(scene_id, "no raw-data store (--no-raw-data-store)") for scene_id in ids]


def _gap_matters(what: str, needs_dem: bool, needs_tcvis: bool) -> bool:
    return (needs_dem and what.startswith("ArcticDEM")) or (
        needs_tcvis and what.startswith("TCVIS")
    )
