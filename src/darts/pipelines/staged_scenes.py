"""What an offline run sees of its optical source: the scenes in the raw-data store.

Offline is a property of the objects a run is built from, not a flag its steps test.
`open_scene_source` wraps the configured source in `StagedScenes` when the runtime is
offline; the pipelines then discover, describe and load exactly as online:

* discovery reads the store: the ids given, the ids prep-data saved for a tile/AOI
  selection (``--prep-data-scene-id-file``), or — where the caller allows it (the
  Python API) — the staged scenes a tile/AOI selection matches. A tile or AOI with
  none of these is refused before anything connects (pitfall 6). An id the store does
  not know comes back with the footprint the id file keeps (prep-data writes one), else
  as a bare ``{"id": ...}`` document, so the readiness check can name it — and, with a
  footprint, the auxiliary tiles it needs — with every other gap;
* a staged scene is described as its source describes it (grid, footprint: all from
  the stored document); fetching refuses with `SceneNotStagedError`, naming the bands
  it would have fetched and those the store has, before any client is touched.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from darts.pipelines.staging import SceneNotStagedError
from darts.sources.query import SceneFilters, SceneSelection
from darts.sources.scene_ids import read_scene_footprints
from darts.store.errors import StoreError

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from darts.sources.scene_source import (
        BandConsumer,
        FetchedCallback,
        SceneDescription,
        SceneSource,
    )
    from darts.store.scenes import SceneStore


class StagedScenes:
    """``source`` restricted to what ``store`` holds (a `SceneSource`). ``store`` may be
    None (``--no-raw-data-store``): then nothing is staged and every scene is a gap."""

    def __init__(
        self,
        source: SceneSource,
        store: SceneStore | None,
        *,
        saved_scene_id_file: Path | None = None,
        match_staged: bool = False,
    ) -> None:
        self.source = source
        self.store = store
        self.saved_scene_id_file = saved_scene_id_file
        self.match_staged = match_staged

    # The source's identity: messages and store folders are the same offline.
    @property
    def name(self) -> str:
        return self.source.name

    @property
    def kind(self) -> str:
        return self.source.kind

    @property
    def quality_band(self) -> str:
        return self.source.quality_band

    @property
    def relax_hint(self) -> str:
        return getattr(self.source, "relax_hint", "select other staged scenes")

    def discover(
        self, selection: SceneSelection, filters: SceneFilters, *, today: date | None = None
    ) -> list[dict[str, Any]]:
        if selection.needs_search:
            if self.saved_scene_id_file is not None:
                selection = SceneSelection(
                    scene_id_file=self.saved_scene_id_file,
                    scene_id_file_option="--prep-data-scene-id-file",
                )
            elif self.match_staged:
                return self._matching(selection, filters)
        ids = self.source.offline_ids(selection)
        footprints = (
            read_scene_footprints(selection.scene_id_file)
            if selection.scene_id_file is not None
            else {}
        )
        return [self._document(scene_id, footprints.get(scene_id)) for scene_id in ids]

    def offline_ids(self, selection: SceneSelection) -> list[str]:
        return self.source.offline_ids(selection)

    def band_keys(self, bands: Sequence[str] | None, scene: Mapping[str, Any] | None) -> list[str]:
        # A scene the store does not know has a bare document: nothing to check against.
        return self.source.band_keys(bands, scene if scene and self._staged(scene) else None)

    def describe(self, scene: Mapping[str, Any], keys: Sequence[str]) -> SceneDescription:
        if not self._staged(scene):
            raise self._refusal(scene, keys)
        return self.source.describe(scene, keys)

    def fetch(
        self,
        scene: Mapping[str, Any],
        keys: Sequence[str],
        consume: BandConsumer,
        *,
        on_fetched: FetchedCallback | None = None,
    ) -> None:
        raise self._refusal(scene, keys)

    def notes(self, filters: SceneFilters) -> list[str]:
        return self.source.notes(filters)

    # -- the store ----------------------------------------------------------------------

    def _item(self, scene_id: str) -> dict[str, Any] | None:
        """The scene's stored STAC item; None when it is not staged, or when its commit
        record is damaged (the readiness check names that damage; discovery must not
        stop at it)."""
        if self.store is None:
            return None
        try:
            return self.store.item(scene_id)
        except StoreError as error:
            log.debug("scene %s: %s", scene_id, error)
            return None

    def _staged(self, scene: Mapping[str, Any]) -> bool:
        return self._item(str(scene.get("id") or "")) is not None

    def _document(self, scene_id: str, footprint: dict[str, Any] | None) -> dict[str, Any]:
        item = self._item(scene_id)
        if item is not None:
            return dict(item)
        return footprint if footprint is not None else {"id": scene_id}

    def _matching(self, selection: SceneSelection, filters: SceneFilters) -> list[dict[str, Any]]:
        """The staged scenes a tile/AOI selection and the filters match, ordered like a
        search's results."""
        from darts.sources.scene_docs import item_datetime, matches

        if self.store is None:
            return []
        documents = (self._item(scene_id) for scene_id in self.store.scenes())
        found = [dict(d) for d in documents if d is not None and matches(d, selection, filters)]
        return sorted(found, key=lambda d: (str(item_datetime(d)), d["id"]))

    def _refusal(self, scene: Mapping[str, Any], keys: Sequence[str]) -> SceneNotStagedError:
        scene_id = str(scene.get("id") or "")
        stored = self.store.stored_bands(scene_id) if self.store is not None else ()
        return SceneNotStagedError(scene_id, [k for k in keys if k not in stored], stored)
