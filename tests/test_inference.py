"""Streaming patch inference: tiling, blending, skipping, ensembles, bounded memory."""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch

from darts.errors import ConfigError
from darts.processing.inference import (
    PatchParams,
    ensemble_bands,
    iter_patch_windows,
    predict_scene,
    ramp_weight,
)
from darts.processing.models import LoadedModel, ModelSpec

# -- real (tiny) networks --------------------------------------------------------------


class PixelNet(torch.nn.Module):
    """A 1×1 convolution: each output pixel depends on its own input pixel only, so
    patched inference must reproduce a whole-image forward pass exactly."""

    def __init__(self, channels: int, seed: int, bias: float = 0.0) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, 1, kernel_size=1)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(1, channels, 1, 1, generator=generator))
            self.conv.bias.fill_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ConstantNet(torch.nn.Module):
    """Ignores its input: logit ``value`` everywhere."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = torch.nn.Parameter(torch.tensor(value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value.expand(x.shape[0], 1, x.shape[2], x.shape[3])


class Counting(torch.nn.Module):
    """Wraps a network and records the inputs it was really given."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        if hasattr(inner, "encoder"):
            # Seen through the wrapper, as on the network itself (input size rounding).
            self.encoder = inner.encoder
        self.calls = 0
        self.patches = 0
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.patches += x.shape[0]
        self.inputs.append(x.clone())
        return self.inner(x)


def loaded(module: torch.nn.Module, bands: Sequence[str], name: str = "m") -> LoadedModel:
    spec = ModelSpec(
        path=Path(f"/models/{name}.pt"),
        layout="darts",
        arch="test",
        encoder_name="test",
        in_channels=len(bands),
        classes=1,
        bands=tuple(bands),
        patch_size=None,
        sha256="0" * 64,
        name=name,
    )
    return LoadedModel(spec=spec, module=module.eval())


# -- a scene ---------------------------------------------------------------------------

SCENE_BANDS = ("red", "green", "blue", "nir")


class Scene:
    """Features of a random scene; read_patch records every call."""

    def __init__(self, shape: tuple[int, int], seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.shape = shape
        self.features = {b: rng.random(shape, dtype=np.float32) for b in SCENE_BANDS}
        self.reads: list[tuple[tuple[int, int, int, int], tuple[str, ...]]] = []

    def read_patch(self, window: tuple[int, int, int, int], bands: Sequence[str]) -> np.ndarray:
        self.reads.append((window, tuple(bands)))
        r0, r1, c0, c1 = window
        return np.stack([self.features[b][r0:r1, c0:c1] for b in bands])

    def stack(self, bands: Sequence[str]) -> np.ndarray:
        return np.stack([self.features[b] for b in bands])


def direct(model: LoadedModel, scene: Scene) -> np.ndarray:
    x = torch.from_numpy(scene.stack(model.spec.bands))[None]
    with torch.inference_mode():
        return torch.sigmoid(model.module(x))[0, 0].numpy()


def everywhere(scene: Scene) -> np.ndarray:
    return np.ones(scene.shape, dtype=bool)


# -- tiling and weights ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "patch", "overlap"),
    [
        ((100, 130), 32, 8),
        ((96, 96), 32, 0),
        ((88, 40), 32, 16),
        ((20, 50), 32, 8),
        ((32, 32), 32, 8),
    ],
)
def test_windows_cover_the_scene_exactly(shape: tuple[int, int], patch: int, overlap: int) -> None:
    params = PatchParams(patch_size=patch, overlap=overlap, batch_size=1)
    windows = iter_patch_windows(shape, params)
    coverage = np.zeros(shape, dtype=int)
    for r0, r1, c0, c1 in windows:
        assert 0 <= r0 < r1 <= shape[0] and 0 <= c0 < c1 <= shape[1]
        assert r1 - r0 == min(patch, shape[0]) and c1 - c0 == min(patch, shape[1])
        coverage[r0:r1, c0:c1] += 1
    assert coverage.min() >= 1
    assert len(set(windows)) == len(windows)
    assert max(w[1] for w in windows) == shape[0] and max(w[3] for w in windows) == shape[1]
    # Neighbouring starts are one step apart, except the last, shifted inward.
    starts = sorted({w[0] for w in windows})
    steps = np.diff(starts)
    assert all(step == patch - overlap for step in steps[:-1])
    assert all(0 < step <= patch - overlap for step in steps[-1:])


def test_windows_of_an_exact_multiple_have_no_shifted_patch() -> None:
    windows = iter_patch_windows((56, 32), PatchParams(patch_size=32, overlap=8))
    assert windows == [(0, 32, 0, 32), (24, 56, 0, 32)]


def test_ramp_weight_cross_fades_over_the_overlap() -> None:
    weight = ramp_weight(16, 4)
    assert weight.shape == (16, 16) and weight.dtype == np.float32
    assert weight.max() == 1.0 and weight.min() > 0
    np.testing.assert_array_equal(weight, weight.T)
    np.testing.assert_array_equal(weight, weight[::-1, ::-1])
    profile = weight[8]
    np.testing.assert_allclose(profile[:4], [0.2, 0.4, 0.6, 0.8], rtol=1e-6)
    assert (profile[4:12] == 1).all()
    # Two patches overlapping by exactly `overlap` pixels: weights sum to 1 there.
    np.testing.assert_allclose(profile[-4:] + profile[:4], 1.0, rtol=1e-6)
    np.testing.assert_array_equal(ramp_weight(8, 0), np.ones((8, 8), dtype=np.float32))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"patch_size": 0},
        {"overlap": 32},
        {"overlap": -1},
        {"batch_size": 0},
        {"reflection_padding": -1},
    ],
)
def test_patch_params_are_checked(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        PatchParams(**{"patch_size": 32, **kwargs})


# -- predictions -----------------------------------------------------------------------


@pytest.mark.parametrize("padding", [0, 5])
@pytest.mark.parametrize("shape", [(70, 90), (20, 50)], ids=["several-patches", "small-scene"])
def test_local_model_matches_a_whole_image_forward_pass(
    shape: tuple[int, int], padding: int
) -> None:
    scene = Scene(shape)
    model = loaded(PixelNet(4, seed=3), SCENE_BANDS)
    params = PatchParams(patch_size=32, overlap=8, batch_size=3, reflection_padding=padding)

    result = predict_scene([model], shape, scene.read_patch, everywhere(scene), params)

    assert result.probabilities.shape == shape and result.probabilities.dtype == np.float32
    np.testing.assert_allclose(result.probabilities, direct(model, scene), atol=1e-5, rtol=0)
    assert result.n_patches == len(iter_patch_windows(shape, params))
    assert result.n_run == result.n_patches and result.n_skipped == 0
    assert 0 < result.seconds_model <= result.seconds_total
    assert result.overhead >= 1


def test_constant_model_gives_a_seamless_constant_result() -> None:
    shape = (75, 101)
    scene = Scene(shape)
    model = loaded(ConstantNet(0.7), SCENE_BANDS)
    params = PatchParams(patch_size=24, overlap=10, batch_size=4)
    result = predict_scene([model], shape, scene.read_patch, everywhere(scene), params)
    expected = 1 / (1 + np.exp(-0.7))
    np.testing.assert_allclose(result.probabilities, expected, rtol=1e-6)


def test_patches_without_valid_pixels_are_skipped_and_left_nan() -> None:
    shape = (64, 96)
    scene = Scene(shape)
    counting = Counting(PixelNet(4, seed=4))
    model = loaded(counting, SCENE_BANDS)
    params = PatchParams(patch_size=32, overlap=0, batch_size=2)
    valid = np.zeros(shape, dtype=bool)
    valid[40, 70] = True  # one valid pixel: only the patch (32:64, 64:96) has one
    valid[5, 5] = True  # and (0:32, 0:32)

    result = predict_scene([model], shape, scene.read_patch, valid, params)

    assert (result.n_patches, result.n_run, result.n_skipped) == (6, 2, 4)
    assert counting.patches == 2 and counting.calls == 1
    assert [window for window, _ in scene.reads] == [(0, 32, 0, 32), (32, 64, 64, 96)]
    predicted = ~np.isnan(result.probabilities)
    expected = np.zeros(shape, dtype=bool)
    expected[0:32, 0:32] = expected[32:64, 64:96] = True
    np.testing.assert_array_equal(predicted, expected)
    reference = direct(model, scene)
    np.testing.assert_allclose(result.probabilities[expected], reference[expected], atol=1e-5)


def test_valid_as_a_function_matches_valid_as_an_array() -> None:
    shape = (60, 60)
    scene = Scene(shape)
    model = loaded(PixelNet(4, seed=5), SCENE_BANDS)
    params = PatchParams(patch_size=32, overlap=8, batch_size=2)
    valid = np.zeros(shape, dtype=bool)
    valid[:10, :10] = True
    seen: list[tuple[int, int, int, int]] = []

    def valid_window(window: tuple[int, int, int, int]) -> np.ndarray:
        seen.append(window)
        r0, r1, c0, c1 = window
        return valid[r0:r1, c0:c1]

    by_array = predict_scene([model], shape, scene.read_patch, valid, params)
    by_function = predict_scene([model], shape, scene.read_patch, valid_window, params)
    np.testing.assert_array_equal(by_array.probabilities, by_function.probabilities)
    assert by_function.n_run == 1 and len(seen) == by_function.n_patches


def test_nothing_valid_runs_nothing() -> None:
    shape = (40, 40)
    scene = Scene(shape)
    counting = Counting(PixelNet(4, seed=6))
    params = PatchParams(patch_size=16, overlap=4)
    result = predict_scene(
        [loaded(counting, SCENE_BANDS)], shape, scene.read_patch, np.zeros(shape, bool), params
    )
    assert np.isnan(result.probabilities).all()
    assert result.n_run == 0 and result.n_skipped == result.n_patches
    assert counting.calls == 0 and scene.reads == []


def test_ensemble_is_the_mean_and_features_are_read_once_per_patch() -> None:
    shape = (50, 70)
    scene = Scene(shape)
    # Different bands in different orders: the union is read once, each model gets its own.
    first = loaded(Counting(PixelNet(3, seed=7)), ("nir", "red", "green"), "first")
    second = loaded(Counting(PixelNet(2, seed=8)), ("green", "blue"), "second")
    params = PatchParams(patch_size=32, overlap=8, batch_size=2)
    batches: list[tuple[int, int]] = []

    result = predict_scene(
        [first, second],
        shape,
        scene.read_patch,
        everywhere(scene),
        params,
        on_batch=lambda done, total: batches.append((done, total)),
    )

    union = ("nir", "red", "green", "blue")
    assert ensemble_bands([first, second]) == union
    assert len(scene.reads) == result.n_run == 6
    assert all(bands == union for _, bands in scene.reads)
    assert batches == [(1, 3), (2, 3), (3, 3)]
    assert first.module.patches == second.module.patches == 6
    assert first.module.inputs[0].shape[1] == 3 and second.module.inputs[0].shape[1] == 2
    expected = (direct(first, scene) + direct(second, scene)) / 2
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-5, rtol=0)

    alone = [
        predict_scene([m], shape, scene.read_patch, everywhere(scene), params).probabilities
        for m in (first, second)
    ]
    np.testing.assert_allclose(result.probabilities, (alone[0] + alone[1]) / 2, atol=1e-6)


@pytest.mark.parametrize(("padding", "loop"), [(0, "cpu"), (3, "cpu"), (3, "device")])
def test_each_models_own_probabilities_come_with_the_ensembles(
    padding: int, loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --write-model-outputs: each model blended alone, the ensemble unchanged.
    if loop == "device":
        # The GPU's loop (features of the next batch while the device works), run on
        # CPU tensors: the same stacking and cropping as on a GPU.
        from darts.processing import inference

        original = inference._Ensemble.__init__

        def device_loop(self, *args, **kwargs) -> None:
            original(self, *args, **kwargs)
            self.on_cpu = False

        monkeypatch.setattr(inference._Ensemble, "__init__", device_loop)
    shape = (50, 70)
    scene = Scene(shape)
    first = loaded(PixelNet(3, seed=7), ("nir", "red", "green"), "first")
    second = loaded(PixelNet(2, seed=8), ("green", "blue"), "second")
    params = PatchParams(patch_size=32, overlap=8, batch_size=2, reflection_padding=padding)
    valid = everywhere(scene)
    valid[:, :32] = False  # patches without a valid pixel stay NaN in every layer

    both = predict_scene([first, second], shape, scene.read_patch, valid, params, each_model=True)
    plain = predict_scene([first, second], shape, scene.read_patch, valid, params)

    np.testing.assert_array_equal(both.probabilities, plain.probabilities)
    assert plain.model_probabilities == ()
    assert len(both.model_probabilities) == 2
    for model, own in zip((first, second), both.model_probabilities, strict=True):
        alone = predict_scene([model], shape, scene.read_patch, valid, params).probabilities
        np.testing.assert_allclose(own, alone, atol=1e-6, equal_nan=True)
        assert np.isnan(own).sum() == np.isnan(both.probabilities).sum() > 0
    mean = (both.model_probabilities[0] + both.model_probabilities[1]) / 2
    np.testing.assert_allclose(both.probabilities, mean, atol=1e-6, equal_nan=True)


def test_smp_unet_runs_on_patches_it_could_not_take_directly() -> None:
    # 30 px patches: not a multiple of the encoder's output stride 8; the input is
    # padded up to 32 and the padding cropped again.
    torch.manual_seed(0)
    net = smp.create_model(
        "unet",
        encoder_name="tu-test_resnet",
        encoder_weights=None,
        in_channels=4,
        classes=1,
        encoder_depth=3,
        decoder_channels=(16, 8, 4),
    )
    counting = Counting(net)
    shape = (45, 61)
    scene = Scene(shape)
    params = PatchParams(patch_size=30, overlap=6, batch_size=4)
    result = predict_scene(
        [loaded(counting, SCENE_BANDS)], shape, scene.read_patch, everywhere(scene), params
    )
    assert {tuple(x.shape[2:]) for x in counting.inputs} == {(32, 32)}
    assert np.isfinite(result.probabilities).all()
    assert ((result.probabilities > 0) & (result.probabilities < 1)).all()


def test_padding_beyond_the_scene_mirrors_it() -> None:
    shape = (20, 50)
    scene = Scene(shape)
    counting = Counting(PixelNet(4, seed=9))
    params = PatchParams(patch_size=32, overlap=8, reflection_padding=3)
    predict_scene(
        [loaded(counting, SCENE_BANDS)], shape, scene.read_patch, everywhere(scene), params
    )
    (x,) = counting.inputs
    # Frame: 20 + 2·3 rows starting 3 above the scene; row 3 is scene row 0, row 2
    # mirrors scene row 1.
    assert x.shape == (2, 4, 26, 38)
    red = scene.features["red"]
    np.testing.assert_array_equal(x[0, 0, 3, 3:35].numpy(), red[0, 0:32])
    np.testing.assert_array_equal(x[0, 0, 2, 3:35].numpy(), red[1, 0:32])
    np.testing.assert_array_equal(x[0, 0, 3:23, 2].numpy(), red[:, 1])
    # The second patch's context left of it is real scene data, not a mirror.
    np.testing.assert_array_equal(x[1, 0, 3, 0:3].numpy(), red[0, 15:18])


def test_memory_does_not_grow_with_the_number_of_patches() -> None:
    # 961 overlapping patches whose outputs alone would be 3.75× the scene raster (their
    # inputs 15×). The run may hold the accumulator (1×), one batch and a few hundred
    # bytes of bookkeeping per patch (window tuples), no pixels per patch.
    shape = (512, 512)
    scene = Scene(shape)
    model = loaded(PixelNet(4, seed=10), SCENE_BANDS)
    params = PatchParams(patch_size=32, overlap=16, batch_size=8)
    valid = everywhere(scene)
    scene_bytes = shape[0] * shape[1] * 4
    tracemalloc.start()
    try:
        result = predict_scene([model], shape, scene.read_patch, valid, params)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.n_run == 31 * 31
    assert peak < 2.5 * scene_bytes, f"peak {peak / 1e6:.1f} MB"


def test_cpu_passes_and_parallel_feature_reads_do_not_change_the_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from darts.processing import inference

    shape = (70, 90)
    scene = Scene(shape)
    params = PatchParams(patch_size=32, overlap=8, batch_size=5)
    whole = Counting(PixelNet(4, seed=11))
    expected = predict_scene(
        [loaded(whole, SCENE_BANDS)], shape, scene.read_patch, everywhere(scene), params
    )
    assert whole.calls == math.ceil(expected.n_run / 5)  # small patches: a batch per pass

    # One patch per forward pass, features of three patches read at once by threads.
    monkeypatch.setattr(inference, "CPU_PASS_PIXELS", 32 * 32)
    monkeypatch.setattr(inference, "PARALLEL_FILL_PIXELS", 1)
    monkeypatch.setattr(inference, "_cpu_workers", lambda: 3)
    single = Counting(PixelNet(4, seed=11))
    batches: list[tuple[int, int]] = []
    result = predict_scene(
        [loaded(single, SCENE_BANDS)],
        shape,
        scene.read_patch,
        everywhere(scene),
        params,
        on_batch=lambda done, total: batches.append((done, total)),
    )
    assert single.calls == single.patches == result.n_run == expected.n_run
    total = math.ceil(result.n_run / 5)
    assert batches == [(n, total) for n in range(1, total + 1)]
    np.testing.assert_allclose(result.probabilities, expected.probabilities, atol=1e-6)

    def failing(window: tuple[int, int, int, int], bands: Sequence[str]) -> np.ndarray:
        if window[0] > 30:
            raise OSError("store unreadable")
        return scene.read_patch(window, bands)

    with pytest.raises(OSError, match="store unreadable"):
        predict_scene([loaded(single, SCENE_BANDS)], shape, failing, everywhere(scene), params)
