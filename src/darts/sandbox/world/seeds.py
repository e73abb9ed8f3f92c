"""Stable seeds derived from the world seed and a label.

Every random choice in the world draws from a generator seeded by
``derive_seed(world_seed, "label", ...)``, so adding a new layer never shifts the
numbers an existing layer sees, and no output depends on Python's per-process hash
randomisation.
"""

from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(seed: int, *labels: object) -> int:
    """A 63-bit seed from the world seed and any labels (order matters)."""
    text = "\x1f".join([str(int(seed)), *(str(label) for label in labels)])
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def rng(seed: int, *labels: object) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, *labels))
