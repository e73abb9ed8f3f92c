"""Errors raised by the procedural datacube.

Each is both a :class:`~darts.store.errors.StoreError` (so store-level code that
reports "the store could not do that" catches it) and a :class:`~darts.errors.DartsError`
(so the CLI prints it as one line): every one is something the user can act on, and
its message names the cube (path, group) and what to do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from darts.errors import DartsError
from darts.store.errors import CorruptDataError, StoreError


class DatacubeError(StoreError, DartsError):
    """A datacube is missing, different from what was asked for, or incomplete."""


class CubeNotFoundError(DatacubeError):
    """There is no cube at the location and the caller did not allow creating one."""


class NotACubeError(DatacubeError):
    """The location holds something that is not a DARTS datacube; it is never touched."""


# How spec_differences names the differences that mean another darts version wrote
# the cube: its layout version, or the variables' stored scale alone.
LAYOUT_VERSION_SETTING = "layout version"
STORED_SCALE = "stored scale of the variables"


class CubeMismatchError(DatacubeError):
    """The cube on disk was made with other settings (kind, grid, variables, chunk).

    ``differences`` maps each differing setting to ``(stored, wanted)`` so a caller
    can turn it into a flag-specific hint ("choose --arcticdem-resolution 32").
    """

    def __init__(self, cube: str, differences: Mapping[str, tuple[object, object]]) -> None:
        self.cube = cube
        self.differences = dict(differences)
        listed = "; ".join(
            f"{name}: stored {stored}, wanted {wanted}"
            for name, (stored, wanted) in self.differences.items()
        )
        if set(self.differences) <= {STORED_SCALE, LAYOUT_VERSION_SETTING}:
            fix = (
                "It was written by another version of darts, which stores values "
                "differently; this version cannot read it. Move it aside (or delete it) "
                "and stage the cube again (`darts inference prep-data sentinel2 --aux "
                "...`), or point the cube location elsewhere"
            )
        else:
            fix = "Use the settings it was made with, or point the cube location elsewhere"
        super().__init__(
            f"the {cube} was made with other settings ({listed}). {fix}; the existing "
            "cube is left untouched"
        )


class IncompleteCubeError(DatacubeError):
    """Tiles a region needs are not in the cube and fetching was not allowed (offline).

    Reading on would return fill values as if they were data (pitfall 5), so the
    message lists every missing tile and says how to fill them.
    """

    def __init__(self, cube: str, missing: Iterable[str], source: str = "") -> None:
        self.cube = cube
        self.missing = list(missing)
        self.source = source
        origin = f" from {source}" if source else ""
        super().__init__(
            f"the {cube} lacks {len(self.missing)} tile(s) this region needs: "
            f"{', '.join(self.missing)}. Fill them{origin} while online, e.g. run "
            "`darts inference prep-data sentinel2 --aux ...` for this region without "
            "--offline, then run again"
        )


class CubeFillError(DatacubeError):
    """Some tiles could not be fetched or written; the others were.

    ``failures`` maps each failed tile to its exception (network errors, including
    ``OfflineError``, write errors); ``written`` lists the tiles that did get written.
    """

    def __init__(
        self, cube: str, failures: Mapping[str, BaseException], written: Iterable[str] = ()
    ) -> None:
        self.cube = cube
        self.failures = dict(failures)
        self.written = list(written)
        listed = "; ".join(f"{tile}: {_reason(error)}" for tile, error in self.failures.items())
        done = f" ({len(self.written)} other tile(s) were written)" if self.written else ""
        super().__init__(
            f"could not fill {len(self.failures)} tile(s) of the {cube}{done}: {listed}. "
            "Fix the cause (network, credentials, disk) and run again: only the missing "
            "tiles are fetched"
        )


class TileClaimTimeout(DatacubeError, TimeoutError):
    """Another process claimed a tile and neither finished it nor died in time."""

    def __init__(self, tile: str, cube: str, holder: str, waited_s: float) -> None:
        self.tile = tile
        super().__init__(
            f"timed out after {waited_s:.0f} s waiting for tile {tile} of the {cube}, "
            f"which {holder} is fetching and still running (a dead one's claim is taken "
            "over). Let that process finish, then run again (only missing tiles are "
            "fetched), or wait longer with --lock-wait"
        )


class CubeCommitError(DatacubeError):
    """A tile's commit could not be made to stick (conflicts, or a commit that was lost)."""


class CorruptCubeChunkError(DatacubeError, CorruptDataError):
    """A chunk of a cube variable fails its checksum or does not decode: its pixels
    are never returned. Names the cube, the variable, the chunk and the tiles whose
    pixels it holds."""

    def __init__(
        self, cube: str, variable: str, chunk: str, reason: str, tiles: Iterable[str] = ()
    ) -> None:
        self.cube = cube
        self.variable = variable
        self.chunk = chunk
        self.reason = reason
        self.tiles = list(tiles)
        held = f" (pixels of tile(s) {', '.join(self.tiles)})" if self.tiles else ""
        super().__init__(
            f"the {cube} is damaged: variable {variable!r} {chunk}{held}: {reason}; its "
            "data is not used. Move the cube aside (or delete it) and stage it again: "
            "`darts inference prep-data sentinel2 --scene-ids <ids> --aux` for the "
            "scenes you need (only the tiles they need are fetched)"
        )


class DamagedCubeError(DatacubeError, CorruptDataError):
    """The repository's own metadata (snapshot, manifests) no longer parses."""


class CubeRegionError(DatacubeError, ValueError):
    """The requested region does not overlap the cube's grid."""


def _reason(error: BaseException) -> str:
    # A user error's message says it all; anything else is unexpected, so its type helps.
    if isinstance(error, DartsError) or type(error).__module__.startswith("darts."):
        return str(error)
    return f"{type(error).__name__}: {error}"


class CubeStorageError(DatacubeError):
    """The repository's storage failed (unreachable endpoint, refused keys, no
    permission, full disk). The original Icechunk error is chained."""


def storage_failure(
    action: str, cube: str, error: BaseException, *, remote: bool
) -> CubeStorageError:
    """One readable line from an Icechunk error (whose text is a multi-line report
    with the whole call chain): what failed and the innermost cause."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    head = lines[0].removeprefix("x ").strip() if lines else type(error).__name__
    cause = ""
    for index, line in enumerate(lines):
        if line.startswith("`->"):
            # The innermost cause may wrap onto the following lines.
            cause = " ".join([line.removeprefix("`->").strip(), *lines[index + 1 :]])
    detail = f"{head} ({cause})" if cause and cause not in head else head
    fix = (
        "check the S3 endpoint, the keys and that they may read and write this bucket"
        if remote
        else "check that the directory is readable and writable and the disk is not full"
    )
    return CubeStorageError(f"could not {action} the {cube}: {detail}. {fix}, then run again")
