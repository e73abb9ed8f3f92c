"""The zarr store a scene is read through: a local folder whose chunks are checked.

``SceneStore.open`` hands xarray (and so zarr) a :class:`CheckedSceneStore`. zarr
could check the ``crc32c`` codec itself, but its error names neither the array nor the
chunk, and it would be a second pass over every chunk, holding the GIL. So this store
checks each chunk's CRC-32C as it reads the file (one pass, the GIL released: see
:func:`darts.store.checksum.payload`) and raises the scene's
:class:`~darts.store.errors.CorruptChunkError` naming the scene, the array and the
chunk, with what to do; it hands zarr the chunk without its checksum and the arrays'
metadata without the ``crc32c`` codec, so zarr decodes what was checked, once.

Only arrays whose codec chain ends with ``crc32c`` are checked; arrays written before
the checksum existed are read as they are (see :mod:`darts.store.checksum`). The
store is read-only: the metadata it shows is never written back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

import numpy as np
from zarr.abc.buffer import Buffer, BufferPrototype
from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.buffer import default_buffer_prototype
from zarr.storage import LocalStore

from darts.store.checksum import CODEC_NAME, ChecksumMismatch, payload
from darts.store.errors import CorruptChunkError

METADATA = "zarr.json"
# zarr v3's default chunk key encoding: "c", then the indices separated by "/".
_CHUNK_PREFIX = "c"


class CheckedSceneStore(LocalStore):
    """A read-only :class:`~zarr.storage.LocalStore` on a scene folder that checks
    the CRC-32C of every chunk of the arrays in ``checked`` and hides it from zarr."""

    def __init__(
        self,
        root: Path | str,
        *,
        scene_id: str,
        checked: frozenset[str],
        read_only: bool = True,
    ) -> None:
        super().__init__(root, read_only=read_only)
        self.scene_id = scene_id
        self.checked = checked

    def with_read_only(self, read_only: bool = False) -> Self:
        # zarr calls this to get a read-only copy: keep what the copy must check.
        return type(self)(
            self.root, scene_id=self.scene_id, checked=self.checked, read_only=read_only
        )

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        prototype = prototype or default_buffer_prototype()
        array, _, rest = key.partition("/")
        if key == METADATA or (array in self.checked and rest == METADATA):
            found = await super().get(key, prototype)
            if found is None:
                return None
            document = json.loads(found.to_bytes())
            shown = json.dumps(self._unchecked(document, "" if key == METADATA else array))
            return _part(prototype, np.frombuffer(shown.encode(), np.uint8), byte_range)
        if array not in self.checked or not (
            rest == _CHUNK_PREFIX or rest.startswith(_CHUNK_PREFIX + "/")
        ):
            return await super().get(key, prototype, byte_range)
        # A chunk is checked whole, even when only a part of it is asked for.
        found = await super().get(key, prototype)
        if found is None:
            return None  # never written: zarr reads the fill value
        try:
            data = payload(found.as_numpy_array())
        except ChecksumMismatch as mismatch:
            raise CorruptChunkError(
                self.scene_id, array, rest, str(mismatch), Path(self.root)
            ) from None
        return _part(prototype, data, byte_range)

    def _unchecked(self, document: dict[str, Any], array: str) -> dict[str, Any]:
        """An array's metadata (``array``), or the group's with the consolidated
        metadata of its arrays (""), without the ``crc32c`` codec of checked arrays."""
        if array:
            return _without_checksum(document)
        members = (document.get("consolidated_metadata") or {}).get("metadata") or {}
        for name in list(members):
            if name in self.checked:
                members[name] = _without_checksum(members[name])
        return document


def _without_checksum(metadata: dict[str, Any]) -> dict[str, Any]:
    codecs = metadata.get("codecs") or []
    return {**metadata, "codecs": [c for c in codecs if c.get("name") != CODEC_NAME]}


def _part(prototype: BufferPrototype, data: np.ndarray, byte_range: ByteRequest | None) -> Buffer:
    """``data`` (a 1-D uint8 view), or the part of it ``byte_range`` asks for."""
    if isinstance(byte_range, RangeByteRequest):
        data = data[byte_range.start : byte_range.end]
    elif isinstance(byte_range, OffsetByteRequest):
        data = data[byte_range.offset :]
    elif isinstance(byte_range, SuffixByteRequest):
        data = data[len(data) - min(byte_range.suffix, len(data)) :]
    return prototype.buffer.from_array_like(data)
