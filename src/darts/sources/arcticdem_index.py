"""The PGC ArcticDEM mosaic index: which tiles exist, without asking STAC.

PGC publishes one zip holding a GeoParquet table per resolution
(``ArcticDEM_Mosaic_Index_v4_1_<res>m.parquet``: ``dem_id``, ``tile``, ``supertile``,
``gsd``, ``fileurl``, ``s3url`` and the footprint, EPSG:3413). It is downloaded once
into a folder of the data directory and reused from then on; the reference downloaded
it into the installed package and even did so offline (pitfall 7). Here an offline run
with the index present opens no connection, and without it the HTTP client's offline
gate refuses the download with an error naming the index.

Parallel stagers share one download: the zip is fetched under a file lock kept next to
the index folder, and every file appears under its final name only when complete.

The folder is the ArcticDEM cube's hidden folder (`darts.store.sidecar`); tables an
earlier darts version extracted elsewhere (``also_read``) are still read, so an
existing installation neither fetches the index again nor fails offline.
"""

from __future__ import annotations

import re
import shutil
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

from darts.errors import DartsError
from darts.grid import arcticdem as pgc_grid
from darts.net.files import atomic_file
from darts.net.http import HttpClient
from darts.store.locks import hold_lock

ZIP_NAME = "ArcticDEM_Mosaic_Index.zip"
_REQUIRED_COLUMNS = ("dem_id", "tile", "supertile", "fileurl", "s3url", "geometry")


class ArcticDemIndexError(DartsError):
    """The downloaded mosaic index cannot be used (wrong content, not just unreadable)."""


@dataclass(frozen=True)
class IndexEntry:
    """One row of the mosaic index: a tile that has data."""

    dem_id: str  # "58_05_10m_v4.1"
    tile: str  # "58_05" or "44_74_1_2"
    supertile: str  # "58_05"
    fileurl: str
    s3url: str
    bounds: tuple[float, float, float, float]  # footprint, EPSG:3413


def parquet_name(resolution_m: int) -> str:
    return f"ArcticDEM_Mosaic_Index_v4_1_{resolution_m}m.parquet"


def _member_pattern(resolution_m: int) -> re.Pattern[str]:
    # Matched on the member's base name, so a folder inside the zip does not matter;
    # the "m" is optional because PGC's documentation spells the name both ways.
    return re.compile(rf"ArcticDEM_Mosaic_Index_v4_1_{resolution_m}m?\.parquet", re.IGNORECASE)


class ArcticDemIndex:
    """The mosaic index kept in ``index_dir``. Network only when a table is missing."""

    def __init__(
        self,
        index_url: str,
        index_dir: Path,
        http: HttpClient,
        *,
        also_read: tuple[Path, ...] = (),
    ) -> None:
        self.index_url = index_url
        self.index_dir = Path(index_dir)
        self.http = http
        self.also_read = tuple(Path(p) for p in also_read)
        self._tables: dict[int, dict[str, IndexEntry]] = {}
        self._memory_lock = threading.Lock()

    @property
    def zip_path(self) -> Path:
        return self.index_dir / ZIP_NAME

    @property
    def lock_path(self) -> Path:
        # Next to the folder, not inside it: removing a broken index folder must not
        # remove the lock another process is waiting on.
        return self.index_dir.parent / f".{self.index_dir.name}.lock"

    def is_downloaded(self) -> bool:
        return self.zip_path.is_file()

    def tiles(self, resolution_m: int) -> dict[str, IndexEntry]:
        """Tile name -> entry for every tile of that resolution in the index."""
        if resolution_m not in pgc_grid.RESOLUTIONS_M:
            raise ValueError(
                f"ArcticDEM mosaics exist at {pgc_grid.RESOLUTIONS_M} m, not {resolution_m!r}"
            )
        with self._memory_lock:
            table = self._tables.get(resolution_m)
            if table is None:
                table = self._load(resolution_m)
                self._tables[resolution_m] = table
            return table

    # -- internals --------------------------------------------------------------------

    def _load(self, resolution_m: int) -> dict[str, IndexEntry]:
        path = self.index_dir / parquet_name(resolution_m)
        table = _read_table(path)  # the common case: no lock, no network
        if table is not None:
            return table
        for folder in self.also_read:  # read only: nothing is written there
            table = _read_table(folder / parquet_name(resolution_m))
            if table is not None:
                return table
        with hold_lock(self.lock_path, None, f"the ArcticDEM index in {self.index_dir}"):
            # Another process may have finished the download while we waited.
            table = _read_table(path)
            if table is not None:
                return table
            downloaded = False
            if not _is_readable_zip(self.zip_path):
                self._download()
                downloaded = True
            if not self._extract(resolution_m, path) and not downloaded:
                # A zip from an older index release may lack this table: fetch it anew.
                self._download()
                self._extract(resolution_m, path)
            table = _read_table(path)
            if table is None:
                raise ArcticDemIndexError(
                    f"the ArcticDEM mosaic index from {self.index_url} has no readable "
                    f"{parquet_name(resolution_m)}; delete {self.index_dir} to fetch it "
                    "again, or check --arcticdem-index-url"
                )
            return table

    def _download(self) -> None:
        self.http.stream_to_file(
            self.index_url, self.zip_path, purpose="ArcticDEM mosaic tile index (zip)"
        )
        if not _is_readable_zip(self.zip_path):
            raise ArcticDemIndexError(
                f"{self.index_url} did not return a zip archive; check --arcticdem-index-url "
                "(it should point at ArcticDEM_Mosaic_Index_latest_gpqt.zip)"
            )

    def _extract(self, resolution_m: int, path: Path) -> bool:
        """Copy the resolution's table out of the zip to ``path``; False if absent."""
        pattern = _member_pattern(resolution_m)
        with zipfile.ZipFile(self.zip_path) as archive:
            members = [
                info
                for info in archive.infolist()
                if pattern.fullmatch(Path(info.filename).name) and not info.is_dir()
            ]
            if not members:
                return False
            with archive.open(members[0]) as source, atomic_file(path) as target:
                shutil.copyfileobj(source, target, 1 << 20)
        return True


def _is_readable_zip(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


def _read_table(path: Path) -> dict[str, IndexEntry] | None:
    """The table at ``path``, or None when missing or unreadable (to be re-extracted)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    if not path.is_file():
        return None
    try:
        table = pq.read_table(path)
    except (OSError, ValueError, pa.ArrowException):
        return None
    missing = [name for name in _REQUIRED_COLUMNS if name not in table.column_names]
    if missing:
        raise ArcticDemIndexError(
            f"ArcticDEM index table {path} lacks the columns {missing}; delete "
            f"{path.parent} to fetch the index again, or check --arcticdem-index-url"
        )
    columns = {name: table.column(name).to_pylist() for name in _REQUIRED_COLUMNS}
    geometries = shapely.from_wkb(columns["geometry"])
    entries: dict[str, IndexEntry] = {}
    for row, geometry in enumerate(geometries):
        tile = str(columns["tile"][row])
        xmin, ymin, xmax, ymax = (float(v) for v in shapely.bounds(geometry))
        entries[tile] = IndexEntry(
            dem_id=str(columns["dem_id"][row]),
            tile=tile,
            supertile=str(columns["supertile"][row]),
            fileurl=str(columns["fileurl"][row]),
            s3url=str(columns["s3url"][row]),
            bounds=(xmin, ymin, xmax, ymax),
        )
    return entries
