"""Streaming patch inference of a model ensemble over one scene, in bounded memory.

The reference cut every patch of a scene out up front (tens of GB for a Sentinel-2
scene) and ran patches that held no data at all (pitfall 21). Here:

- patches are visited in order and only one batch of them is ever in memory, in one
  reused input buffer; the only scene-sized array is the blend accumulator
  (:class:`~darts.processing.patches.Blender`, one float32 raster);
- a patch without a single valid pixel is skipped before its features are computed;
- the features of a patch are computed once for the whole ensemble (``read_patch``
  gets the union of the models' bands) and each model takes its own bands, in its own
  order, from that;
- the ensemble probability is the mean of the models' sigmoid(logits), blended across
  patch overlaps with a linear ramp; on request (``each_model``) each model's own
  probability is blended too, into one more scene raster per model.

On a GPU the next batch's features are computed while the device still works on the
current batch (CUDA runs asynchronously until the result is copied back), so feature
computation and the forward pass overlap without threads.

On the CPU nothing overlaps with the forward pass (it already uses every core), so:

- the features of a batch's patches are computed by a small thread pool, one patch per
  core (numpy and scipy release the GIL), while the model waits;
- a forward pass gets at most :data:`CPU_PASS_PIXELS` input pixels (one 1024² patch):
  activations grow with the pixels of a pass (~0.6 GiB per 1024² patch for a
  Unet-resnet18, 4.7 GiB for a batch of 8), but CPU throughput does not (measured:
  one patch per pass is as fast as eight in CPU time, and with a batch of 8 on a
  busy 2-core machine several times slower in wall time). Results do not depend on
  it: in eval mode every patch's output depends on that patch alone. ``batch_size``
  stays the unit of progress reporting and of the GPU's passes.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from darts.processing.models import LoadedModel
from darts.processing.patches import (
    Blender,
    PatchParams,
    Window,
    iter_patch_windows,
    ramp_weight,
)

__all__ = [
    "PatchParams",
    "PredictionResult",
    "Window",
    "ensemble_bands",
    "iter_patch_windows",
    "predict_scene",
    "ramp_weight",
]

# On the CPU: the most input pixels one forward pass gets (see the module docstring).
CPU_PASS_PIXELS = 1024 * 1024
# Patches at least this big have their features computed in parallel on the CPU;
# smaller ones are not worth a thread hand-off.
PARALLEL_FILL_PIXELS = 256 * 256

ReadPatch = Callable[[Window, Sequence[str]], np.ndarray]
"""(window, bands) → normalised float32 (len(bands), h, w) features of that window."""
ValidPatch = Callable[[Window], np.ndarray]
"""window → bool (h, w): the pixels that count."""


@dataclass(frozen=True)
class PredictionResult:
    probabilities: np.ndarray
    """float32 (H, W) ensemble probability, NaN where no patch was run."""
    n_patches: int
    n_skipped: int
    """Patches without a valid pixel: never read, never run."""
    n_run: int
    seconds_model: float
    """Time the run waited on the models: host→device copy, forward passes, sigmoid and
    mean, device→host copy. Feature computation that overlaps with GPU work is not in it."""
    seconds_total: float
    model_probabilities: tuple[np.ndarray, ...] = ()
    """With ``each_model``: each model's own float32 (H, W) probability, in the
    ensemble's order (NaN where no patch was run)."""

    @property
    def overhead(self) -> float:
        """Total time per unit of model time (1.0: nothing but the models)."""
        return self.seconds_total / self.seconds_model if self.seconds_model > 0 else math.inf


def ensemble_bands(models: Sequence[LoadedModel]) -> tuple[str, ...]:
    """Every band any model needs, each once, in order of first appearance."""
    return tuple(dict.fromkeys(band for model in models for band in model.spec.bands))


def predict_scene(
    models: Sequence[LoadedModel],
    shape: tuple[int, int],
    read_patch: ReadPatch,
    valid: ValidPatch | np.ndarray,
    params: PatchParams,
    *,
    on_batch: Callable[[int, int], None] | None = None,
    each_model: bool = False,
) -> PredictionResult:
    """Mean probability of ``models`` over a scene of ``shape`` (rows, cols).

    ``on_batch(done, total)`` is called after each batch of patches. ``each_model``
    also returns every model's own probability (one more scene-sized float32 raster
    per model in memory).
    """
    started = time.perf_counter()
    if not models:
        raise ValueError("predict_scene needs at least one model")
    valid_of = _valid_function(valid, shape)
    windows = iter_patch_windows(shape, params)
    # Deciding up front (cheap: the quality mask only) gives the batch total for
    # progress reporting; the list holds window tuples, not data.
    run = [window for window in windows if valid_of(window).any()]
    batches = [run[i : i + params.batch_size] for i in range(0, len(run), params.batch_size)]
    # The ensemble's blender first, then one per model when each is kept.
    blenders = [Blender(shape, params) for _ in range(1 + (len(models) if each_model else 0))]
    seconds_model = 0.0
    if batches:
        frame = _frame(shape, params, _multiple(models))
        ensemble = _Ensemble(models, keep_each=each_model)
        seconds_model = _run(ensemble, batches, read_patch, frame, blenders, on_batch)
    probabilities, *each = (blender.finish() for blender in blenders)
    return PredictionResult(
        probabilities=probabilities,
        model_probabilities=tuple(each),
        n_patches=len(windows),
        n_skipped=len(windows) - len(run),
        n_run=len(run),
        seconds_model=seconds_model,
        seconds_total=time.perf_counter() - started,
    )


def _run(
    ensemble: _Ensemble,
    batches: Sequence[Sequence[Window]],
    read_patch: ReadPatch,
    frame: _Frame,
    blenders: Sequence[Blender],
    on_batch: Callable[[int, int], None] | None,
) -> float:
    """Run every batch through the ensemble into ``blenders``; returns the seconds
    spent waiting on the models."""
    if ensemble.on_cpu:
        return _run_cpu(ensemble, batches, read_patch, frame, blenders, on_batch)
    shape = (len(batches[0]), len(ensemble.bands), *frame.size)
    buffer = np.empty(shape, dtype=np.float32)
    _fill(buffer, batches[0], read_patch, ensemble.bands, frame)
    seconds = 0.0
    with torch.inference_mode():
        for number, batch in enumerate(batches, start=1):
            tick = time.perf_counter()
            pending = ensemble.launch(buffer[: len(batch)])
            seconds += time.perf_counter() - tick
            if number < len(batches):
                # Safe to overwrite: launch() has copied the input to each device (or,
                # on the CPU, already finished with it). On a GPU this overlaps the
                # next batch's features with the current forward passes.
                _fill(buffer, batches[number], read_patch, ensemble.bands, frame)
            tick = time.perf_counter()
            result = ensemble.collect(pending, frame)
            seconds += time.perf_counter() - tick
            _blend(blenders, batch, result)
            del pending, result
            if on_batch is not None:
                on_batch(number, len(batches))
    return seconds


def _run_cpu(
    ensemble: _Ensemble,
    batches: Sequence[Sequence[Window]],
    read_patch: ReadPatch,
    frame: _Frame,
    blenders: Sequence[Blender],
    on_batch: Callable[[int, int], None] | None,
) -> float:
    """The CPU loop: per batch, groups of patches whose features are computed in
    parallel (one per worker), each group run in passes of at most
    :data:`CPU_PASS_PIXELS` pixels. Only one group's input is ever in memory."""
    pixels = frame.size[0] * frame.size[1]
    per_pass = max(1, CPU_PASS_PIXELS // pixels)
    workers = min(_cpu_workers(), len(batches[0])) if pixels >= PARALLEL_FILL_PIXELS else 1
    group = max(per_pass, workers)
    buffer = np.empty((min(group, len(batches[0])), len(ensemble.bands), *frame.size), np.float32)
    seconds = 0.0
    pool = ThreadPoolExecutor(workers, thread_name_prefix="features") if workers > 1 else None
    try:
        with torch.inference_mode():
            for number, batch in enumerate(batches, start=1):
                for g0 in range(0, len(batch), group):
                    windows = batch[g0 : g0 + group]
                    _fill(buffer, windows, read_patch, ensemble.bands, frame, pool)
                    for p0 in range(0, len(windows), per_pass):
                        part = windows[p0 : p0 + per_pass]
                        tick = time.perf_counter()
                        pending = ensemble.launch(buffer[p0 : p0 + len(part)])
                        result = ensemble.collect(pending, frame)
                        seconds += time.perf_counter() - tick
                        _blend(blenders, part, result)
                        del pending, result
                if on_batch is not None:
                    on_batch(number, len(batches))
    finally:
        if pool is not None:
            pool.shutdown()
    return seconds


def _blend(blenders: Sequence[Blender], windows: Sequence[Window], result: np.ndarray) -> None:
    """Add (n, h, w) ensemble probabilities, or (1 + models, n, h, w) with each model's
    own, to the blenders in that order."""
    layers = result if result.ndim == 4 else result[np.newaxis]
    for blender, layer in zip(blenders, layers, strict=True):
        for index, window in enumerate(windows):
            r0, r1, c0, c1 = window
            blender.add(window, layer[index, : r1 - r0, : c1 - c0])


def _cpu_workers() -> int:
    """Feature threads on the CPU: the cores torch may use, at most the machine's."""
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1))


# -- the model input frame of a patch --------------------------------------------------


@dataclass(frozen=True)
class _Frame:
    """Where a patch's model input lies relative to its window: it starts ``pad``
    pixels above and left of the window and is ``size`` (rows, cols) big."""

    scene: tuple[int, int]
    pad: int
    size: tuple[int, int]


def _frame(scene: tuple[int, int], params: PatchParams, multiple: int) -> _Frame:
    """Patch (or the whole scene dimension, when smaller) plus the reflection padding
    on both sides, rounded up to a size the networks accept; the extra rows and
    columns of the rounding lie below and right of the window and are cropped."""
    rows = min(params.patch_size, scene[0]) + 2 * params.reflection_padding
    cols = min(params.patch_size, scene[1]) + 2 * params.reflection_padding
    size = (_round_up(rows, multiple), _round_up(cols, multiple))
    return _Frame(scene=scene, pad=params.reflection_padding, size=size)


def _fill(
    buffer: np.ndarray,
    batch: Sequence[Window],
    read_patch: ReadPatch,
    bands: Sequence[str],
    frame: _Frame,
    pool: ThreadPoolExecutor | None = None,
) -> None:
    """Write the model input of each patch of ``batch`` into ``buffer``: the frame's
    scene pixels as read, and beyond the scene edge the scene mirrored. With ``pool``
    the patches are read in parallel (each into its own slot of ``buffer``)."""
    if pool is None or len(batch) < 2:
        for index, window in enumerate(batch):
            _fill_one(buffer, index, window, read_patch, bands, frame)
        return
    jobs = [
        pool.submit(_fill_one, buffer, index, window, read_patch, bands, frame)
        for index, window in enumerate(batch)
    ]
    for job in jobs:
        job.result()  # re-raises a failed read


def _fill_one(
    buffer: np.ndarray,
    index: int,
    window: Window,
    read_patch: ReadPatch,
    bands: Sequence[str],
    frame: _Frame,
) -> None:
    height, width = frame.scene
    r0, _r1, c0, _c1 = window
    top, left = r0 - frame.pad, c0 - frame.pad
    bottom, right = top + frame.size[0], left + frame.size[1]
    inside = (max(top, 0), min(bottom, height), max(left, 0), min(right, width))
    data = read_patch(inside, bands)
    expected = (len(bands), inside[1] - inside[0], inside[3] - inside[2])
    if data.shape != expected:
        raise ValueError(
            f"read_patch returned shape {data.shape} for window {inside}, expected {expected}"
        )
    pads = (
        (0, 0),
        (inside[0] - top, bottom - inside[1]),
        (inside[2] - left, right - inside[3]),
    )
    if any(before or after for before, after in pads):
        data = np.pad(data, pads, mode="reflect")
    buffer[index] = data


def _multiple(models: Sequence[LoadedModel]) -> int:
    """Model input sizes are rounded up to a multiple of this: the output stride of
    every smp encoder in the ensemble. Most smp architectures refuse other sizes; Unet
    accepts them by resizing inside its decoder, but it was trained on patches whose
    sizes were multiples, so it gets those too."""
    multiple = 1
    for model in models:
        stride = getattr(getattr(model.module, "encoder", None), "output_stride", 1)
        if isinstance(stride, int) and stride > 1:
            multiple = math.lcm(multiple, stride)
    return multiple


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _valid_function(valid: ValidPatch | np.ndarray, shape: tuple[int, int]) -> ValidPatch:
    if callable(valid):
        function: ValidPatch = valid

        def checked(window: Window) -> np.ndarray:
            mask = np.asarray(function(window))
            expected = (window[1] - window[0], window[3] - window[2])
            if mask.shape != expected:
                raise ValueError(
                    f"valid returned shape {mask.shape} for window {window}, expected {expected}"
                )
            return mask

        return checked
    mask = np.asarray(valid, dtype=bool)
    if mask.shape != tuple(shape):
        raise ValueError(f"valid mask has shape {mask.shape}, the scene {tuple(shape)}")
    return lambda window: mask[window[0] : window[1], window[2] : window[3]]


# -- the ensemble ----------------------------------------------------------------------


class _Ensemble:
    """Runs every model on one batch of union-band input and averages the
    probabilities on the first model's device; with ``keep_each``, each model's own
    probabilities come back too, stacked after the mean."""

    def __init__(self, models: Sequence[LoadedModel], *, keep_each: bool = False) -> None:
        self.models = list(models)
        self.keep_each = keep_each
        self.bands = ensemble_bands(models)
        position = {band: index for index, band in enumerate(self.bands)}
        self._selection = [
            _selector([position[band] for band in model.spec.bands]) for model in models
        ]
        self.on_cpu = all(model.device.type == "cpu" for model in self.models)

    def launch(self, batch: np.ndarray) -> torch.Tensor:
        """Start the forward passes; on a GPU this returns before they finish."""
        host = torch.from_numpy(batch)
        # The batch on each device, in each memory format a model there wants (a
        # channels-last copy costs ~1 % of a CPU forward pass), made once per batch.
        inputs: dict[tuple[torch.device, bool], torch.Tensor] = {}
        total: torch.Tensor | None = None
        each: list[torch.Tensor] = []
        for model, select in zip(self.models, self._selection, strict=True):
            key = (model.device, model.channels_last)
            if key not in inputs:
                x = host.to(model.device)
                if model.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                inputs[key] = x
            logits = model.module(select(inputs[key]))
            expected = (batch.shape[0], 1, *batch.shape[2:])
            if tuple(logits.shape) != expected:
                raise ValueError(
                    f"model {model.spec.name} returned shape {tuple(logits.shape)} for input "
                    f"{tuple(batch.shape)}; expected {expected} (one logit per pixel)"
                )
            probabilities = torch.sigmoid(logits[:, 0].float())
            if self.keep_each:
                each.append(probabilities)
            if total is None:
                # A copy when each is kept: the sum must not change the first model's.
                total = probabilities.clone() if self.keep_each else probabilities
            else:
                total += probabilities.to(total.device)
        assert total is not None
        if len(self.models) > 1:
            total /= len(self.models)
        if self.keep_each:
            return torch.stack([total, *(p.to(total.device) for p in each)])
        return total

    def collect(self, pending: torch.Tensor, frame: _Frame) -> np.ndarray:
        """Wait for the device and return (n, h, w) probabilities of the patch windows
        ((1 + models, n, h, w) with ``keep_each``; padding cropped on the device, so
        only the windows travel back)."""
        rows = frame.size[0] - 2 * frame.pad
        cols = frame.size[1] - 2 * frame.pad
        window = pending[..., frame.pad : frame.pad + rows, frame.pad : frame.pad + cols]
        return window.cpu().numpy()


def _selector(indices: list[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Picks a model's bands from the union input: a view when they are a contiguous
    run in order (the usual case, no copy), else a gather."""
    start = indices[0]
    if indices == list(range(start, start + len(indices))):
        return lambda x: x.narrow(1, start, len(indices))
    gather = torch.tensor(indices)
    return lambda x: x.index_select(1, gather.to(x.device))
