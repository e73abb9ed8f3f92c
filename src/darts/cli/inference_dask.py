"""``darts inference sentinel2-dask``: the sequential run's options and output, its
scenes spread over a Dask cluster (`darts.pipelines.dask_run`)."""

from __future__ import annotations

from darts.cli.inference import progress_sink, progress_wanted, with_notes
from darts.cli.inference_run import Progress, inference_request, load_models, print_results
from darts.cli.parser import CommandContext
from darts.settings.processing import Models
from darts.settings.resolve import Resolved


def sentinel2_dask(ctx: CommandContext) -> int:
    import torch

    from darts.pipelines.dask_cluster import cluster_choice
    from darts.pipelines.dask_run import run_dask
    from darts.pipelines.runtime import runtime_of
    from darts.processing.devices import check_device_name

    settings: Resolved = ctx.settings  # type: ignore[assignment]
    device = settings.get(Models).device
    check_device_name(device)
    # Checked here, on the CPU, before anything is downloaded or started: the workers
    # load their own copies on --device (this machine may have no GPU).
    models = load_models(settings, torch.device("cpu"))
    choice = cluster_choice(settings)
    runtime = runtime_of(settings)
    request = inference_request(settings, runtime.paths.output_dir)
    bars = Progress(enabled=progress_wanted(settings))
    progress = progress_sink(settings, bars.on_event)
    try:
        report = run_dask(
            request, runtime, models, choice, device=device, on_event=with_notes(progress)
        )
    finally:
        bars.close()
    print_results(report)
    return 1 if report.failed else 0
