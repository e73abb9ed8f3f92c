"""The sandbox's synthetic Arctic world.

``build_world(root, name, seed)`` writes, once and atomically, a deterministic set of
files that the local stand-in servers serve as if they were CDSE (Sentinel-2 L2A and
quarterly mosaics on STAC + S3), PGC (ArcticDEM STAC, COGs and tile index) and a TCVIS
mirror, plus ground-truth thaw slump polygons. Where the files go is defined by
``darts.sandbox.layout.WorldLayout``; what each world contains by
``darts.sandbox.world.spec``.
"""

from darts.sandbox.world.build import build_world
from darts.sandbox.world.spec import WORLD_NAMES

__all__ = ["WORLD_NAMES", "build_world"]
