"""Writing the world's files and remembering what was written.

Every file goes through :class:`FileWriter` so its size and checksum are known when the
STAC items are assembled, and the world's total size can go into the manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from darts.sandbox.world.encode import multihash_sha3


@dataclass(frozen=True)
class Written:
    path: Path
    size: int
    checksum: str


class FileWriter:
    """Writes files under a root and counts their bytes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.total_bytes = 0
        self.count = 0

    def write(self, path: Path, data: bytes) -> Written:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.total_bytes += len(data)
        self.count += 1
        return Written(path, len(data), multihash_sha3(data))

    def write_json(self, path: Path, document: object) -> Written:
        # Compact separators keep json's C encoder (indent= falls back to pure Python).
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n"
        return self.write(path, text.encode("utf-8"))
