"""SceneStore across processes: SIGKILL mid-write, and concurrent stagers of one scene."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from darts.store.scenes import BandEncoding, MissingBandsError, SceneStore, StoreLockTimeout

SCENE = "S2A_MSIL2A_20240701T000000_N0510_R001_T36NYH_20240701T000000"
ITEM = {
    "id": SCENE,
    "properties": {"datetime": "2024-07-01T00:00:00Z"},
    "assets": {"B02_10m": {"proj:code": "EPSG:32636"}},
}
SIZE, CHUNK = 600, 128  # 5 × 5 chunks: a band is written in several steps
X0, Y0, RES = 699960.0, 300000.0, 10.0
ATTRS = {"raster:scale": 0.0001, "raster:offset": -0.1, "nodata": 0}

# The child process: writes bands (optionally dying at one checkpoint), stages
# with ensure_bands (counting fetches in a marker file), or holds the lock.
CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np, xarray as xr
import darts.store.scenes as scenes

cfg = json.loads(Path(sys.argv[1]).read_text())

def band(name):
    values = np.load(cfg["arrays"][name])
    rows, cols = values.shape
    return xr.DataArray(values, dims=("y", "x"), attrs=cfg["attrs"], coords={
        "y": cfg["y0"] - cfg["res"] / 2 - cfg["res"] * np.arange(rows),
        "x": cfg["x0"] + cfg["res"] / 2 + cfg["res"] * np.arange(cols)})

if cfg.get("crash_at"):
    def checkpoint(stage, name):
        if [stage, name] == cfg["crash_at"]:
            Path(cfg["flag"]).write_text("at checkpoint")
            time.sleep(600)  # the parent SIGKILLs us here
    scenes._checkpoint = checkpoint

store = scenes.SceneStore(Path(cfg["root"]), scenes.BandEncoding(chunk=cfg["chunk"]))
bands = cfg["bands"]
if cfg["mode"] == "write":
    store.write_bands(cfg["scene"], cfg["item"], {n: band(n) for n in bands})
elif cfg["mode"] == "ensure":
    while not Path(cfg["go"]).exists():
        time.sleep(0.005)
    def fetch(missing):
        with open(cfg["marker"], "a") as marker:
            marker.write(" ".join(missing) + "\n")
        time.sleep(cfg["download_s"])  # a slow download: the other process must wait
        return cfg["item"], {n: band(n) for n in missing}
    print(json.dumps(store.ensure_bands(cfg["scene"], bands, fetch)))
elif cfg["mode"] == "hold":
    with store.lock(cfg["scene"]):
        Path(cfg["flag"]).write_text("holding")
        time.sleep(600)
"""


def values(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = rng.integers(1, 10000, (SIZE, SIZE), dtype="uint16")
    out[:, :200] = 0
    return out


def make_band(data: np.ndarray) -> xr.DataArray:
    return xr.DataArray(
        data,
        dims=("y", "x"),
        attrs=ATTRS,
        coords={
            "y": Y0 - RES / 2 - RES * np.arange(SIZE),
            "x": X0 + RES / 2 + RES * np.arange(SIZE),
        },
    )


class Child:
    def __init__(self, tmp_path: Path, name: str, **cfg: Any) -> None:
        self.tmp_path = tmp_path
        arrays = {}
        for band in cfg["bands"]:
            arrays[band] = str(tmp_path / f"{band}.npy")
            np.save(arrays[band], values(seed=int.from_bytes(band.encode(), "little")))
        self.flag = tmp_path / f"{name}.flag"
        config = {
            "root": str(tmp_path / "store"),
            "chunk": CHUNK,
            "scene": SCENE,
            "item": ITEM,
            "attrs": ATTRS,
            "x0": X0,
            "y0": Y0,
            "res": RES,
            "arrays": arrays,
            "flag": str(self.flag),
            **cfg,
        }
        script, config_file = tmp_path / "child.py", tmp_path / f"{name}.json"
        script.write_text(CHILD)
        config_file.write_text(json.dumps(config))
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(config_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_for_flag(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.flag.exists():
            if self.process.poll() is not None:
                raise AssertionError(f"child exited early: {self.process.communicate()}")
            assert time.monotonic() < deadline, "child never reached its checkpoint"
            time.sleep(0.01)

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.communicate()  # reaps it and closes its pipes

    def result(self, timeout: float = 60) -> Any:
        out, err = self.process.communicate(timeout=timeout)
        assert self.process.returncode == 0, err
        return json.loads(out)


def store_at(tmp_path: Path) -> SceneStore:
    return SceneStore(tmp_path / "store", BandEncoding(chunk=CHUNK))


@pytest.mark.parametrize("stage", ["step", "published", "listed"])
def test_killed_append_leaves_nothing_that_passes_as_complete(tmp_path: Path, stage: str) -> None:
    store = store_at(tmp_path)
    store.write_bands(SCENE, ITEM, {"B02": make_band(values(2))})
    before = store.commit_record(SCENE)

    child = Child(tmp_path, "crash", mode="write", bands=["B03"], crash_at=[stage, "B03"])
    child.wait_for_flag()
    child.kill()

    assert store.stored_bands(SCENE) == {"B02"}
    assert store.missing_bands(SCENE, ["B02", "B03"]) == ["B03"]
    assert store.commit_record(SCENE) == before
    with pytest.raises(MissingBandsError):
        store.open(SCENE, ["B03"])
    problems = store.verify(SCENE)
    assert problems and all(p.startswith("leftover:") for p in problems), problems
    # Committed data is untouched by the crash and by the cleanup.
    np.testing.assert_array_equal(store.open(SCENE, ["B02"], load=True)["B02"].values, values(2))

    assert store.cleanup_leftovers(SCENE) >= 1
    assert store.verify(SCENE) == []
    b03 = values(int.from_bytes(b"B03", "little"))
    assert store.write_bands(SCENE, ITEM, {"B03": make_band(b03)}) == ["B03"]
    np.testing.assert_array_equal(store.open(SCENE, ["B03"], load=True)["B03"].values, b03)
    assert store.verify(SCENE) == []


def test_killed_first_write_leaves_no_scene_and_rerun_completes(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    # Killed after the band is listed in zarr.json but before the commit record exists.
    child = Child(tmp_path, "crash", mode="write", bands=["B02"], crash_at=["listed", "B02"])
    child.wait_for_flag()
    child.kill()

    assert store.scenes() == [] and store.stored_bands(SCENE) == set()
    assert store.item(SCENE) is None
    assert any("no commit record" in p for p in store.verify(SCENE))
    # The next writer (under the lock) cleans up by itself, then writes.
    b02 = values(int.from_bytes(b"B02", "little"))
    assert store.write_bands(SCENE, ITEM, {"B02": make_band(b02)}) == ["B02"]
    assert store.verify(SCENE) == []
    np.testing.assert_array_equal(store.open(SCENE, ["B02"], load=True)["B02"].values, b02)


def test_killed_after_commit_keeps_the_band(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    child = Child(tmp_path, "crash", mode="write", bands=["B02"], crash_at=["committed", "B02"])
    child.wait_for_flag()
    child.kill()
    assert store.stored_bands(SCENE) == {"B02"}
    assert store.verify(SCENE) == []
    np.testing.assert_array_equal(
        store.open(SCENE, ["B02"], load=True)["B02"].values,
        values(int.from_bytes(b"B02", "little")),
    )


def test_concurrent_stagers_download_once(tmp_path: Path) -> None:
    marker, go = tmp_path / "fetches.txt", tmp_path / "go"
    common = {
        "mode": "ensure",
        "bands": ["B02", "B03"],
        "marker": str(marker),
        "go": str(go),
        "download_s": 0.5,
    }
    first = Child(tmp_path, "first", **common)
    second = Child(tmp_path, "second", **common)
    go.touch()  # both start staging at the same moment
    results = sorted([first.result(), second.result()])

    assert results == [[], ["B02", "B03"]]  # one fetched both bands, the other nothing
    assert marker.read_text().splitlines() == ["B02 B03"]
    store = store_at(tmp_path)
    assert store.stored_bands(SCENE) == {"B02", "B03"}
    assert store.verify(SCENE) == []


def test_lock_held_by_another_process_times_out_then_frees_on_kill(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = store_at(tmp_path)
    holder = Child(tmp_path, "holder", mode="hold", bands=[])
    holder.wait_for_flag()
    started = time.monotonic()
    # The wait is bounded and logged, and its end names the holder and what to do.
    holder_text = f"process {holder.process.pid} on "
    with (
        caplog.at_level(logging.INFO, logger="darts.store.wait"),
        pytest.raises(StoreLockTimeout, match=rf"another process .*{holder_text}.*--lock-wait"),
        store.lock(SCENE, timeout=0.3),
    ):
        pass
    assert time.monotonic() - started >= 0.3
    assert any(holder_text in r.getMessage() for r in caplog.records)
    holder.kill()  # a dead holder's lock is released by the OS
    with store.lock(SCENE, timeout=5):
        pass
