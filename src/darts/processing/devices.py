"""Turn the ``--device`` option into a ``torch.device`` that exists on this machine.

Checked up front, before any scene is downloaded: asking for a GPU that is not there
must fail in the first second, not after the first scene's preprocessing.
"""

from __future__ import annotations

import torch

from darts.errors import ConfigError

ACCEPTED = "auto, cpu, cuda, cuda:N or a CUDA device index N"


class DeviceError(ConfigError):
    """The requested compute device is not available."""


def resolve_device(value: str) -> torch.device:
    """``auto`` → the first GPU when CUDA is usable, else the CPU; ``cpu``; ``cuda``;
    ``cuda:N`` or ``N`` → that GPU, which must exist."""
    text = value.strip().lower()
    if text == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    index = _cuda_index(text)
    if index is None:
        raise DeviceError(f"--device {value!r} is not a device: use {ACCEPTED}")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"--device {value!r} asks for CUDA, but no CUDA GPU is usable here "
            f"(torch {torch.__version__}); use --device cpu or --device auto"
        )
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(
            f"--device {value!r} asks for GPU {index}, but this machine has {count} "
            f"(indices 0..{count - 1}); pick one of those or use --device auto"
        )
    return torch.device("cuda", index)


def check_device_name(value: str) -> None:
    """Raise `DeviceError` unless ``value`` names a device, without asking whether this
    machine has it: for a client whose workers run the models."""
    text = value.strip().lower()
    if text not in ("auto", "cpu") and _cuda_index(text) is None:
        raise DeviceError(f"--device {value!r} is not a device: use {ACCEPTED}")


def _cuda_index(text: str) -> int | None:
    """0 for ``cuda``, N for ``cuda:N`` or ``N``; None for anything else."""
    if text == "cuda":
        return 0
    number = text.removeprefix("cuda:")
    if number.isdigit():
        return int(number)
    return None
