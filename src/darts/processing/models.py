"""Segmentation models ready to run: a checkpoint's network on a device, plus what the
run records about it (file hash, layout, architecture, bands).

Reading the file safely is :mod:`darts.processing.checkpoints`; this module builds the
``segmentation_models_pytorch`` network the checkpoint describes and loads its weights
strictly: a weight the network lacks, or one the file lacks, means the file does not
describe this network, and running it anyway would give silent garbage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from darts.errors import DartsError
from darts.processing.checkpoints import (
    Checkpoint,
    CheckpointError,
    UnsafeCheckpointError,
    read_checkpoint,
    save_darts_checkpoint,
)

__all__ = [
    "CheckpointError",
    "LoadedModel",
    "MissingBandsError",
    "ModelSpec",
    "UnsafeCheckpointError",
    "check_bands",
    "file_sha256",
    "load_model",
    "save_darts_checkpoint",
]

_EXAMPLES = 3
_HASH_CHUNK = 1 << 20


class MissingBandsError(DartsError):
    """A model needs input bands the scene cannot provide."""


@dataclass(frozen=True)
class ModelSpec:
    path: Path
    layout: Literal["lightning", "darts", "legacy-v1"]
    arch: str
    encoder_name: str
    in_channels: int
    classes: int
    bands: tuple[str, ...]
    """Input bands in the order the network expects them."""
    patch_size: int | None
    """The patch size the model was trained with, where the file records it."""
    sha256: str
    """Of the file, so a run's record names exactly which weights produced it."""
    name: str


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec
    module: torch.nn.Module
    """In eval mode, on its device; outputs logits of shape (batch, 1, h, w)."""
    channels_last: bool = False
    """The weights are in channels-last memory format: inputs should be too."""

    @property
    def device(self) -> torch.device:
        for tensor in self.module.parameters():
            return tensor.device
        for tensor in self.module.buffers():
            return tensor.device
        return torch.device("cpu")


def load_model(path: Path, device: torch.device) -> LoadedModel:
    """Load a checkpoint of any supported layout onto ``device``, ready for inference."""
    path = Path(path)
    checkpoint = read_checkpoint(path)
    sha256 = file_sha256(path)
    if checkpoint.classes != 1:
        raise CheckpointError(
            f"model file {path} predicts {checkpoint.classes} classes; DARTS runs binary "
            "models (classes=1, one slump probability per pixel)"
        )
    module = _build(checkpoint, path)
    _load_weights(module, checkpoint, path)
    module.requires_grad_(False)
    module.eval()
    spec = ModelSpec(
        path=path,
        layout=checkpoint.layout,
        arch=checkpoint.arch,
        encoder_name=checkpoint.encoder_name,
        in_channels=checkpoint.in_channels,
        classes=checkpoint.classes,
        bands=checkpoint.bands,
        patch_size=checkpoint.patch_size,
        sha256=sha256,
        name=checkpoint.name or path.stem,
    )
    module = module.to(device)
    # On the CPU, oneDNN's convolutions run on channels-last (NHWC) data without
    # reordering every layer's activations: a 1024² patch through a 13-band
    # Unet-resnet18 took 3.3-3.5 s instead of 4.2-4.8 s on 2 cores (same results to
    # float rounding). GPUs keep the layout they were given.
    channels_last = device.type == "cpu"
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    return LoadedModel(spec=spec, module=module, channels_last=channels_last)


def check_bands(spec: ModelSpec, available: Iterable[str]) -> None:
    """Fail when ``spec`` needs bands that are not in ``available``."""
    offered = list(available)
    missing = [band for band in spec.bands if band not in set(offered)]
    if missing:
        raise MissingBandsError(
            f"model {spec.name} ({spec.path}) needs input bands this run cannot provide: "
            f"{', '.join(missing)} (available: {', '.join(offered) or 'none'}); "
            "use a model trained on the available bands"
        )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# -- building --------------------------------------------------------------------------


def _build(checkpoint: Checkpoint, path: Path) -> torch.nn.Module:
    # Imported here: smp pulls in timm and torchvision, which the CLI should not pay
    # for unless a model is actually loaded.
    import segmentation_models_pytorch as smp

    known = smp.MODEL_ARCHITECTURES_MAPPING
    if checkpoint.arch.lower() not in known:
        raise CheckpointError(
            f"model file {path} names architecture {checkpoint.arch!r}, which "
            f"segmentation_models_pytorch {smp.__version__} does not have "
            f"(known: {', '.join(known)})"
        )
    try:
        return smp.create_model(
            arch=checkpoint.arch,
            encoder_name=checkpoint.encoder_name,
            encoder_weights=None,
            in_channels=checkpoint.in_channels,
            classes=checkpoint.classes,
            **dict(checkpoint.model_kwargs),
        )
    except KeyError as error:
        # smp reports an unknown encoder as KeyError("Wrong encoder name ..., supported
        # encoders: [100 names]"); the list is too long for a one-line error.
        reason = str(error.args[0]) if error.args else str(error)
        if "encoder" in reason.lower():
            reason = f"unknown encoder {checkpoint.encoder_name!r}"
        raise CheckpointError(
            f"model file {path}: cannot build {checkpoint.arch}/{checkpoint.encoder_name} "
            f"({reason[:200]}); the installed segmentation_models_pytorch "
            f"{smp.__version__} does not support this model"
        ) from None
    except (TypeError, ValueError, AssertionError, RuntimeError) as error:
        extra = ", ".join(f"{k}={v!r}" for k, v in checkpoint.model_kwargs.items()) or "none"
        raise CheckpointError(
            f"model file {path}: cannot build {checkpoint.arch}/{checkpoint.encoder_name} "
            f"with extra model settings {extra}: {error}"
        ) from None


def _load_weights(module: torch.nn.Module, checkpoint: Checkpoint, path: Path) -> None:
    expected = module.state_dict()
    stored = checkpoint.state_dict
    missing = [key for key in expected if key not in stored]
    unexpected = [key for key in stored if key not in expected]
    wrong_shape = [
        f"{key} {tuple(stored[key].shape)} vs {tuple(value.shape)}"
        for key, value in expected.items()
        if key in stored and stored[key].shape != value.shape
    ]
    problems = [
        f"{len(items)} {what} (e.g. {', '.join(items[:_EXAMPLES])})"
        for items, what in (
            (missing, "weights missing"),
            (unexpected, "unexpected weights"),
            (wrong_shape, "weights of the wrong shape, file vs network"),
        )
        if items
    ]
    if problems:
        raise CheckpointError(
            f"model file {path} does not match the network its config describes "
            f"({checkpoint.arch}/{checkpoint.encoder_name}, {checkpoint.in_channels} bands): "
            f"{'; '.join(problems)}; the file is damaged or its config is wrong"
        )
    module.load_state_dict(dict(stored), strict=True)
