"""A scene is skipped only when its record answers this run (issue 15, item 7)."""

from __future__ import annotations

from darts.processing.run_identity import differences, run_identity


def identity(**changes):
    values = {
        "source": "cdse",
        "model_checksums": ["a" * 64],
        "patch": {"patch_size": 1024, "overlap": 16},
        "postprocess": {"binarization_threshold": 0.5, "quality_level": 1},
        "preprocessing": {
            "tpi_outer_radius_m": 100.0,
            "tpi_inner_radius_m": 0.0,
            "terrain_convention": "reference",
            "sun_azimuth_deg": 140.0,
            "preprocessing_version": "darts-reference-v1",
        },
        "aux": {"buffer_m": 120.0, "arcticdem_resolution": 10},
        "exports": ["probabilities", "binarized"],
    }
    values.update(changes)
    return run_identity(**values)


def record_of(ident, **extra):
    """A completion record as the sequential run writes it (the fields that matter)."""
    return {
        "source": ident["source"],
        "models": [{"file": "/m.pt", "sha256": c} for c in ident["models"]],
        "patch": ident["patch"],
        "postprocess": ident["postprocess"],
        # The record keeps the scene's own sun position; it is not a run parameter.
        "preprocessing": {**ident["preprocessing"], "sun_azimuth_deg": 171.0},
        "aux": ident["aux"],
        "exports": ident["exports"],
        **extra,
    }


def test_the_same_run_is_current() -> None:
    assert differences(record_of(identity()), identity()) == []
    # Export order is not part of it.
    assert (
        differences(record_of(identity()), identity(exports=["binarized", "probabilities"])) == []
    )


def test_each_difference_is_named() -> None:
    record = record_of(identity())
    changed = identity(
        postprocess={"binarization_threshold": 0.6, "quality_level": 1},
        model_checksums=["b" * 64],
        exports=["probabilities"],
        aux={"buffer_m": 200.0, "arcticdem_resolution": 10},
    )
    found = differences(record, changed)
    assert "binarization_threshold 0.5 → 0.6" in found
    assert f"models [{'a' * 12}] → [{'b' * 12}]" in found
    assert "exports [binarized, probabilities] → [probabilities]" in found
    assert "buffer_m 120.0 → 200.0" in found
    assert len(found) == 4


def test_keys_an_older_record_lacks_are_not_held_against_it() -> None:
    record = record_of(identity())
    del record["aux"], record["exports"]
    assert differences(record, identity(exports=["probabilities"])) == []
    # What it has still counts: a model of another ensemble order is another run.
    two = identity(model_checksums=["a" * 64, "c" * 64])
    assert differences(record_of(two), identity(model_checksums=["c" * 64, "a" * 64]))
