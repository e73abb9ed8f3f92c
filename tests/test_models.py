"""Checkpoint loading: the three layouts round-trip, unsafe or broken files are refused
with a clear message, bands and devices are checked."""

from __future__ import annotations

import hashlib
import os
import shlex
from pathlib import Path
from typing import Any

import pytest
import segmentation_models_pytorch as smp
import torch

from darts.errors import ConfigError, DartsError
from darts.processing.checkpoints import CheckpointError, UnsafeCheckpointError
from darts.processing.devices import DeviceError, resolve_device
from darts.processing.models import (
    LoadedModel,
    MissingBandsError,
    ModelSpec,
    check_bands,
    load_model,
    save_darts_checkpoint,
)

BANDS = ["red", "green", "nir"]
# A real smp Unet small enough to build, save and run in well under a second on CPU.
TINY = {
    "arch": "Unet",
    "encoder_name": "tu-test_resnet",
    "in_channels": 3,
    "classes": 1,
    "encoder_depth": 3,
    "decoder_channels": [16, 8, 4],
}
CPU = torch.device("cpu")


def tiny_model(seed: int = 0, **overrides: Any) -> torch.nn.Module:
    settings = {**TINY, **overrides}
    torch.manual_seed(seed)
    module = smp.create_model(
        arch=settings.pop("arch"),
        encoder_name=settings.pop("encoder_name"),
        encoder_weights=None,
        **settings,
    )
    # Non-trivial batch-norm statistics, so a loader that dropped buffers would show.
    with torch.no_grad():
        for name, buffer in module.named_buffers():
            if name.endswith("running_mean"):
                buffer.uniform_(-0.5, 0.5)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    return module.eval()


def probe(channels: int = 3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(42)
    return torch.rand(2, channels, 32, 32, generator=generator)


def forward(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return module(x)


def same_outputs(loaded: LoadedModel, original: torch.nn.Module) -> bool:
    """The loaded model computes exactly what the saved module computes, given the
    memory format it was loaded in (convolution kernels differ between formats)."""
    x = probe()
    if loaded.channels_last:
        original = original.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return torch.equal(forward(loaded.module, x), forward(original, x))


def darts_document(module: torch.nn.Module, **config: Any) -> dict[str, Any]:
    base = {"model_framework": "smp", "model": dict(TINY), "bands": list(BANDS), "name": "tiny"}
    base.update(config)
    return {"config": base, "statedict": module.state_dict()}


def lightning_document(module: torch.nn.Module) -> dict[str, Any]:
    state = {f"model.{key}": value for key, value in module.state_dict().items()}
    # A training module's own state (a loss weight) lives beside the network's.
    state["loss_fn.pos_weight"] = torch.tensor([2.0])
    return {
        "epoch": 12,
        "global_step": 3400,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": state,
        "hyper_parameters": {
            "config": {"model": {**TINY, "encoder_weights": "imagenet"}, "bands": list(BANDS)},
            "learning_rate": 1e-3,
        },
    }


def legacy_document(module: torch.nn.Module) -> dict[str, Any]:
    config = {
        "model_framework": "smp",
        "model": dict(TINY),
        "input_combination": list(BANDS),
        "norm_factors": {"red": 1 / 3000, "green": 1 / 3000, "nir": 1 / 3000},
        "patch_size": 1024,
    }
    return {"config": config, "statedict": module.state_dict()}


def write(path: Path, document: Any) -> Path:
    torch.save(document, path)
    return path


# -- the three layouts -----------------------------------------------------------------


@pytest.mark.parametrize("layout", ["lightning", "darts", "legacy-v1"])
def test_each_layout_round_trips_to_identical_outputs(tmp_path: Path, layout: str) -> None:
    module = tiny_model(seed=1)
    path = tmp_path / f"model-{layout}.pt"
    if layout == "darts":
        save_darts_checkpoint(module, {"model": TINY, "bands": BANDS, "name": "tiny"}, path)
    elif layout == "lightning":
        write(path, lightning_document(module))
    else:
        write(path, legacy_document(module))

    loaded = load_model(path, CPU)

    assert not loaded.module.training
    assert same_outputs(loaded, module)
    spec = loaded.spec
    assert spec.layout == layout
    assert spec.bands == tuple(BANDS)
    assert (spec.arch, spec.encoder_name, spec.in_channels, spec.classes) == (
        "Unet",
        "tu-test_resnet",
        3,
        1,
    )
    assert spec.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert spec.path == path
    assert spec.patch_size == (1024 if layout == "legacy-v1" else None)
    assert spec.name == ("tiny" if layout == "darts" else path.stem)
    assert loaded.device == CPU


def saved_resnet18(tmp_path: Path, seed: int) -> tuple[torch.nn.Module, Path]:
    """The encoder family of the production models, at the smallest depth, saved."""
    settings = {"encoder_name": "resnet18", "decoder_channels": [16, 8, 4]}
    module = tiny_model(seed=seed, **settings)
    path = tmp_path / "resnet18.pt"
    save_darts_checkpoint(module, {"model": {**TINY, **settings}, "bands": BANDS}, path)
    return module, path


def test_cpu_models_run_channels_last_with_the_same_results(tmp_path: Path) -> None:
    module, path = saved_resnet18(tmp_path, seed=3)
    loaded = load_model(path, CPU)
    assert loaded.channels_last
    weight = next(p for p in loaded.module.parameters() if p.ndim == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    plain = forward(module, probe())
    fast = forward(loaded.module, probe().contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)


def test_resnet18_unet_round_trips(tmp_path: Path) -> None:
    module, path = saved_resnet18(tmp_path, seed=2)
    loaded = load_model(path, CPU)
    assert same_outputs(loaded, module)


def test_saved_checkpoint_records_time_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "out" / "model.pt"
    save_darts_checkpoint(tiny_model(), {"model": TINY, "bands": BANDS}, path)
    document = torch.load(path, weights_only=True)
    assert document["config"]["model_framework"] == "smp"
    assert document["config"]["time"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]


# -- unsafe and broken files -----------------------------------------------------------


class _Exploit:
    """Unpickling this runs a shell command, as a hostile checkpoint would."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy-pickle"])
def test_checkpoint_that_would_run_code_is_refused(tmp_path: Path, zip_format: bool) -> None:
    marker = tmp_path / "pwned"
    document = darts_document(tiny_model())
    document["config"]["name"] = _Exploit(marker)
    path = tmp_path / "evil.pt"
    torch.save(document, path, _use_new_zipfile_serialization=zip_format)

    with pytest.raises(UnsafeCheckpointError) as caught:
        load_model(path, CPU)

    message = str(caught.value)
    assert f"refusing to load {path}" in message
    assert "re-save it with only tensors and plain config" in message
    assert not marker.exists()
    if zip_format:
        assert "system" in message  # names the offending object


def test_random_bytes_are_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint") as caught:
        load_model(path, CPU)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("keep", [0.5, 0.02])
def test_truncated_checkpoint_is_reported_as_damaged(tmp_path: Path, keep: float) -> None:
    whole = write(tmp_path / "whole.pt", darts_document(tiny_model())).read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(whole[: int(len(whole) * keep)])
    with pytest.raises(CheckpointError, match="damaged") as caught:
        load_model(path, CPU)
    assert str(path) in str(caught.value)
    assert not isinstance(caught.value, UnsafeCheckpointError)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope.pt", CPU)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (torch.zeros(3), "not a checkpoint dictionary"),
        ({"weights": {"a": torch.zeros(1)}}, "neither 'statedict'"),
        ({"statedict": {"a": torch.zeros(1)}}, "no 'config'"),
        ({"state_dict": {"model.a": torch.zeros(1)}}, r"no hyper_parameters\.config"),
    ],
)
def test_not_a_darts_checkpoint(tmp_path: Path, document: Any, message: str) -> None:
    path = write(tmp_path / "other.pt", document)
    with pytest.raises(CheckpointError, match=message) as caught:
        load_model(path, CPU)
    assert str(path) in str(caught.value)


def test_in_channels_must_match_the_bands(tmp_path: Path) -> None:
    document = darts_document(tiny_model(), bands=[*BANDS, "ndvi"])
    path = write(tmp_path / "m.pt", document)
    with pytest.raises(CheckpointError, match="in_channels is 3 but its bands lists 4"):
        load_model(path, CPU)


def test_weights_for_other_input_channels_are_refused(tmp_path: Path) -> None:
    # Config consistent with itself (4 bands, in_channels 4), weights for 3 channels.
    document = darts_document(
        tiny_model(), model={**TINY, "in_channels": 4}, bands=[*BANDS, "ndvi"]
    )
    path = write(tmp_path / "m.pt", document)
    with pytest.raises(CheckpointError, match="wrong shape") as caught:
        load_model(path, CPU)
    assert str(path) in str(caught.value)


def test_missing_and_unexpected_weights_are_named(tmp_path: Path) -> None:
    document = darts_document(tiny_model())
    state = document["statedict"]
    dropped = next(iter(state))
    del state[dropped]
    state["decoder.extra.weight"] = torch.zeros(2)
    path = write(tmp_path / "m.pt", document)
    with pytest.raises(CheckpointError) as caught:
        load_model(path, CPU)
    message = str(caught.value)
    assert "1 weights missing" in message and dropped in message
    assert "1 unexpected weights" in message and "decoder.extra.weight" in message
    assert str(path) in message


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({**TINY, "arch": "nosuchnet"}, "architecture 'nosuchnet'"),
        ({**TINY, "encoder_name": "nosuchencoder"}, "cannot build Unet/nosuchencoder"),
        ({**TINY, "classes": 2}, "predicts 2 classes"),
        ({**TINY, "in_channels": "3"}, "in_channels must be a positive integer"),
    ],
)
def test_bad_model_config(tmp_path: Path, model: dict[str, Any], message: str) -> None:
    path = write(tmp_path / "m.pt", darts_document(tiny_model(), model=model))
    with pytest.raises(CheckpointError, match=message):
        load_model(path, CPU)


def test_other_frameworks_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "m.pt", darts_document(tiny_model(), model_framework="keras"))
    with pytest.raises(CheckpointError, match="'keras' model"):
        load_model(path, CPU)


def test_save_refuses_configs_that_would_not_load_again(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    with pytest.raises(CheckpointError, match=r"config\.name is a PosixPath"):
        save_darts_checkpoint(tiny_model(), {"model": TINY, "bands": BANDS, "name": path}, path)
    with pytest.raises(CheckpointError, match="in_channels is 3 but its bands lists 2"):
        save_darts_checkpoint(tiny_model(), {"model": TINY, "bands": BANDS[:2]}, path)
    assert list(tmp_path.iterdir()) == []


# -- bands and devices -----------------------------------------------------------------


def _spec(bands: tuple[str, ...]) -> ModelSpec:
    return ModelSpec(
        path=Path("/models/tcvis.pt"),
        layout="darts",
        arch="Unet",
        encoder_name="dpn107",
        in_channels=len(bands),
        classes=1,
        bands=bands,
        patch_size=None,
        sha256="0" * 64,
        name="tcvis",
    )


def test_check_bands_lists_what_the_scene_lacks() -> None:
    spec = _spec(("ndvi", "red", "tc_wetness", "slope"))
    check_bands(spec, ["red", "ndvi", "slope", "tc_wetness", "green"])
    with pytest.raises(MissingBandsError) as caught:
        check_bands(spec, iter(["red", "ndvi"]))
    message = str(caught.value)
    assert "tc_wetness, slope" in message
    assert "/models/tcvis.pt" in message
    assert isinstance(caught.value, DartsError)


def test_resolve_device_cpu_and_auto() -> None:
    assert resolve_device("cpu") == CPU
    assert resolve_device(" CPU ") == CPU
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("value", ["banana", "cuda:x", "-1", ""])
def test_resolve_device_rejects_non_devices(value: str) -> None:
    with pytest.raises(DeviceError, match="is not a device"):
        resolve_device(value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("value", ["cuda", "cuda:0", "0", "3"])
def test_resolve_device_without_cuda(value: str) -> None:
    with pytest.raises(DeviceError, match="no CUDA GPU is usable") as caught:
        resolve_device(value)
    assert isinstance(caught.value, ConfigError)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resolve_device_with_cuda() -> None:
    assert resolve_device("0") == torch.device("cuda", 0)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(DeviceError, match="asks for GPU 99"):
        resolve_device("99")
