"""Resolved settings → the pipelines' requests, once for every caller (the command
line and the Python API), so both mean the same by every option."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from darts.errors import ConfigError
from darts.settings.pipeline import Filters, SavedSceneIds, Selection, Staging
from darts.settings.processing import Export, Models, Postprocess, Terrain
from darts.settings.sections import Storage

if TYPE_CHECKING:
    from darts.pipelines.prep_data import PrepDataRequest
    from darts.pipelines.sequential import InferenceRequest
    from darts.settings.resolve import Resolved
    from darts.sources.query import SceneFilters, SceneSelection


def selection_of(settings: Resolved) -> SceneSelection:
    from darts.sources.query import SceneSelection

    chosen = settings.get(Selection)
    return SceneSelection(
        scene_ids=tuple(chosen.scene_ids),
        scene_id_file=chosen.scene_id_file,
        tile_ids=tuple(chosen.tile_ids),
        aoi_file=chosen.aoi_file,
    )


def filters_of(settings: Resolved) -> SceneFilters:
    from darts.sources.query import SceneFilters

    f = settings.get(Filters)
    return SceneFilters.from_strings(
        start_date=f.start_date,
        end_date=f.end_date,
        max_cloud_cover=f.max_cloud_cover,
        max_snow_cover=f.max_snow_cover,
        months=tuple(f.months),
        years=tuple(f.years),
        quarters=tuple(f.quarters),
    )


def prep_data_request(
    settings: Resolved, selection: SceneSelection, filters: SceneFilters
) -> PrepDataRequest:
    from darts.pipelines.prep_data import PrepDataRequest

    staging = settings.get(Staging)
    return PrepDataRequest(
        selection=selection,
        filters=filters,
        bands=staging.bands,
        optical=staging.optical,
        dry_run=staging.dry_run,
        scene_id_file_out=settings.get(SavedSceneIds).prep_data_scene_id_file,
        aux=staging.aux,
        aux_buffer_m=settings.get(Terrain).aux_buffer_m,
        arcticdem_resolution=settings.get(Storage).arcticdem_resolution,
    )


def inference_request(
    settings: Resolved,
    output_dir: Path,
    selection: SceneSelection,
    filters: SceneFilters,
) -> InferenceRequest:
    from darts.pipelines.sequential import InferenceRequest
    from darts.processing.features import FeatureParams
    from darts.processing.inference import PatchParams
    from darts.processing.postprocess import PostprocessParams

    models = settings.get(Models)
    terrain = settings.get(Terrain)
    post = settings.get(Postprocess)
    export = settings.get(Export)
    if models.overlap >= models.patch_size:
        raise ConfigError(
            f"--overlap {models.overlap} must be smaller than --patch-size {models.patch_size}"
        )
    return InferenceRequest(
        selection=selection,
        filters=filters,
        model_files=list(models.model_files),
        patch=PatchParams(
            patch_size=models.patch_size,
            overlap=models.overlap,
            batch_size=models.batch_size,
            reflection_padding=models.reflection_padding,
        ),
        features=FeatureParams(
            tpi_outer_radius_m=terrain.tpi_outer_radius,
            tpi_inner_radius_m=terrain.tpi_inner_radius,
            terrain_convention=terrain.terrain_convention,
        ),
        post=PostprocessParams(
            binarization_threshold=post.binarization_threshold,
            mask_erosion_size=post.mask_erosion_size,
            edge_erosion_size=post.edge_erosion_size,
            min_object_size=post.min_object_size,
            quality_level=post.quality_level,
        ),
        exports=list(dict.fromkeys(export.export)),
        output_dir=output_dir,
        overwrite=export.overwrite,
        arcticdem_resolution=settings.get(Storage).arcticdem_resolution,
        aux_buffer_m=terrain.aux_buffer_m,
        saved_scene_id_file=settings.get(SavedSceneIds).prep_data_scene_id_file,
        resolved_config=settings.to_document(),
    )
