"""Model checkpoint files: read the three layouts without running code, write layout 2.

A checkpoint is a ``torch.save`` pickle. Unpickling may call any Python function the
file names, so a checkpoint from the internet is a program (pitfall 24). Files are
therefore only ever read with ``torch.load(weights_only=True)``, whose unpickler
accepts tensors and plain containers and nothing else; a file that needs more is
refused, never retried unsafely. The caller re-saves such a file with plain content.

Layouts (see the processing reference):

- ``lightning``: ``state_dict`` with keys prefixed ``model.`` and
  ``hyper_parameters.config = {"model": {...}, "bands": [...]}``;
- ``darts``: ``{"config": {"model_framework": "smp", "model": {...}, "bands": [...],
  "time", "name"}, "statedict": {...}}``;
- ``legacy-v1``: like ``darts`` with ``input_combination`` instead of ``bands``, plus
  ``norm_factors`` and ``patch_size`` (in the config, or beside it in old files).

This module only parses; building the network from the parsed config is
:mod:`darts.processing.models`.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import torch

from darts.errors import DartsError
from darts.net.files import atomic_file

Layout = Literal["lightning", "darts", "legacy-v1"]

# Arguments of smp.create_model that the loader sets itself; every other key of the
# config's "model" section is passed through (encoder_depth, decoder_channels, ...).
_MODEL_CORE = ("arch", "encoder_name", "in_channels", "classes")
# Never passed on: the weights come from the file, and asking smp for pretrained
# encoder weights would try to download them.
_MODEL_DROPPED = ("encoder_weights",)
_LIGHTNING_PREFIX = "model."
_ZIP_MAGIC = b"PK\x03\x04"
# torch.save's legacy (pre-1.6) format is a bare pickle, protocol 2+: starts with PROTO.
_PICKLE_PROTO = 0x80
_EXAMPLES = 3


class CheckpointError(DartsError):
    """A model file that cannot be used: missing, damaged, or not a DARTS checkpoint."""


class UnsafeCheckpointError(CheckpointError):
    """A model file whose unpickling would run code named in the file."""


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint file says, independent of its layout."""

    layout: Layout
    arch: str
    encoder_name: str
    in_channels: int
    classes: int
    model_kwargs: Mapping[str, Any]
    """Further ``smp.create_model`` arguments from the config (e.g. ``encoder_depth``)."""
    bands: tuple[str, ...]
    patch_size: int | None
    name: str | None
    state_dict: Mapping[str, torch.Tensor]
    norm_factors: Any = None
    """Legacy v1 only, kept as stored; features use the standard normalisation table."""


def read_checkpoint(path: Path) -> Checkpoint:
    """Parse ``path`` safely into a :class:`Checkpoint` (any of the three layouts)."""
    document = _load_plain(path)
    if not isinstance(document, dict):
        raise CheckpointError(
            f"model file {path} holds a {type(document).__name__}, not a checkpoint "
            "dictionary; pass a DARTS or Lightning checkpoint"
        )
    if "state_dict" in document:
        return _parse_lightning(document, path)
    if "statedict" in document:
        return _parse_darts(document, path)
    raise CheckpointError(
        f"model file {path} is not a DARTS checkpoint: it has neither 'statedict' "
        f"(DARTS) nor 'state_dict' (Lightning), only {_keys(document)}"
    )


def save_darts_checkpoint(module: torch.nn.Module, config: Mapping[str, Any], path: Path) -> None:
    """Write ``module``'s weights with ``config`` as a DARTS-layout checkpoint.

    ``config`` needs ``model`` (``arch``, ``encoder_name``, ``in_channels``, ``classes``
    and any further ``smp.create_model`` arguments) and ``bands``; ``name`` and
    ``time`` are optional (``time`` defaults to now). The config is checked the way
    the loader checks it, and must hold only plain values, so every written file
    loads again. The write is atomic: readers never see half a file.
    """
    path = Path(path)
    _require_plain(config, path, "config")
    full = {"model_framework": "smp", **config}
    full.setdefault("time", datetime.now(UTC).isoformat(timespec="seconds"))
    state = {key: value.detach().to("cpu").clone() for key, value in module.state_dict().items()}
    document = {"config": full, "statedict": state}
    _parse_darts(document, path)  # same checks as on load: refuse to write a bad file
    with atomic_file(path) as handle:
        torch.save(document, handle)


# -- reading ---------------------------------------------------------------------------


def _load_plain(path: Path) -> Any:
    """``torch.load`` that accepts only tensors and plain containers."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(_ZIP_MAGIC))
    except FileNotFoundError:
        raise CheckpointError(f"model file {path} does not exist; check the path") from None
    except OSError as error:
        raise CheckpointError(f"cannot read model file {path}: {error.strerror}") from None
    is_zip = head == _ZIP_MAGIC
    if not is_zip and (not head or head[0] != _PICKLE_PROTO):
        raise CheckpointError(
            f"model file {path} is not a PyTorch checkpoint (it does not start like a "
            "torch.save file); check that the path names the model, not another file"
        )
    try:
        # mmap: tensors stay on disk until copied into the network, so loading a large
        # checkpoint does not hold its weights in memory twice.
        return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as error:
        unsafe = _unsafe_globals(path, error)
        if unsafe is not None:
            named = f" ({', '.join(unsafe)})" if unsafe else ""
            raise UnsafeCheckpointError(
                f"refusing to load {path}: it contains Python objects{named} that would "
                "run code when unpickled; re-save it with only tensors and plain config"
            ) from None
        raise CheckpointError(_damaged(path, error)) from None
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        raise CheckpointError(_damaged(path, error)) from None


def _unsafe_globals(path: Path, error: pickle.UnpicklingError) -> list[str] | None:
    """The Python objects the file names, if that is why the safe unpickler stopped;
    None when it failed for another reason (damaged bytes)."""
    message = str(error)
    if "GLOBAL" not in message and "global" not in message:
        return None
    try:
        # Scans the pickle opcodes without executing them (zip-format files only).
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:
        names = []
    return sorted(set(names))[:_EXAMPLES]


def _damaged(path: Path, error: BaseException) -> str:
    # torch's messages run to several sentences of advice; the first says what broke.
    text = str(error).strip()
    reason = text.splitlines()[0].split(". ")[0].rstrip(".") if text else type(error).__name__
    return (
        f"model file {path} is damaged or not a PyTorch checkpoint ({reason}); "
        "download or copy it again"
    )


# -- layouts ---------------------------------------------------------------------------


def _parse_lightning(document: Mapping[str, Any], path: Path) -> Checkpoint:
    hyper = document.get("hyper_parameters")
    config = hyper.get("config") if isinstance(hyper, Mapping) else None
    if not isinstance(config, Mapping):
        raise CheckpointError(
            f"Lightning checkpoint {path} has no hyper_parameters.config; it must carry "
            "the model config and bands there (re-save it from the training run)"
        )
    raw_state = _state_dict(document["state_dict"], path, "state_dict")
    # The LightningModule wraps the network as `self.model`; other entries belong to
    # the training module (loss, metrics) and are not part of the network.
    state = {
        key[len(_LIGHTNING_PREFIX) :]: value
        for key, value in raw_state.items()
        if key.startswith(_LIGHTNING_PREFIX)
    }
    if not state:
        raise CheckpointError(
            f"Lightning checkpoint {path} has no weights under 'model.' in its state_dict "
            f"(found {_keys(raw_state)}); it was not written by the DARTS training module"
        )
    return _checkpoint("lightning", config, state, config.get("bands"), "bands", path, {})


def _parse_darts(document: Mapping[str, Any], path: Path) -> Checkpoint:
    config = document.get("config")
    if not isinstance(config, Mapping):
        raise CheckpointError(
            f"model file {path} has a 'statedict' but no 'config' dictionary; a DARTS "
            "checkpoint needs both"
        )
    framework = config.get("model_framework", "smp")
    if framework != "smp":
        raise CheckpointError(
            f"model file {path} is a {framework!r} model; only segmentation_models_pytorch "
            "('smp') models can be run"
        )
    state = _state_dict(document["statedict"], path, "statedict")
    if "bands" not in config and "input_combination" in config:
        layout: Layout = "legacy-v1"
        bands_key = "input_combination"
    else:
        layout, bands_key = "darts", "bands"
    return _checkpoint(layout, config, state, config.get(bands_key), bands_key, path, document)


def _checkpoint(
    layout: Layout,
    config: Mapping[str, Any],
    state: dict[str, torch.Tensor],
    bands_value: Any,
    bands_key: str,
    path: Path,
    outer: Mapping[str, Any],
) -> Checkpoint:
    model = config.get("model")
    if not isinstance(model, Mapping):
        raise CheckpointError(
            f"model file {path} has no 'model' section in its config; it must name arch, "
            "encoder_name, in_channels and classes"
        )
    missing = [key for key in ("arch", "encoder_name", "in_channels") if key not in model]
    if missing:
        raise CheckpointError(
            f"model file {path}: the config's model section lacks {', '.join(missing)}; "
            "it must name arch, encoder_name, in_channels and classes"
        )
    arch = _text(model["arch"], path, "model.arch")
    encoder = _text(model["encoder_name"], path, "model.encoder_name")
    in_channels = _count(model["in_channels"], path, "model.in_channels")
    classes = _count(model.get("classes", 1), path, "model.classes")
    bands = _bands(bands_value, bands_key, path)
    if in_channels != len(bands):
        raise CheckpointError(
            f"model file {path} is inconsistent: in_channels is {in_channels} but its "
            f"{bands_key} lists {len(bands)} bands ({', '.join(bands)}); fix its config"
        )
    extra = {
        key: value
        for key, value in model.items()
        if key not in _MODEL_CORE and key not in _MODEL_DROPPED
    }
    patch_size = config.get("patch_size", outer.get("patch_size"))
    name = config.get("name")
    return Checkpoint(
        layout=layout,
        arch=arch,
        encoder_name=encoder,
        in_channels=in_channels,
        classes=classes,
        model_kwargs=extra,
        bands=bands,
        patch_size=None if patch_size is None else _count(patch_size, path, "patch_size"),
        name=name if isinstance(name, str) and name else None,
        state_dict=state,
        norm_factors=config.get("norm_factors", outer.get("norm_factors")),
    )


# -- field checks ----------------------------------------------------------------------


def _state_dict(value: Any, path: Path, key: str) -> dict[str, torch.Tensor]:
    if not isinstance(value, Mapping) or not value:
        raise CheckpointError(f"model file {path}: '{key}' holds no weights")
    bad = [k for k, v in value.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise CheckpointError(
            f"model file {path}: '{key}' has entries that are not named tensors "
            f"(e.g. {', '.join(map(str, bad[:_EXAMPLES]))}); the file is damaged"
        )
    return dict(value)


def _bands(value: Any, key: str, path: Path) -> tuple[str, ...]:
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(b, str) and b for b in value)
    ):
        raise CheckpointError(
            f"model file {path}: config.{key} must be a non-empty list of band names, got {value!r}"
        )
    duplicates = sorted({b for b in value if list(value).count(b) > 1})
    if duplicates:
        raise CheckpointError(
            f"model file {path}: config.{key} names {', '.join(duplicates)} more than once"
        )
    return tuple(value)


def _text(value: Any, path: Path, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise CheckpointError(f"model file {path}: config {key} must be a name, got {value!r}")
    return value


def _count(value: Any, path: Path, key: str) -> int:
    # bool is an int subclass; `True` channels is a broken config, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CheckpointError(
            f"model file {path}: config {key} must be a positive integer, got {value!r}"
        )
    return value


def _keys(mapping: Mapping[Any, Any]) -> str:
    keys = [str(k) for k in list(mapping)[: _EXAMPLES + 2]]
    more = len(mapping) - len(keys)
    return ", ".join(keys) + (f" and {more} more" if more > 0 else "") if keys else "nothing"


_PLAIN = (str, int, float, bool, type(None))


def _require_plain(value: Any, path: Path, where: str) -> None:
    """Only values the safe loader reads back: no paths, numpy scalars or objects."""
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CheckpointError(
                    f"cannot write {path}: {where} has a non-text key {key!r}; use plain str keys"
                )
            _require_plain(item, path, f"{where}.{key}")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _require_plain(item, path, f"{where}[{index}]")
        return
    raise CheckpointError(
        f"cannot write {path}: {where} is a {type(value).__name__}; a checkpoint config "
        "may only hold str, int, float, bool, None, lists and dicts"
    )
