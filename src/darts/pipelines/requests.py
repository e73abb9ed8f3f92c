"""Resolved settings → the pipelines' requests, once for every caller (the command
line and the Python API), so both mean the same by every option."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from darts.errors import ConfigError
from darts.settings.pipeline import Bands, Filters, SavedSceneIds, Selection, Staging
from darts.settings.processing import Export, Features, Models, Postprocess, Terrain
from darts.settings.sections import Storage

if TYPE_CHECKING:
    from darts.pipelines.prep_data import PrepDataRequest
    from darts.pipelines.sequential import InferenceRequest
    from darts.settings.resolve import Resolved
    from darts.sources.query import SceneFilters, SceneSelection


def selection_of(settings: Resolved, *, saved_is_selection: bool = False) -> SceneSelection:
    """The scenes the options select. With ``saved_is_selection`` (a run, a readiness
    check) the ``--prep-data-scene-id-file`` prep-data wrote is a selection of its own:
    given alone, its ids are the scenes, as with ``--scene-id-file``."""
    from darts.sources.query import SELECTION_OPTIONS, SceneSelection

    chosen = settings.get(Selection)
    saved = (
        settings.get(SavedSceneIds).prep_data_scene_id_file
        if SavedSceneIds in settings.sections
        else None
    )
    given = chosen.scene_ids or chosen.scene_id_file or chosen.tile_ids or chosen.aoi_file
    if not given and saved is not None:
        if saved_is_selection:
            return SceneSelection(
                scene_id_file=saved, scene_id_file_option="--prep-data-scene-id-file"
            )
        raise ConfigError(
            "--prep-data-scene-id-file is where prep-data writes the ids of the scenes it "
            "finds: say what to find with --tile-ids or --aoi-file (or give the scenes with "
            "--scene-ids or --scene-id-file)"
        )
    if not given and saved_is_selection:
        raise ConfigError(
            f"select scenes with one of {', '.join(SELECTION_OPTIONS)}, or with the "
            "--prep-data-scene-id-file prep-data wrote (none was given)"
        )
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
    check_terrain(settings.get(Terrain))
    return PrepDataRequest(
        selection=selection,
        filters=filters,
        bands=settings.get(Bands).bands,
        optical=staging.optical,
        dry_run=staging.dry_run,
        scene_id_file_out=settings.get(SavedSceneIds).prep_data_scene_id_file,
        aux=staging.aux,
        aux_buffer_m=settings.get(Terrain).aux_buffer_m,
        arcticdem_resolution=settings.get(Storage).arcticdem_resolution,
    )


def model_files_of(settings: Resolved) -> list[Path]:
    """``--model-files``, else every checkpoint (``*.pt``, ``*.ckpt``) in the default
    model folder, ``<fast-dir>/models``, in name order; none at all is an error that
    says both ways to give one."""
    from darts.paths import data_paths

    chosen = settings.get(Models).model_files
    if chosen:
        return list(chosen)
    folder = data_paths(settings).models_dir
    found = (
        sorted(p for p in folder.iterdir() if p.suffix in (".pt", ".ckpt") and p.is_file())
        if folder.is_dir()
        else []
    )
    if not found:
        raise ConfigError(
            "no model given: pass --model-files FILE [FILE ...] (several form an ensemble), "
            f"or put checkpoints (*.pt, *.ckpt) into {folder}, the default model folder "
            f"({data_paths(settings).set_by('models_dir')})"
        )
    return found


def check_terrain(terrain: Terrain) -> None:
    if terrain.tpi_inner_radius > terrain.tpi_outer_radius:
        raise ConfigError(
            f"--tpi-inner-radius {terrain.tpi_inner_radius:g} must not be larger than "
            f"--tpi-outer-radius {terrain.tpi_outer_radius:g}"
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
    # Each option's own range is checked where it is parsed (settings.options); what
    # is left are the rules between two options.
    if models.overlap >= models.patch_size:
        raise ConfigError(
            f"--overlap {models.overlap} must be smaller than --patch-size {models.patch_size}"
        )
    check_terrain(terrain)
    return InferenceRequest(
        selection=selection,
        filters=filters,
        model_files=model_files_of(settings),
        patch=PatchParams(
            patch_size=models.patch_size,
            overlap=models.overlap,
            batch_size=models.batch_size,
            reflection_padding=models.reflection_padding,
        ),
        features=FeatureParams(
            tpi_outer_radius_m=terrain.tpi_outer_radius,
            tpi_inner_radius_m=terrain.tpi_inner_radius,
            terrain_convention=settings.get(Features).terrain_convention,
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
        write_model_outputs=export.write_model_outputs,
        arcticdem_resolution=settings.get(Storage).arcticdem_resolution,
        aux_buffer_m=terrain.aux_buffer_m,
        saved_scene_id_file=settings.get(SavedSceneIds).prep_data_scene_id_file,
        resolved_config=settings.to_document(),
    )
