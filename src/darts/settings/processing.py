"""Option sections of the processing half: terrain features, models, patches,
postprocessing and exports (all spelled ``--pipeline.<name>``, defaults as in the
reference implementation, see ../shared/reference/processing.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from darts.settings.options import Section, option

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


@dataclass(frozen=True)
class Terrain(Section):
    """Terrain features; the TPI radius also sizes the auxiliary-data buffer, so
    prep-data and the run that reads the staged data always agree on it."""

    SECTION = "pipeline"

    tpi_outer_radius: float = option(
        100.0, help="relative elevation (TPI): outer radius of the disk, metres"
    )
    tpi_inner_radius: float = option(
        0.0, help="relative elevation (TPI): inner radius (annulus when > 0), metres"
    )
    terrain_convention: str = option(
        "reference",
        choices=("reference", "true-north"),
        help="aspect/hillshade orientation: 'reference' reproduces what DARTS-trained "
        "checkpoints learned (EPSG:3413 grid-north rotation), 'true-north' is geometric",
    )

    @property
    def aux_buffer_m(self) -> float:
        """Metres of auxiliary data needed around a footprint: the TPI disk plus two
        10 m pixels, so bilinear resampling at the very edge still has neighbours."""
        return max(self.tpi_outer_radius, self.tpi_inner_radius) + 20.0


@dataclass(frozen=True)
class Models(Section):
    SECTION = "pipeline"

    model_files: list[Path] = option(
        [], help="model checkpoints; several form an ensemble (mean probability)", metavar="FILE"
    )
    device: str = option("auto", help="auto, cpu, cuda or a CUDA device index")
    patch_size: int = option(1024, help="patch edge in pixels")
    overlap: int = option(256, help="overlap between neighbouring patches in pixels")
    batch_size: int = option(8, help="patches per forward pass")
    reflection_padding: int = option(
        0, help="pixels of reflection padding around each patch before the model"
    )


@dataclass(frozen=True)
class Postprocess(Section):
    SECTION = "pipeline"

    binarization_threshold: float = option(0.5, help="probability at which a pixel is a slump")
    mask_erosion_size: int = option(10, help="erode the valid-data mask by this many pixels")
    edge_erosion_size: int | None = option(
        None, help="blank this many pixels at the scene edge (default: mask-erosion-size)"
    )
    min_object_size: int = option(32, help="drop detected objects smaller than this (pixels)")
    quality_level: int = option(
        1, help="lowest quality class used: 0 all, 1 low and high, 2 high only"
    )


@dataclass(frozen=True)
class Export(Section):
    SECTION = "pipeline"

    export: list[str] = option(
        DEFAULT_EXPORTS,
        choices=EXPORT_CHOICES,
        help="what to write per scene: " + ", ".join(EXPORT_CHOICES),
        metavar="KEY",
    )
    overwrite: bool = option(False, help="re-run scenes whose outputs are already complete")
