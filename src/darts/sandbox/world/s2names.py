"""Names of Sentinel-2 L2A products: ids, orbits, baselines, SAFE paths, OData URLs.

Everything is derived from the acquisition (platform, sensing time, orbit, tile), so
the item id, its properties and its asset paths agree:

- processing baseline by sensing date: reprocessed ``N0500`` for 2015–2021 (stored under
  ``Sentinel-2/MSI/L2A_N0500/``), then the operational baselines 04.00 (2022), 05.09
  (2023), 05.10 and 05.11 (2024 before/after 23 July), 05.11 (2025 on), stored under
  ``Sentinel-2/MSI/L2A/``; all of them carry the −1000 BOA offset;
- the product discriminator (last id field) is the processing time: about four and a
  half hours after sensing, or a day in 2023 for the reprocessed baseline;
- the absolute orbit is the one nearest to the sensing time (10-day, 143-orbit cycle
  counted from launch) whose number maps onto the relative orbit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property

from darts.sandbox.world.seeds import derive_seed
from darts.sandbox.world.spec import Acquisition

_LAUNCH = {
    "sentinel-2a": datetime(2015, 6, 23, 1, 51, tzinfo=UTC),
    "sentinel-2b": datetime(2017, 3, 7, 1, 49, tzinfo=UTC),
    "sentinel-2c": datetime(2024, 9, 5, 1, 50, tzinfo=UTC),
}
_ORBIT_OFFSET = {"sentinel-2a": 2, "sentinel-2b": 116, "sentinel-2c": 40}
_DESIGNATOR = {"sentinel-2a": "2015-028A", "sentinel-2b": "2017-013A", "sentinel-2c": "2024-157A"}
_ORBITS_PER_CYCLE = 143
_CYCLE_DAYS = 10.0
_NAMESPACE = uuid.UUID("5d9c1f4e-3b0a-4c59-9d2e-7a64c4f0b1aa")


def baseline(sensing: datetime) -> str:
    d = sensing.date()
    if d < date(2022, 1, 25):
        return "05.00"
    if d < date(2022, 12, 6):
        return "04.00"
    if d < date(2023, 12, 13):
        return "05.09"
    if d < date(2024, 7, 23):
        return "05.10"
    return "05.11"


def _stamp(t: datetime) -> str:
    return t.strftime("%Y%m%dT%H%M%S")


def absolute_orbit(platform: str, sensing: datetime, relative: int) -> int:
    days = (sensing - _LAUNCH[platform]).total_seconds() / 86400.0
    guess = int(days * _ORBITS_PER_CYCLE / _CYCLE_DAYS)
    offset = _ORBIT_OFFSET[platform]
    matching = [
        n
        for n in range(guess - _ORBITS_PER_CYCLE, guess + _ORBITS_PER_CYCLE)
        if (n + offset) % _ORBITS_PER_CYCLE + 1 == relative
    ]
    return min(matching, key=lambda n: abs(n - guess))


@dataclass
class ProductNames:
    """All names of one product; values are computed once (``cached_property``)."""

    acq: Acquisition
    seed: int

    @cached_property
    def mission(self) -> str:
        return "S2" + self.acq.platform[-1].upper()

    @cached_property
    def baseline(self) -> str:
        return baseline(self.acq.sensing)

    @cached_property
    def reprocessed(self) -> bool:
        return self.baseline == "05.00"

    @cached_property
    def baseline_code(self) -> str:
        return "N" + self.baseline.replace(".", "")

    @cached_property
    def tile(self) -> str:
        return self.acq.window.tile

    @cached_property
    def processed(self) -> datetime:
        jitter = derive_seed(self.seed, "processing", self.acq.window.tile, self.acq.sensing) % 3600
        if self.reprocessed:
            start = datetime(2023, 3, 1, tzinfo=UTC)
            day = derive_seed(self.seed, "reprocessing", self.acq.sensing) % 120
            return start + timedelta(days=day, seconds=jitter * 7)
        return self.acq.sensing.replace(microsecond=0) + timedelta(hours=4, seconds=jitter)

    @cached_property
    def granule_sensing(self) -> datetime:
        """When the datatake reached the tile (the granule and datastrip time stamp)."""
        return self.acq.sensing + timedelta(seconds=131)

    @cached_property
    def absolute_orbit(self) -> int:
        return absolute_orbit(self.acq.platform, self.acq.sensing, self.acq.relative_orbit)

    @cached_property
    def product_id(self) -> str:
        return (
            f"{self.mission}_MSIL2A_{_stamp(self.acq.sensing)}_{self.baseline_code}"
            f"_R{self.acq.relative_orbit:03d}_T{self.tile}_{_stamp(self.processed)}"
        )

    @cached_property
    def granule(self) -> str:
        return f"L2A_T{self.tile}_A{self.absolute_orbit:06d}_{_stamp(self.granule_sensing)}"

    @cached_property
    def datastrip(self) -> str:
        centre = "S2RP" if self.reprocessed else f"{self.mission[1:]}PS"
        return f"DS_{centre}_{_stamp(self.processed)}_S{_stamp(self.granule_sensing)}"

    @cached_property
    def datastrip_id(self) -> str:
        centre = "S2RP" if self.reprocessed else f"{self.mission[1:]}PS"
        return (
            f"{self.mission}_OPER_MSI_L2A_DS_{centre}_{_stamp(self.processed)}"
            f"_S{_stamp(self.granule_sensing)}_N{self.baseline}"
        )

    @cached_property
    def datatake_id(self) -> str:
        return (
            f"G{self.mission}_{_stamp(self.acq.sensing)}_{self.absolute_orbit:06d}_N{self.baseline}"
        )

    @cached_property
    def product_uuid(self) -> str:
        return str(uuid.uuid5(_NAMESPACE, self.product_id))

    @cached_property
    def safe_key(self) -> str:
        """S3 key (bucket ``eodata``) of the product's .SAFE folder."""
        folder = "L2A_N0500" if self.reprocessed else "L2A"
        d = self.acq.sensing
        return f"Sentinel-2/MSI/{folder}/{d:%Y/%m/%d}/{self.product_id}.SAFE"

    def band_file(self, band: str, res: int) -> str:
        """Path of a band file inside the .SAFE folder."""
        name = f"T{self.tile}_{_stamp(self.acq.sensing)}_{band}_{res}m.jp2"
        return f"GRANULE/{self.granule}/IMG_DATA/R{res}m/{name}"

    def odata_url(self, inner_path: str | None) -> str:
        base = f"https://zipper.dataspace.copernicus.eu/odata/v1/Products({self.product_uuid})"
        if inner_path is None:
            return f"{base}/$value"
        nodes = "".join(
            f"/Nodes({part})" for part in [f"{self.product_id}.SAFE", *inner_path.split("/")]
        )
        return f"{base}{nodes}/$value"

    @cached_property
    def platform_designator(self) -> str:
        return _DESIGNATOR[self.acq.platform]
