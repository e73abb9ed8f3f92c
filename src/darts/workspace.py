"""`Workspace`: DARTS from Python, from discovery to results.

One object owns a DARTS data directory and everything built on it: the resolved
settings, the optical source, the scene store, the auxiliary cubes. It offers the
steps a script needs, each returning plain values or `xarray.Dataset`s:

    ws = Workspace("/scratch/darts", raw_data_source="cdse")
    scenes = ws.discover(tile_ids=["33UUP"], years=[2024])
    ws.stage(scenes)                      # optical bands + ArcticDEM + TCVIS
    optical = ws.open_scene(scenes[0])    # reflectance + quality mask, 10 m grid
    aux = ws.open_aux(scenes[0])          # DEM and TCVIS on the same grid
    report = ws.run(scenes, ["model.pt"])
    report = ws.run_dask(scenes, ["model.pt"], n_workers=4)   # the same, on Dask

Settings come from keyword arguments (any option name of the command line, flat:
``max_cloud_cover=20``, ``cdse_stac_url=...``), then the environment, then a config
file (``config_file`` or ``DARTS_CONFIG_FILE``; its ``[darts]`` and ``[darts.api]``
tables), then the defaults: the command line's precedence, with code in place of flags.

``offline=True`` is a property of the clients this workspace builds: each refuses
every connection and names what it would have fetched; nothing process-wide changes,
so an online and an offline workspace can live side by side.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xarray as xr

from darts.errors import ConfigError

if TYPE_CHECKING:
    from darts.pipelines.events import EventSink
    from darts.pipelines.prep_data import PrepDataReport
    from darts.pipelines.runtime import Runtime
    from darts.pipelines.sequential import InferenceRequest, RunReport
    from darts.settings.resolve import Resolved
    from darts.sources.query import SceneFilters, SceneSelection

Scene = Mapping[str, Any] | str
"""A scene document (as `Workspace.discover` returns them) or a scene id."""

_FILTER_NAMES = (
    "start_date",
    "end_date",
    "max_cloud_cover",
    "max_snow_cover",
    "months",
    "years",
    "quarters",
)


class Workspace:
    """A DARTS data directory and the settings to use it. Building one reads settings
    and opens nothing."""

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        offline: bool = False,
        config_file: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        """``data_dir`` is the darts dir (``DARTS_DATA_DIR``); ``options`` are any
        options of the command line by their flat name, in snake_case."""
        values = dict(options)
        if data_dir is not None:
            # Absolute now, so a script that changes directory keeps its data.
            values["darts_dir"] = Path(data_dir).expanduser().absolute()
        values["offline"] = bool(offline)
        # Kept to resolve again with per-call overrides, in the same precedence.
        self._values = values
        self._environ = environ
        self._config_file = config_file
        self.settings: Resolved = _resolve(values, environ, config_file)
        from darts.pipelines.runtime import runtime_of

        self.runtime: Runtime = runtime_of(self.settings)

    # -- where things are -------------------------------------------------------------

    @property
    def offline(self) -> bool:
        return self.runtime.offline

    @property
    def source(self) -> str:
        """The optical source (``cdse``, ``cdse-mosaic`` or ``gee``)."""
        return self.runtime.raw_data_source

    @property
    def paths(self) -> Any:
        """Every resolved location (`darts.paths.DataPaths`)."""
        return self.runtime.paths

    def __repr__(self) -> str:
        where = str(self.paths.darts_dir)
        return f"Workspace({where!r}, source={self.source!r}, offline={self.offline})"

    # -- the steps --------------------------------------------------------------------

    def discover(
        self,
        *,
        scene_ids: Iterable[str] = (),
        scene_id_file: str | Path | None = None,
        tile_ids: Iterable[str] = (),
        aoi_file: str | Path | None = None,
        **filters: Any,
    ) -> list[dict[str, Any]]:
        """Scene documents for exactly one of the selections, filtered by ``filters``
        (the workspace's filter settings, overridden by ``start_date``, ``end_date``,
        ``max_cloud_cover``, ``max_snow_cover``, ``months``, ``years``, ``quarters``).
        Offline, nothing is searched: ids are read back from the store, and tiles and
        AOIs select among the scenes staged there."""
        selection = _selection(scene_ids, scene_id_file, tile_ids, aoi_file)
        chosen = self._filters(filters)
        from darts.net.http import HttpClient
        from darts.pipelines.scene_sources import open_scene_source
        from darts.sources.scene_docs import discover_scenes

        with HttpClient(self.runtime.net) as http:
            source = open_scene_source(self.runtime, http, match_staged=True)
            return discover_scenes(source, selection, chosen)

    def stage(
        self,
        scenes: Sequence[Scene],
        *,
        optical: bool = True,
        aux: bool = True,
        bands: Sequence[str] | None = None,
    ) -> PrepDataReport:
        """Stage the scenes' bands into the store and the auxiliary cubes for their
        footprints, as ``prep-data`` does; a re-run fetches nothing. Per-scene failures
        are in the report (``report.failed``), not raised. Offline, nothing can be
        fetched: this checks that everything is staged and raises `NotStagedError`
        listing every gap if not."""
        from dataclasses import replace

        from darts.net.http import HttpClient
        from darts.pipelines.aux_data import AuxCubes
        from darts.pipelines.prep_data import stage_scenes
        from darts.pipelines.readiness import require_ready
        from darts.pipelines.requests import prep_data_request
        from darts.pipelines.scene_sources import open_scene_source
        from darts.sources.query import SceneFilters, SceneSelection

        documents = [self._document(scene) for scene in scenes]
        if not documents:
            raise ConfigError("stage() needs at least one scene")
        selection = SceneSelection(scene_ids=tuple(str(d["id"]) for d in documents))
        request = prep_data_request(self.settings, selection, SceneFilters())
        request = replace(request, optical=optical, aux=aux, scene_id_file_out=None)
        if bands is not None:
            request = replace(request, bands=list(bands))
        with HttpClient(self.runtime.net) as http:
            # Offline, everything must already be there: every gap is listed at once.
            source = open_scene_source(self.runtime, http)
            cubes = AuxCubes(self.runtime, http, resolution_m=request.arcticdem_resolution)
            require_ready(
                self.runtime,
                documents,
                self._store(),
                source.band_keys(request.bands, None) if optical else None,
                cubes if aux else None,
                request.aux_buffer_m,
            )
        return stage_scenes(request, self.runtime, documents)

    def open_scene(
        self, scene: Scene, bands: Sequence[str] | None = None, *, reflectance: bool = True
    ) -> xr.Dataset:
        """One scene's bands on its 10 m grid (float32 reflectance, NaN for nodata,
        unless ``reflectance=False``) plus ``quality_data_mask`` (0 invalid, 1 low,
        2 high). From the store; online, missing bands are staged first."""
        from darts.net.http import HttpClient
        from darts.pipelines.optical import load_optical
        from darts.pipelines.scene_sources import open_scene_source

        document = self._document(scene)
        with HttpClient(self.runtime.net) as http:
            return load_optical(
                open_scene_source(self.runtime, http),
                document,
                list(bands) if bands is not None else None,
                self._store(),
                reflectance=reflectance,
            )

    def open_aux(self, scene: Scene) -> xr.Dataset:
        """ArcticDEM heights (``dem``, metres) and the TCVIS trends of the scene's year
        (``tc_brightness``, ``tc_greenness``, ``tc_wetness``, ``tcvis_valid``) on the
        scene's 10 m grid. Online, missing cube tiles are fetched first; offline, a
        missing tile is an error naming it, never fill values."""
        from darts.net.http import HttpClient
        from darts.pipelines.aux_data import AuxCubes
        from darts.pipelines.aux_regions import item_year, regions_for_scenes
        from darts.pipelines.scene_sources import open_scene_source
        from darts.processing.reproject import reproject_dem, reproject_tcvis
        from darts.settings.processing import Terrain
        from darts.settings.sections import Storage

        document = self._document(scene)
        region = regions_for_scenes([document])[0]
        buffer_m = self.settings.get(Terrain).aux_buffer_m
        resolution = self.settings.get(Storage).arcticdem_resolution
        with HttpClient(self.runtime.net) as http:
            # The scene's grid is in its document: no band needs reading for it.
            source = open_scene_source(self.runtime, http)
            grid = source.describe(document, source.band_keys(None, document)).grid
            cubes = AuxCubes(self.runtime, http, resolution_m=resolution)
            dem = reproject_dem(cubes.load_dem(region, buffer_m), grid)
            tcvis = reproject_tcvis(cubes.load_tcvis(region, item_year(document), buffer_m), grid)
        return xr.merge([dem, tcvis], compat="override", combine_attrs="drop_conflicts")

    def run(
        self,
        scenes: Sequence[Scene],
        models: Sequence[str | Path],
        *,
        output_dir: str | Path | None = None,
        **options: Any,
    ) -> RunReport:
        """The sequential pipeline over ``scenes`` with the ensemble of ``models``:
        outputs under ``output_dir`` (default: the workspace's), one folder per scene,
        and a run record. ``options`` override processing settings for this run
        (``patch_size``, ``binarization_threshold``, ``export``, ``overwrite`` …).
        Failed scenes are in ``report.failed``; offline, everything missing is listed
        in one error before any work starts."""
        from darts.compat import require_extras

        require_extras("inference", what="Workspace.run")
        from darts.pipelines.sequential import run_sequential
        from darts.processing.devices import resolve_device
        from darts.processing.models import load_model
        from darts.settings.processing import Models

        settings, request = self._inference(scenes, models, output_dir, options, "run")
        device = resolve_device(settings.get(Models).device)
        loaded = [load_model(Path(path), device) for path in models]
        return run_sequential(request, self.runtime, loaded)

    def run_dask(
        self,
        scenes: Sequence[Scene],
        models: Sequence[str | Path],
        *,
        output_dir: str | Path | None = None,
        cluster: Any = None,
        on_event: EventSink | None = None,
        **options: Any,
    ) -> RunReport:
        """`run` with the scenes spread over a Dask cluster: the same outputs and run
        record. ``cluster`` is a `distributed.Client`, a cluster object
        (``LocalCluster``, ``SLURMCluster`` ...) or a scheduler address, used as it is
        and left running; None: the workspace's ``scheduler_address``,
        ``cluster_config`` or a local cluster (``n_workers``, ``threads_per_worker``),
        started and shut down for this call. Models are checked here on the CPU and
        loaded once per worker on ``device``. ``on_event`` receives the progress
        events (`darts.pipelines.events`), workers' included."""
        from darts.compat import require_extras

        require_extras("inference", "dask", what="Workspace.run_dask")
        import torch

        from darts.pipelines.dask_cluster import cluster_choice
        from darts.pipelines.dask_run import run_dask
        from darts.processing.devices import check_device_name
        from darts.processing.models import load_model
        from darts.settings.processing import Models

        settings, request = self._inference(scenes, models, output_dir, options, "run_dask")
        device = settings.get(Models).device
        check_device_name(device)
        loaded = [load_model(Path(path), torch.device("cpu")) for path in models]
        target = cluster if cluster is not None else cluster_choice(settings)
        return run_dask(request, self.runtime, loaded, target, device=device, on_event=on_event)

    # -- helpers ----------------------------------------------------------------------

    def _inference(
        self,
        scenes: Sequence[Scene],
        models: Sequence[str | Path],
        output_dir: str | Path | None,
        options: Mapping[str, Any],
        what: str,
    ) -> tuple[Resolved, InferenceRequest]:
        """The settings (this call's ``options`` over the workspace's) and the request
        of a run over ``scenes``."""
        from darts.pipelines.requests import inference_request
        from darts.sources.query import SceneFilters, SceneSelection

        documents = [self._document(scene) for scene in scenes]
        if not documents:
            raise ConfigError(f"{what}() needs at least one scene")
        settings = self.settings
        if options or models:
            settings = _resolve(
                {**self._values, **options, "model_files": [Path(m) for m in models]},
                self._environ,
                self._config_file,
            )
        out = Path(output_dir) if output_dir is not None else self.paths.output_dir
        selection = SceneSelection(scene_ids=tuple(str(d["id"]) for d in documents))
        return settings, inference_request(settings, out, selection, SceneFilters())

    def _filters(self, overrides: Mapping[str, Any]) -> SceneFilters:
        from darts.pipelines.requests import filters_of

        unknown = sorted(set(overrides) - set(_FILTER_NAMES))
        if unknown:
            raise ConfigError(
                f"unknown filter(s) {', '.join(unknown)}; filters are {', '.join(_FILTER_NAMES)}"
            )
        if not overrides:
            return filters_of(self.settings)
        values = {**self._values, **overrides}
        return filters_of(_resolve(values, self._environ, self._config_file))

    def _document(self, scene: Scene) -> dict[str, Any]:
        """A scene document: given, from the store, or (online) looked up by id."""
        if isinstance(scene, Mapping):
            return dict(scene)
        scene_id = str(scene)
        store = self._store()
        if store is not None:
            item = store.item(scene_id)
            if item is not None:
                return dict(item)
        # Online a lookup; offline a bare document that every later step reports as
        # not staged (`StagedScenes`).
        (document,) = self.discover(scene_ids=[scene_id])
        return document

    def _store(self) -> Any:
        from darts.store.scenes import SceneStore

        root = self.paths.raw_data_store
        return SceneStore(root, lock_wait_s=self.runtime.lock_wait_s) if root is not None else None


def _selection(
    scene_ids: Iterable[str],
    scene_id_file: str | Path | None,
    tile_ids: Iterable[str],
    aoi_file: str | Path | None,
) -> SceneSelection:
    from darts.sources.query import SceneSelection

    if isinstance(scene_ids, str) or isinstance(tile_ids, str):
        raise ConfigError("scene_ids and tile_ids take a list of ids, not one string")
    return SceneSelection(
        scene_ids=tuple(scene_ids),
        scene_id_file=Path(scene_id_file) if scene_id_file is not None else None,
        tile_ids=tuple(tile_ids),
        aoi_file=Path(aoi_file) if aoi_file is not None else None,
    )


def _resolve(
    values: Mapping[str, Any],
    environ: Mapping[str, str] | None,
    config_file: str | Path | None,
) -> Resolved:
    """Settings of the API: ``values`` by flat option name > environment > config file
    > defaults, over the sections the API's steps use."""
    from darts.settings.resolve import read_config_file, resolve
    from darts.settings.suggest import did_you_mean

    spec = _api_spec()
    # By flat name and by each alias, snake_case (``output_data_dir`` is ``output_dir``).
    by_name = {name.replace("-", "_"): option for option in spec.options() for name in option.names}
    flags: dict[str, Any] = {}
    spellings: dict[str, str] = {}
    for name, value in values.items():
        option = by_name.get(name.replace("-", "_"))
        if option is None:
            hint = did_you_mean(name.replace("-", "_"), by_name, quote=True)
            known = ", ".join(sorted(o.field for o in spec.options() if not o.info.ignored))
            raise ConfigError(f"unknown setting {name!r}{hint}; the settings are: {known}")
        if option.dest in flags:
            raise ConfigError(f"setting {name!r} is given twice (under another of its names)")
        flags[option.dest] = value
        spellings[option.dest] = f"setting {name!r}"
    env = os.environ if environ is None else environ
    path = config_file or env.get("DARTS_CONFIG_FILE") or None
    config = read_config_file(Path(path)) if path else None
    # Every command's table is valid in a config file shared with the command line;
    # values under [darts] and [darts.api] apply here.
    from darts.settings.commands import ALL_SPECS

    resolved = resolve(spec, flags, env, config, list(ALL_SPECS), spellings)
    for note in resolved.notes:
        logging.getLogger("darts").warning("%s", note)
    return resolved


def _api_spec() -> Any:
    from darts.settings.commands import API

    return API
