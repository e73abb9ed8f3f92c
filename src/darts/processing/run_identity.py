"""Whether a scene's finished outputs are the ones this run would write.

A complete record (`darts.processing.run_metadata`) proves that a scene's files are
whole; it does not prove they answer *this* run. Skipping a scene whose record names
other models or other parameters would report "skipped" for results the user did not
ask for (a re-run with a new threshold changed nothing on disk). So a run describes
what determines its outputs — `run_identity` — and a scene is skipped only when its
record says the same; otherwise it is redone and the results table says what differed.

Compared: the source, the models (by SHA-256, in order: the ensemble's order is part
of it), the patch, post-processing and feature parameters (not the sun position: that
is the scene's own), the auxiliary buffer and ArcticDEM resolution, and the exports.
A key an older record lacks is not held against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Feature parameters a run chooses; the sun angles come from each scene's metadata.
FEATURE_KEYS = ("tpi_outer_radius_m", "tpi_inner_radius_m", "terrain_convention")


def run_identity(
    *,
    source: str,
    model_checksums: Sequence[str],
    patch: Mapping[str, Any],
    postprocess: Mapping[str, Any],
    preprocessing: Mapping[str, Any],
    aux: Mapping[str, Any],
    exports: Sequence[str],
) -> dict[str, Any]:
    """What determines a scene's outputs, in the shape the record stores it."""
    return {
        "source": source,
        "models": list(model_checksums),
        "patch": dict(patch),
        "postprocess": dict(postprocess),
        "preprocessing": _run_features(preprocessing),
        "aux": dict(aux),
        "exports": sorted(set(exports)),
    }


def identity_of_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The identity a completion record vouches for (the keys it has)."""
    identity: dict[str, Any] = {}
    for key in ("source", "patch", "postprocess", "aux"):
        if key in record:
            identity[key] = record[key]
    models = record.get("models")
    if isinstance(models, list):
        identity["models"] = [m.get("sha256") for m in models if isinstance(m, Mapping)]
    preprocessing = record.get("preprocessing")
    if isinstance(preprocessing, Mapping):
        identity["preprocessing"] = _run_features(preprocessing)
    if isinstance(record.get("exports"), list):
        identity["exports"] = sorted(set(record["exports"]))
    return identity


def differences(record: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """What differs between the record's outputs and ``expected`` (a `run_identity`),
    worded for the results table; empty when the outputs are current."""
    found = identity_of_record(record)
    changes: list[str] = []
    for key, wanted in expected.items():
        if key not in found or found[key] == wanted:
            continue
        had = found[key]
        if key == "models":
            changes.append(f"models {_short(had)} → {_short(wanted)}")
        elif isinstance(wanted, Mapping) and isinstance(had, Mapping):
            for name in sorted(set(wanted) | set(had)):
                if had.get(name) != wanted.get(name):
                    changes.append(f"{name} {_value(had.get(name))} → {_value(wanted.get(name))}")
        else:
            changes.append(f"{key} {_value(had)} → {_value(wanted)}")
    return changes


def _run_features(preprocessing: Mapping[str, Any]) -> dict[str, Any]:
    """The feature parameters a run chose, and the preprocessing version (not the sun
    position, which is the scene's own)."""
    keys = (*FEATURE_KEYS, "preprocessing_version")
    return {key: preprocessing[key] for key in keys if key in preprocessing}


def _short(checksums: Sequence[Any]) -> str:
    return "[" + ", ".join(str(c)[:12] for c in checksums) + "]"


def _value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return "unset" if value is None else str(value)
