"""Choosing the optical source: the one place a ``--raw-data-source`` name becomes an
object. Everything after this works through the `SceneSource` protocol.

An offline runtime gets the source restricted to the raw-data store
(`darts.pipelines.staged_scenes`): that is where offline becomes a property of the
objects a run uses, so no pipeline step has to ask."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from darts.errors import ConfigError

if TYPE_CHECKING:
    from darts.net.http import HttpClient
    from darts.pipelines.runtime import Runtime
    from darts.sources.scene_source import SceneSource

SOURCE_NAMES = ("cdse", "cdse-mosaic", "gee")


def open_scene_source(
    runtime: Runtime,
    http: HttpClient,
    *,
    saved_scene_id_file: Path | None = None,
    match_staged: bool = False,
) -> SceneSource:
    """The source ``runtime.raw_data_source`` names, using ``http`` for catalogue and
    pixel requests. Opens no connection and reads no credential until it is used.

    Offline, the source sees only the raw-data store (`StagedScenes`): a tile/AOI
    selection reads ``saved_scene_id_file`` (the ids prep-data saved), or, with
    ``match_staged``, selects among the staged scenes."""
    source = _named_source(runtime, http)
    if not runtime.offline:
        return source
    from darts.pipelines.staged_scenes import StagedScenes
    from darts.store.scenes import SceneStore

    root = runtime.paths.raw_data_store
    return StagedScenes(  # type: ignore[return-value]
        source,
        SceneStore(root) if root is not None else None,
        saved_scene_id_file=saved_scene_id_file,
        match_staged=match_staged,
    )


def _named_source(runtime: Runtime, http: HttpClient) -> SceneSource:
    name = runtime.raw_data_source
    if name in ("cdse", "cdse-mosaic"):
        from darts.net.s3 import S3Client

        def s3() -> S3Client:
            return S3Client(runtime.s3, runtime.net)

        if name == "cdse":
            from darts.sources.cdse_source import CdseSource

            return CdseSource(stac_url=runtime.endpoints.cdse_stac_url, http=http, s3=s3)
        from darts.sources.cdse_mosaic import CdseMosaicSource

        return CdseMosaicSource(stac_url=runtime.endpoints.cdse_stac_url, http=http, s3=s3)
    if name == "gee":
        from darts.sources.gee import GeeSource

        endpoints = runtime.endpoints
        return GeeSource(
            http=http,
            base_url=endpoints.earth_engine_highvolume_url
            if endpoints.ee_use_highvolume
            else endpoints.earth_engine_url,
            project=endpoints.ee_project,
            credentials_file=endpoints.ee_credentials_file,
            max_concurrency=runtime.net.max_concurrency,
        )
    raise ConfigError(f"unknown --raw-data-source {name!r}; use one of: {', '.join(SOURCE_NAMES)}")
