"""Where a built sandbox world keeps its files.

This module is the contract between the world builder (``darts.sandbox.world``)
and the stand-in servers (``darts.sandbox.servers``): the builder writes these
paths, the servers only read them. Computing a path creates nothing.

A world folder looks like this::

    <root>/<name>-seed<seed>/
      world.json                          manifest; written last, so its presence
                                          means the build finished
      cdse/items/<collection>/<id>.json   STAC items (CDSE schema), hrefs s3://eodata/...
      s3/<bucket>/<key>                   objects served by the S3 stand-in
      pgc/items/<collection>/<id>.json    ArcticDEM STAC items; hrefs start with
                                          PGC_DATA_PLACEHOLDER
      pgc/data/<path>                     COG files served over HTTP with byte ranges
      pgc/index/<parquet files>           mosaic index tables; url columns start with
                                          PGC_DATA_PLACEHOLDER / PGC_STAC_PLACEHOLDER
      tcvis/items/<collection>/<id>.json  TCVIS mirror STAC items; hrefs start with
                                          TCVIS_DATA_PLACEHOLDER
      tcvis/data/<path>                   TCVIS COGs
      truth/slumps.parquet                ground-truth thaw slump polygons (EPSG:4326)

Servers replace the placeholders with their own base URL when they answer, because
ports are only known at start-up while the world is built once and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PGC_DATA_PLACEHOLDER = "sandbox://pgc-data/"
PGC_STAC_PLACEHOLDER = "sandbox://pgc-stac/"
TCVIS_DATA_PLACEHOLDER = "sandbox://tcvis-data/"

CDSE_BUCKET = "eodata"
WORLD_FORMAT_VERSION = 1


@dataclass(frozen=True)
class WorldLayout:
    """Paths inside one built world folder."""

    root: Path

    @classmethod
    def for_world(cls, sandbox_root: Path, name: str, seed: int) -> WorldLayout:
        return cls(Path(sandbox_root) / f"{name}-seed{seed}")

    @property
    def manifest(self) -> Path:
        return self.root / "world.json"

    @property
    def cdse_items(self) -> Path:
        return self.root / "cdse" / "items"

    @property
    def s3_root(self) -> Path:
        return self.root / "s3"

    def s3_object(self, bucket: str, key: str) -> Path:
        return self.s3_root / bucket / key

    @property
    def pgc_items(self) -> Path:
        return self.root / "pgc" / "items"

    @property
    def pgc_data(self) -> Path:
        return self.root / "pgc" / "data"

    @property
    def pgc_index(self) -> Path:
        return self.root / "pgc" / "index"

    @property
    def tcvis_items(self) -> Path:
        return self.root / "tcvis" / "items"

    @property
    def tcvis_data(self) -> Path:
        return self.root / "tcvis" / "data"

    @property
    def truth(self) -> Path:
        return self.root / "truth" / "slumps.parquet"

    def is_built(self) -> bool:
        return self.manifest.is_file()
