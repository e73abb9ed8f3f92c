"""Option sections of the processing half: terrain features, models, patches,
postprocessing and exports (all spelled ``--pipeline.<name>``, defaults as in the
reference implementation, see ../shared/reference/processing.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from darts.settings.options import (
    AT_LEAST_0,
    AT_LEAST_1,
    FRACTION,
    IMPLIED,
    POSITIVE,
    Section,
    option,
)

EXPORT_CHOICES = (
    "probabilities",
    "binarized",
    "polygonized",
    "extent",
    "thumbnail",
    "optical",
    "dem",
    "tcvis",
)
DEFAULT_EXPORTS = ["probabilities", "binarized", "polygonized", "extent", "thumbnail"]
# Quality levels by the names existing DARTS configs use (processing.md: pixels below
# the level are excluded).
QUALITY_LEVEL_NAMES = {"none": 0, "low_quality": 1, "high_quality": 2}


@dataclass(frozen=True)
class Terrain(Section):
    """Terrain features; the TPI radius also sizes the auxiliary-data buffer, so
    prep-data and the run that reads the staged data always agree on it."""

    SECTION = "pipeline"

    tpi_outer_radius: float = option(
        100.0,
        bounds=POSITIVE,
        help="relative elevation (TPI): outer radius of the disk, metres",
        metavar="M",
    )
    tpi_inner_radius: float = option(
        0.0,
        bounds=AT_LEAST_0,
        help="relative elevation (TPI): inner radius (annulus when > 0, at most the outer), metres",
        metavar="M",
    )

    @property
    def aux_buffer_m(self) -> float:
        """Metres of auxiliary data needed around a footprint: the TPI disk plus two
        10 m pixels, so bilinear resampling at the very edge still has neighbours."""
        return max(self.tpi_outer_radius, self.tpi_inner_radius) + 20.0


@dataclass(frozen=True)
class Features(Section):
    """How the model inputs are computed from the staged data (runs only)."""

    SECTION = "pipeline"

    terrain_convention: str = option(
        "reference",
        choices=("reference", "true-north"),
        help="aspect/hillshade orientation: 'reference' reproduces what DARTS-trained "
        "checkpoints learned (EPSG:3413 grid-north rotation), 'true-north' is geometric",
    )


@dataclass(frozen=True)
class Models(Section):
    SECTION = "pipeline"

    model_files: list[Path] = option(
        [],
        help="model checkpoints (.pt, .ckpt); several form an ensemble (mean probability)",
        default_text="every *.pt and *.ckpt in <fast-dir>/models",
        metavar="FILE",
        # An older config key for a single model.
        aliases="model-file",
    )
    device: str = option("auto", help="auto, cpu, cuda or a CUDA device index")
    patch_size: int = option(1024, bounds=AT_LEAST_1, help="patch edge in pixels", metavar="PX")
    overlap: int = option(
        256,
        bounds=AT_LEAST_0,
        help="overlap between neighbouring patches in pixels (less than the patch size)",
        metavar="PX",
    )
    batch_size: int = option(8, bounds=AT_LEAST_1, help="patches per forward pass", metavar="N")
    reflection_padding: int = option(
        0,
        bounds=AT_LEAST_0,
        help="pixels of reflection padding around each patch before the model",
        metavar="PX",
        aliases="reflection",
    )


@dataclass(frozen=True)
class Postprocess(Section):
    SECTION = "pipeline"

    binarization_threshold: float = option(
        0.5, bounds=FRACTION, help="probability at which a pixel is a slump (0 to 1)", metavar="P"
    )
    mask_erosion_size: int = option(
        10, bounds=AT_LEAST_0, help="erode the valid-data mask by this many pixels", metavar="PX"
    )
    edge_erosion_size: int | None = option(
        None,
        bounds=AT_LEAST_0,
        help="blank this many pixels at the scene edge",
        default_text="the --mask-erosion-size",
        metavar="PX",
    )
    min_object_size: int = option(
        32, bounds=AT_LEAST_0, help="drop detected objects smaller than this", metavar="PX"
    )
    quality_level: int = option(
        1,
        choices=(0, 1, 2),
        value_names=QUALITY_LEVEL_NAMES,
        help="lowest quality class used: 0 or none (all pixels), 1 or low_quality (low "
        "and high), 2 or high_quality (high only)",
        metavar="LEVEL",
    )


@dataclass(frozen=True)
class Export(Section):
    SECTION = "pipeline"

    export: list[str] = option(
        DEFAULT_EXPORTS,
        choices=EXPORT_CHOICES,
        # The completion record (darts_inference.json) is written for every scene.
        value_names={"metadata": IMPLIED},
        help="what to write per scene, of: " + " ".join(EXPORT_CHOICES) + " (the "
        "metadata record is always written)",
        metavar="KEY",
        aliases="export-bands",
    )
    write_model_outputs: bool = option(
        False,
        help="also write each model's own probabilities (probabilities-<model>.tif), "
        "beside the ensemble's",
    )
    overwrite: bool = option(False, help="re-run scenes whose outputs are already complete")
