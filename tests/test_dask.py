"""`darts inference sentinel2-dask` against the sandbox: the same outputs as
`sentinel2-sequential` (GeoTIFF pixels, profiles and provenance tags, polygons with
their provenance columns, STAC items, completion records less their timings), online
and offline; a worker killed mid-scene; a failing scene; Ctrl-C; and
the job script of a SLURM cluster config. Clusters are local (127.0.0.1 only)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")
pytest.importorskip("dask_jobqueue")

from darts.cli.main import main
from darts.errors import ConfigError
from darts.net.guard import forbid_sockets
from darts.pipelines.dask_cluster import job_script, read_cluster_config
from darts.pipelines.dask_tasks import model_loads
from darts.pipelines.events import BatchDone, SceneOnWorker
from darts.processing.export import RECORD_NAME, is_complete
from darts.processing.stac_item import STAC_ITEM_NAME
from darts.sandbox.faults_config import SERVER_NAMES
from darts.sandbox.layout import WorldLayout
from darts.sandbox.service import Sandbox
from darts.store.sidecar import store_sidecar

PATCHES = ["--patch-size", "256", "--overlap", "32", "--batch-size", "4"]


def clear_scenes(world: WorldLayout, count: int) -> list[str]:
    manifest = json.loads(world.manifest.read_text())
    tile = manifest["main_tile"]
    ids = sorted(
        s["id"] for s in manifest["scenes"] if s["tile"] == tile and s["eo:cloud_cover"] <= 10
    )
    return ids[:count]


@pytest.fixture(scope="module")
def dask_client() -> Iterator[object]:
    """Two single-threaded worker processes, everything on 127.0.0.1."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def reference(
    sandbox_world: WorldLayout, sandbox_config: Path, model_file: Path, tmp_path_factory
) -> Path:
    """The sequential pipeline's outputs for two scenes (online), in a data dir whose
    store and cubes hold everything they need afterwards."""
    root = tmp_path_factory.mktemp("reference") / "darts"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DARTS_CONFIG_FILE", str(sandbox_config))
        patch.setenv("DARTS_DATA_DIR", str(root))
        code = main(
            ["inference", "sentinel2-sequential", "--scene-ids", *clear_scenes(sandbox_world, 2),
             "--model-files", str(model_file), *PATCHES]
        )  # fmt: skip
    assert code == 0
    return root


def assert_same_outputs(left_root: Path, right_root: Path, scenes: list[str]) -> None:
    """Every scene's folder holds the same files: equal GeoTIFF pixels, profiles and
    provenance tags, equal polygon layers (their provenance columns included), equal
    STAC items, equal completion records less their timings (their file checksums and
    provenance included). ``right_root`` is the sequential run's: its provenance is
    there to compare (a run that dropped it on both sides would not pass)."""
    import geopandas
    import rasterio
    from geopandas.testing import assert_geodataframe_equal

    for scene in scenes:
        left, right = left_root / scene, right_root / scene
        assert is_complete(left) and is_complete(right), scene
        assert sorted(p.name for p in left.iterdir()) == sorted(p.name for p in right.iterdir())
        record = _record(left)
        assert record == _record(right), scene
        assert record["tile_id"] and record["source"] == "cdse" and record["parameters_sha256"]
        assert record["source_item"].endswith(f"/items/{scene}")
        item = json.loads((left / STAC_ITEM_NAME).read_text())
        assert item == json.loads((right / STAC_ITEM_NAME).read_text()), scene
        assert item["properties"]["darts:parameters_sha256"] == record["parameters_sha256"]
        for tif in sorted(left.glob("*.tif")):
            with rasterio.open(tif) as a, rasterio.open(right / tif.name) as b:
                assert a.profile == b.profile, tif.name
                assert a.tags() == b.tags(), tif.name
                assert a.tags()["parameters_sha256"] == record["parameters_sha256"], tif.name
                assert a.tags()["scene_id"] == scene, tif.name
                np.testing.assert_array_equal(a.read(), b.read(), err_msg=tif.name)
        for vector in sorted([*left.glob("*.gpkg"), *left.glob("*.parquet")]):
            read = geopandas.read_parquet if vector.suffix == ".parquet" else geopandas.read_file
            assert_geodataframe_equal(read(vector), read(right / vector.name))


def _record(folder: Path) -> dict:
    record = json.loads((folder / RECORD_NAME).read_text())
    for timing in ("seconds", "created"):
        record.pop(timing)
    return record


def _results(output_dir: Path) -> dict[str, dict[str, str]]:
    run_dir = sorted((output_dir / "runs").iterdir())[-1]
    with (run_dir / "results.csv").open() as table:
        return {row["scene_id"]: row for row in csv.DictReader(table)}


def test_dask_outputs_equal_the_sequential_ones_online_and_offline(
    dask_client, sandbox: Sandbox, sandbox_world: WorldLayout, data_dir: Path,
    model_file: Path, reference: Path, capsys,
) -> None:  # fmt: skip
    scenes = clear_scenes(sandbox_world, 2)
    address = dask_client.scheduler.address
    base = ["inference", "sentinel2-dask", "--scene-ids", *scenes, "--model-files",
            str(model_file), *PATCHES, "--scheduler-address", address]  # fmt: skip

    # Online, from an empty data dir: the workers stage the scenes and the cube tiles.
    online = data_dir / "online"
    code = main([*base, "--output-dir", str(online)])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "2 done" in out
    assert_same_outputs(online, reference / "out", scenes)
    rows = _results(online)
    assert {row["status"] for row in rows.values()} == {"done"}
    assert all(float(row["seconds_stage"]) > 0 for row in rows.values())
    assert list((data_dir / "sentinel2" / "cdse").glob(f"{scenes[0]}*"))

    # A second run finds the outputs current and submits nothing.
    code = main([*base, "--output-dir", str(online)])
    out, _ = capsys.readouterr()
    assert code == 0 and out.count("skipped (outputs current)") == 2

    # Offline: readiness on the client, offline clients on the workers. No stand-in
    # sees a request (the workers are other processes: the servers' log proves it),
    # and the client opens no socket beyond loopback.
    sandbox.clear_requests()
    offline = data_dir / "offline"
    with forbid_sockets(allow_loopback=True) as audit:
        code = main([*base, "--offline", "--output-dir", str(offline)])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert audit.blocked == []
    assert {name: sandbox.injector(name).requests() for name in SERVER_NAMES} == {
        name: [] for name in SERVER_NAMES
    }
    assert_same_outputs(offline, reference / "out", scenes)

    # Four scenes ran on two workers; each loaded the model at most once.
    loads = dask_client.run(model_loads)
    assert len(loads) == 2 and all(count <= 1 for count in loads.values()), loads


def test_a_worker_killed_mid_scene_is_survived_with_identical_outputs(
    dask_client, sandbox_world: WorldLayout, data_dir: Path, model_file: Path,
    reference: Path, tmp_path: Path,
) -> None:  # fmt: skip
    from darts.workspace import Workspace

    scenes = clear_scenes(sandbox_world, 2)
    killed: dict[str, int] = {}
    runs: dict[str, list[int]] = {}

    def kill_once(event: object) -> None:
        # The first worker to get well into a scene's segmentation is killed.
        if isinstance(event, SceneOnWorker):
            runs.setdefault(event.scene_id, []).append(event.pid)
        elif isinstance(event, BatchDone) and not killed and event.done >= 2:
            pid = runs[event.scene_id][-1]
            os.kill(pid, signal.SIGKILL)
            killed[event.scene_id] = pid

    # The reference's store holds both scenes: an offline run, straight to the scenes.
    workspace = Workspace(reference, offline=True)
    out = tmp_path / "out"
    report = workspace.run_dask(
        scenes, [model_file], output_dir=out, cluster=dask_client, on_event=kill_once,
        patch_size=256, overlap=32, batch_size=4,
    )  # fmt: skip
    assert killed, "no worker was killed: the test did not test anything"
    (scene,) = killed
    assert len(runs[scene]) == 2 and runs[scene][1] != killed[scene]
    assert report.counts() == {"done": 2}, [(r.scene_id, r.error) for r in report.results]
    assert_same_outputs(out, reference / "out", scenes)
    assert not [p for p in (out / scene).iterdir() if p.name.startswith(".")]


def test_scenes_run_only_on_workers_that_declare_a_gpu(
    sandbox_world: WorldLayout, data_dir: Path, model_file: Path, reference: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    from distributed import Client, LocalCluster

    from darts.workspace import Workspace

    scenes = clear_scenes(sandbox_world, 2)
    started: list[SceneOnWorker] = []
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0", resources={"GPU": 1},
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        # A second worker without the resource (a CPU-only node of the same cluster).
        plain = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address,
             "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            client.wait_for_workers(2, timeout=120)
            (gpu_worker,) = [
                address
                for address, worker in client.scheduler_info()["workers"].items()
                if worker["resources"].get("GPU")
            ]
            report = Workspace(reference, offline=True).run_dask(
                scenes, [model_file], output_dir=tmp_path / "out", cluster=client,
                on_event=lambda e: started.append(e) if isinstance(e, SceneOnWorker) else None,
                patch_size=256, overlap=32, batch_size=4,
            )  # fmt: skip
        finally:
            plain.terminate()
            plain.wait(timeout=60)
    assert report.counts() == {"done": 2}
    assert sorted(e.scene_id for e in started) == scenes
    assert {e.worker for e in started} == {gpu_worker}


def test_a_failing_scene_does_not_stop_the_others_on_a_local_cluster(
    sandbox: Sandbox, sandbox_world: WorldLayout, data_dir: Path, model_file: Path, capsys
) -> None:
    broken, good = clear_scenes(sandbox_world, 2)
    sensing = broken.split("_")[2]
    with sandbox.injector("s3").faults(error_rate=1.0, error_statuses=(403,), match=sensing):
        code = main(
            ["inference", "sentinel2-dask", "--scene-ids", broken, good,
             "--model-files", str(model_file), *PATCHES, "--n-workers", "2"]
        )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "Traceback" not in err
    assert "1 done" in out and "1 failed" in out
    assert is_complete(data_dir / "out" / good)
    assert not is_complete(data_dir / "out" / broken)
    rows = _results(data_dir / "out")
    assert rows[good]["status"] == "done" and int(rows[good]["patches"]) > 0
    assert rows[broken]["status"] == "failed"
    assert "403" in rows[broken]["error"] or "denied" in rows[broken]["error"].lower()


def test_keys_refused_for_every_scene_end_the_run_with_one_line(
    dask_client, sandbox: Sandbox, sandbox_world: WorldLayout, data_dir: Path,
    model_file: Path, capsys,
) -> None:  # fmt: skip
    # The sequential run's rule (`scene_failure`), with scenes side by side: a refusal
    # while no scene got through means wrong keys, which ends the run (exit 2), not
    # one failed scene after another. Both scenes' rows say why.
    scenes = clear_scenes(sandbox_world, 2)
    with sandbox.injector("s3").faults(error_rate=1.0, error_statuses=(403,)):
        code = main(
            ["inference", "sentinel2-dask", "--scene-ids", *scenes, "--model-files",
             str(model_file), *PATCHES, "--scheduler-address", dask_client.scheduler.address]
        )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 2, out + err
    # Without a terminal, a progress line per finished scene precedes the error.
    err = "".join(line for line in err.splitlines(True) if not line.startswith("progress: "))
    assert err.startswith("darts: error: ") and "Traceback" not in err
    assert "refused" in err and "AWS_ACCESS_KEY_ID" in err
    assert len(err.strip().splitlines()) == 1, err
    rows = _results(data_dir / "out")
    assert sorted(rows) == sorted(scenes)
    assert {row["status"] for row in rows.values()} == {"failed"}
    assert not any(is_complete(data_dir / "out" / scene) for scene in scenes)


def test_ctrl_c_cancels_the_run_and_leaves_no_process_behind(
    sandbox_world: WorldLayout, data_dir: Path, model_file: Path
) -> None:
    scenes = clear_scenes(sandbox_world, 2)
    command = [sys.executable, "-m", "darts.cli.main", "inference", "sentinel2-dask",
               "--scene-ids", *scenes, "--model-files", str(model_file), *PATCHES,
               "--n-workers", "1"]  # fmt: skip
    # Its own process group, as a shell gives a job: Ctrl-C reaches the whole group.
    run = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        locks = store_sidecar(data_dir / "sentinel2" / "cdse").locks
        deadline = time.monotonic() + 240
        # A worker is staging once a scene's store lock exists.
        while not list(locks.glob("*.lock")) and time.monotonic() < deadline:
            assert run.poll() is None, run.communicate()
            time.sleep(0.2)
        assert list(locks.glob("*.lock")), "the run never started staging"
        os.killpg(run.pid, signal.SIGINT)
        out, err = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 130, out + err
    assert "interrupted" in err and "Traceback" not in err, err
    rows = _results(data_dir / "out")
    assert {row["status"] for row in rows.values()} == {"cancelled"}, rows
    assert sorted(rows) == sorted(scenes)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(run.pid, 0)  # anything left of the run's process group?
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        import psutil

        left = [p.cmdline() for p in psutil.process_iter() if os.getpgid(p.pid) == run.pid]
        pytest.fail(f"processes outlived the interrupted run: {left}")


SLURM_CONFIG = """
[cluster]
class = "SLURMCluster"
jobs = 4

[cluster.options]
queue = "gpu"
account = "permafrost"
cores = 8
processes = 1
memory = "64GB"
walltime = "04:00:00"
job_extra_directives = ["--gres=gpu:1"]
worker_extra_args = ["--resources", "GPU=1"]
job_script_prologue = ["source /opt/darts/venv/bin/activate"]
# Here only: the scheduler that building the script starts stays on loopback.
scheduler_options = { host = "127.0.0.1", dashboard_address = "127.0.0.1:0" }
"""


def test_a_slurm_cluster_config_builds_its_job_script(tmp_path: Path) -> None:
    path = tmp_path / "slurm.toml"
    path.write_text(SLURM_CONFIG)
    config = read_cluster_config(path)
    assert (config.class_name, config.jobs) == ("SLURMCluster", 4)
    script = job_script(path)
    assert script.startswith("#!/")
    for line in ("#SBATCH -p gpu", "#SBATCH -A permafrost", "#SBATCH --gres=gpu:1",
                 "#SBATCH -t 04:00:00", "source /opt/darts/venv/bin/activate"):  # fmt: skip
        assert line in script, line
    assert "--resources GPU=1" in script and "--nthreads 8" in script
    assert "tcp://127.0.0.1:" in script


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[cluster]\nclass = "SLURMCluster"\n', "needs jobs"),
        ('[cluster]\nclass = "SLURMCluster"\njobs = 2\nqueue = "x"\n', "unknown key(s) queue"),
        ('[cluster]\nclass = "RayCluster"\njobs = 2\n', "not a cluster of dask-jobqueue"),
        ('[cluster]\nclass = "SLURMCluster"\njobs = 2\n[cluster.options]\nqueu = "gpu"\n',
         "does not take the options"),
        ("[darts]\nx = 1\n", "exactly one [cluster] table"),
    ],
)  # fmt: skip
def test_a_bad_cluster_config_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        job_script(path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_conflicting_cluster_options_exit_2_before_any_work(
    data_dir: Path, model_file: Path, tmp_path: Path, capsys
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(SLURM_CONFIG)
    for extra in (
        ["--scheduler-address", "tcp://127.0.0.1:1", "--cluster-config", str(config)],
        ["--scheduler-address", "tcp://127.0.0.1:1", "--n-workers", "2"],
        ["--threads-per-worker", "0"],
        ["--device", "gpu"],
    ):
        code = main(["inference", "sentinel2-dask", "--scene-ids", "X",
                     "--model-files", str(model_file), *extra])  # fmt: skip
        _, err = capsys.readouterr()
        assert code == 2, (extra, err)
        assert err.startswith("darts: error: ") and "Traceback" not in err
    assert not (data_dir / "out").exists()
