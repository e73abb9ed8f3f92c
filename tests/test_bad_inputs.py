"""The bad-input catalogue: every predictable failure of the ``darts`` command ends in
one line on stderr naming the input and what to do, with the documented exit code
(README, "Exit codes"), no traceback, and the caches exactly as they were.

Each case runs the ``darts`` script's entry (`darts.compat.main`) in this process, with
the sandbox's stand-ins and one staged data dir shared by the module (one scene, both
cubes); the raw-data store and the cubes are hashed before and after every case. Most
cases fail while options are resolved, before any network or model work. The few that
need a process of their own run the installed ``darts`` script: a disk that refuses
writes (RLIMIT_FSIZE gives EFBIG, as a full disk gives ENOSPC), and folders the user may
not write (as root, without CAP_DAC_OVERRIDE, which is what makes root's writes succeed).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from darts.compat import main as darts_main
from darts.net.guard import get_gate
from darts.sandbox.layout import WorldLayout

# --------------------------------------------------------------------------------------
# The shared world: one staged scene in one data dir for the whole module.


@dataclass(frozen=True)
class Staged:
    data: Path  # DARTS_DATA_DIR with the scene and both cubes staged
    scene: str  # the staged scene
    other: str  # a scene of the same tile, not staged
    config: Path  # the sandbox's darts config


_ENV_CLEARED = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "DARTS_OFFLINE",
    "DARTS_REQUEST_TIMEOUT",
    "DARTS_MAX_RETRIES",
    "DARTS_MAX_CONCURRENCY",
    "DARTS_FAST_DATA_DIR",
    "DARTS_LARGE_DATA_DIR",
)


def _clean_env(patch: pytest.MonkeyPatch, staged_data: Path, config: Path) -> None:
    patch.setenv("DARTS_CONFIG_FILE", str(config))
    patch.setenv("DARTS_DATA_DIR", str(staged_data))
    for var in _ENV_CLEARED:
        patch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def staged(
    sandbox_world: WorldLayout, sandbox_config: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Staged]:
    manifest = json.loads(sandbox_world.manifest.read_text())
    tile = manifest["main_tile"]
    clear = sorted(
        s["id"] for s in manifest["scenes"] if s["tile"] == tile and s["eo:cloud_cover"] <= 10
    )
    data = tmp_path_factory.mktemp("bad-inputs") / "darts"
    with pytest.MonkeyPatch.context() as patch:
        _clean_env(patch, data, sandbox_config)
        args = ["inference", "prep-data", "sentinel2", "--scene-ids", clear[0], "--optical"]
        assert darts_main([*args, "--aux"]) == 0
    yield Staged(data, clear[0], clear[1], sandbox_config)
    get_gate().set_offline(False)


@dataclass(frozen=True)
class Ctx:
    """What a case may refer to; its fields fill ``{name}`` in the case's arguments,
    environment and expected words."""

    tmp: Path  # a fresh folder for this case
    data: Path
    scene: str
    other: str
    config: Path
    model: Path  # a valid checkpoint
    dead: str  # http://127.0.0.1:<a port nothing listens on>

    def fill(self, text: str) -> str:
        return text.format(**{k: str(v) for k, v in vars(self).items()})


def _dead_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # closed again: connections are refused


@pytest.fixture
def ctx(
    staged: Staged,
    model_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    loopback_only: object,  # and the test fails if anything reaches past 127.0.0.1
) -> Iterator[Ctx]:
    _clean_env(monkeypatch, staged.data, staged.config)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.aws of the machine
    yield Ctx(
        tmp_path, staged.data, staged.scene, staged.other, staged.config, model_file, _dead_url()
    )
    get_gate().set_offline(False)


# --------------------------------------------------------------------------------------
# Caches: byte for byte.


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its SHA-256 (symlinks by target). Empty ``.lock``
    files are left out: they are the stores' inter-process locks, created on first use
    and kept by design, and hold no data."""
    digests: dict[str, str] = {}
    if not root.exists():
        return digests
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            digests[str(path.relative_to(root))] = "-> " + os.readlink(path)
        elif path.is_file():
            if path.suffix == ".lock" and path.stat().st_size == 0:
                continue
            digests[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir() and not any(path.iterdir()):
            digests[str(path.relative_to(root)) + "/"] = "empty dir"
    return digests


def caches(ctx: Ctx) -> list[Path]:
    """The raw-data store and the cubes of the shared dir, and a case's own copy of
    the store, if it made one."""
    return [ctx.data / "sentinel2", ctx.data / "auxiliary", ctx.tmp / "store"]


# --------------------------------------------------------------------------------------
# The catalogue.

PREP = ["inference", "prep-data", "sentinel2"]
RUN = ["inference", "sentinel2-sequential"]
READY = ["inference", "readiness", "sentinel2"]
TILE = ["--tile-ids", "08WNB"]
MODEL = ["--model-files", "{model}"]
USAGE, NETWORK, STORAGE = 2, 3, 4  # darts.errors.EXIT_*


@dataclass(frozen=True)
class Case:
    id: str
    argv: list[str]
    code: int
    says: tuple[str, ...]  # words the one line must hold (the input, what to do)
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[Ctx], None] | None = None


def _file(name: str, text: str | bytes) -> Callable[[Ctx], None]:
    def write(ctx: Ctx) -> None:
        path = ctx.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())

    return write


def _aoi(geometry: dict, crs: str | None = None) -> str:
    collection: dict = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {}, "geometry": geometry}],
    }
    if crs:
        collection["crs"] = {"type": "name", "properties": {"name": crs}}
    return json.dumps(collection)  # NaN and Infinity are written as JSON allows them


def _ring(*points: tuple[float, float]) -> dict:
    return {"type": "Polygon", "coordinates": [[list(p) for p in (*points, points[0])]]}


def _a_file_at(name: str) -> Callable[[Ctx], None]:
    return _file(name, "not a folder\n")


def _config(text: str) -> Callable[[Ctx], None]:
    """A config file: the sandbox's endpoints (nothing may reach a real service) plus
    ``text``."""

    def write(ctx: Ctx) -> None:
        (ctx.tmp / "darts.toml").write_text(ctx.config.read_text() + "\n" + text)

    return write


def _sandbox_config_without_s3_keys(ctx: Ctx) -> None:
    lines = ctx.config.read_text().splitlines()
    kept = [line for line in lines if not line.startswith(("aws-profile", "aws-credentials"))]
    (ctx.tmp / "nokeys.toml").write_text("\n".join(kept) + "\n")


def _checkpoint(name: str, make: Callable[[Path], None]) -> Callable[[Ctx], None]:
    def prepare(ctx: Ctx) -> None:
        make(ctx.tmp / name)

    return prepare


def _torch_save(value: object) -> Callable[[Path], None]:
    def save(path: Path) -> None:
        import torch

        torch.save(value, path)

    return save


def _truncated_model(path: Path) -> None:
    from darts import DEMO_MODEL

    path.write_bytes(Path(DEMO_MODEL).read_bytes()[:50_000])


CASES: list[Case] = [
    # -- option values, from every place a value can come from -------------------------
    Case("request-timeout-negative", [*PREP, *TILE, "--optical", "--request-timeout", "-1"],
         USAGE, ("--request-timeout", "'-1'", "greater than 0")),
    Case("request-timeout-zero", [*PREP, *TILE, "--optical", "--request-timeout", "0"],
         USAGE, ("--request-timeout", "greater than 0")),
    Case("request-timeout-nan-dotted",
         [*PREP, *TILE, "--optical", "--network.request-timeout", "nan"],
         USAGE, ("--network.request-timeout", "finite number")),
    Case("request-timeout-env-text", [*PREP, *TILE, "--optical"], USAGE,
         ("environment variable DARTS_REQUEST_TIMEOUT", "'soon'", "a number"),
         env={"DARTS_REQUEST_TIMEOUT": "soon"}),
    Case("max-concurrency-env-zero", [*PREP, *TILE, "--optical"], USAGE,
         ("environment variable DARTS_MAX_CONCURRENCY", "'0'", "at least 1"),
         env={"DARTS_MAX_CONCURRENCY": "0"}),
    Case("max-concurrency-flag-zero", [*PREP, *TILE, "--optical", "--max-concurrency", "0"],
         USAGE, ("--max-concurrency", "at least 1")),
    Case("max-retries-env-negative", [*PREP, *TILE, "--optical"], USAGE,
         ("environment variable DARTS_MAX_RETRIES", "'-1'", "at least 0"),
         env={"DARTS_MAX_RETRIES": "-1"}),
    Case("max-retries-fraction", [*PREP, *TILE, "--optical", "--max-retries", "1.5"], USAGE,
         ("--max-retries", "whole number")),
    Case("binarization-threshold-above-1", [*RUN, "--scene-ids", "{scene}", *MODEL,
         "--binarization-threshold", "2"], USAGE, ("--binarization-threshold", "from 0 to 1")),
    Case("binarization-threshold-negative", [*RUN, "--scene-ids", "{scene}", *MODEL,
         "--pipeline.binarization-threshold", "-0.1"], USAGE,
         ("--pipeline.binarization-threshold", "from 0 to 1")),
    Case("min-object-size-negative", [*RUN, "--scene-ids", "{scene}", *MODEL,
         "--min-object-size", "-3"], USAGE, ("--min-object-size", "at least 0")),
    Case("quality-level-3", [*RUN, "--scene-ids", "{scene}", *MODEL, "--quality-level", "3"],
         USAGE, ("--quality-level", "choose 0, 1 or 2")),
    Case("patch-size-zero", [*RUN, "--scene-ids", "{scene}", *MODEL, "--patch-size", "0"],
         USAGE, ("--patch-size", "at least 1")),
    Case("batch-size-zero", [*RUN, "--scene-ids", "{scene}", *MODEL, "--batch-size", "0"],
         USAGE, ("--batch-size", "at least 1")),
    Case("overlap-negative", [*RUN, "--scene-ids", "{scene}", *MODEL, "--overlap", "-8"],
         USAGE, ("--overlap", "at least 0")),
    Case("overlap-not-below-patch-size", [*RUN, "--scene-ids", "{scene}", *MODEL,
         "--patch-size", "256", "--overlap", "256"], USAGE, ("--overlap 256", "--patch-size 256")),
    Case("reflection-padding-negative", [*RUN, "--scene-ids", "{scene}", *MODEL,
         "--reflection-padding", "-1"], USAGE, ("--reflection-padding", "at least 0")),
    Case("mask-erosion-negative", [*RUN, "--scene-ids", "{scene}", *MODEL,
         "--mask-erosion-size", "-1"], USAGE, ("--mask-erosion-size", "at least 0")),
    Case("edge-erosion-negative", [*RUN, "--scene-ids", "{scene}", *MODEL,
         "--edge-erosion-size", "-2"], USAGE, ("--edge-erosion-size", "at least 0")),
    Case("tpi-outer-radius-zero", [*PREP, *TILE, "--aux", "--tpi-outer-radius", "0"], USAGE,
         ("--tpi-outer-radius", "greater than 0")),
    Case("tpi-inner-above-outer", [*PREP, *TILE, "--aux", "--tpi-inner-radius", "150"], USAGE,
         ("--tpi-inner-radius 150", "--tpi-outer-radius 100")),
    Case("arcticdem-resolution-5", [*PREP, *TILE, "--aux", "--arcticdem-resolution", "5"],
         USAGE, ("--arcticdem-resolution", "choose 2, 10 or 32")),
    Case("max-cloud-cover-101", [*PREP, *TILE, "--optical", "--max-cloud-cover", "101"],
         USAGE, ("--max-cloud-cover", "from 0 to 100")),
    Case("max-snow-cover-negative", [*PREP, *TILE, "--optical", "--max-snow-cover", "-1"],
         USAGE, ("--max-snow-cover", "from 0 to 100")),
    Case("month-13", [*PREP, *TILE, "--optical", "--months", "6", "13"], USAGE,
         ("--months", "'13'", "from 1 to 12")),
    Case("quarter-5", [*PREP, *TILE, "--optical", "--quarters", "5"], USAGE,
         ("--quarters", "from 1 to 4")),
    Case("year-before-sentinel-2", [*PREP, *TILE, "--optical", "--years", "1999"], USAGE,
         ("--years", "from 2015")),
    Case("date-not-a-day", [*PREP, *TILE, "--optical", "--start-date", "2024-02-30"], USAGE,
         ("--start-date", "'2024-02-30'", "YYYY-MM-DD")),
    Case("dates-reversed", [*PREP, *TILE, "--optical", "--start-date", "2024-06-01",
         "--end-date", "2024-05-01"], USAGE, ("--start-date 2024-06-01", "--end-date")),
    Case("unknown-source", [*PREP, *TILE, "--optical", "--raw-data-source", "sentinel-hub"],
         USAGE, ("invalid value 'sentinel-hub' for --raw-data-source",
                 "choose cdse, cdse-mosaic or gee")),
    Case("unknown-flag", [*PREP, *TILE, "--optical", "--max-clouds", "5"], USAGE,
         ("unknown option --max-clouds (did you mean --max-cloud-cover?)", "--help")),
    Case("sandbox-seed-negative", ["sandbox", "build", "--seed", "-1"], USAGE,
         ("--seed", "at least 0")),
    # -- config files --------------------------------------------------------------------
    Case("config-value-out-of-range", ["--config-file", "{tmp}/darts.toml", *PREP, *TILE,
         "--optical"], USAGE, ("darts.network.max-retries", "{tmp}/darts.toml", "at least 0"),
         prepare=_config("[darts.network]\nmax-retries = -1\n")),
    Case("config-value-wrong-type", ["--config-file", "{tmp}/darts.toml", *PREP, *TILE,
         "--optical"], USAGE, ("darts.request_timeout", "{tmp}/darts.toml", "a number"),
         prepare=_config('[darts]\nrequest_timeout = "soon"\n')),
    Case("config-command-table-threshold", ["--config-file", "{tmp}/darts.toml", *PREP, *TILE,
         "--optical"], USAGE,
         ("darts.inference.sentinel2-sequential.binarization-threshold", "from 0 to 1"),
         prepare=_config("[darts.inference.sentinel2-sequential]\n"
                         "binarization-threshold = 1.5\n")),
    Case("config-not-toml", ["--config-file", "{tmp}/darts.toml", *PREP, *TILE, "--optical"],
         USAGE, ("{tmp}/darts.toml", "not valid TOML"), prepare=_config("[darts\nx = 1\n")),
    Case("config-unknown-key", ["--config-file", "{tmp}/darts.toml", *PREP, *TILE,
         "--optical"], USAGE, ("darts.max-clouds", "{tmp}/darts.toml"),
         prepare=_config("[darts]\nmax-clouds = 5\n")),
    Case("config-missing", ["--config-file", "{tmp}/none.toml", *PREP, *TILE, "--optical"],
         USAGE, ("{tmp}/none.toml", "does not exist")),
    # -- what is selected ---------------------------------------------------------------
    Case("no-selection", [*PREP, "--optical"], USAGE, ("--scene-ids", "--tile-ids")),
    Case("two-selections", [*PREP, *TILE, "--scene-ids", "{scene}", "--optical"], USAGE,
         ("--scene-ids and --tile-ids",)),
    Case("malformed-scene-id", [*PREP, "--scene-ids", "S2B_MSIL2A_2024", "--optical"], USAGE,
         ("S2B_MSIL2A_2024", "--scene-ids")),
    Case("scene-id-file-missing", [*PREP, "--scene-id-file", "{tmp}/ids.json", "--optical"],
         USAGE, ("--scene-id-file", "{tmp}/ids.json", "does not exist")),
    Case("scene-id-file-garbage", [*PREP, "--scene-id-file", "{tmp}/ids.json", "--optical"],
         USAGE, ("--scene-id-file", "{tmp}/ids.json"),
         prepare=_file("ids.json", '["S2B_MSIL2A_20240715T2038", 17')),
    Case("nothing-to-stage", [*PREP, *TILE], USAGE, ("--optical", "--aux")),
    # -- areas of interest --------------------------------------------------------------
    Case("aoi-nan", [*PREP, "--aoi-file", "{tmp}/aoi.geojson", "--optical"], USAGE,
         ("--aoi-file", "{tmp}/aoi.geojson", "NaN"),
         prepare=_file("aoi.geojson", _aoi(_ring((-134, 69), (float("nan"), 69), (-133, 69.2))))),
    Case("aoi-infinite-projected", [*PREP, "--aoi-file", "{tmp}/aoi.geojson", "--optical"],
         USAGE, ("--aoi-file", "infinite"),
         prepare=_file("aoi.geojson", _aoi(_ring((0, 0), (float("inf"), 0), (1e5, 1e5)),
                                           "urn:ogc:def:crs:EPSG::3413"))),
    Case("aoi-off-the-globe", [*PREP, "--aoi-file", "{tmp}/aoi.geojson", "--optical"], USAGE,
         ("--aoi-file", "{tmp}/aoi.geojson", "outside longitude", "EPSG:3413"),
         prepare=_file("aoi.geojson", _aoi(_ring((-2.3e6, -9e4), (-2.2e6, -9e4),
                                                 (-2.2e6, -1e5))))),
    Case("aoi-empty", [*PREP, "--aoi-file", "{tmp}/aoi.geojson", "--optical"], USAGE,
         ("--aoi-file", "{tmp}/aoi.geojson", "no polygons"),
         prepare=_file("aoi.geojson", '{"type": "FeatureCollection", "features": []}')),
    Case("aoi-not-geojson", [*PREP, "--aoi-file", "{tmp}/aoi.geojson", "--optical"], USAGE,
         ("--aoi-file", "{tmp}/aoi.geojson", "cannot read"),
         prepare=_file("aoi.geojson", "thaw slumps near Herschel Island\n")),
    Case("aoi-points", [*PREP, "--aoi-file", "{tmp}/aoi.geojson", "--optical"], USAGE,
         ("--aoi-file", "Point", "must be polygons"),
         prepare=_file("aoi.geojson", _aoi({"type": "Point", "coordinates": [-134, 69]}))),
    Case("aoi-missing", [*PREP, "--aoi-file", "{tmp}/aoi.gpkg", "--optical"], USAGE,
         ("--aoi-file", "{tmp}/aoi.gpkg", "does not exist")),
    # -- model files --------------------------------------------------------------------
    Case("model-missing", [*RUN, "--scene-ids", "{scene}", "--model-files", "{tmp}/m.pt"],
         USAGE, ("{tmp}/m.pt", "does not exist")),
    Case("model-not-a-checkpoint", [*RUN, "--scene-ids", "{scene}", "--model-files",
         "{tmp}/m.pt"], USAGE, ("{tmp}/m.pt", "not a PyTorch checkpoint"),
         prepare=_file("m.pt", "these are not weights\n")),
    Case("model-truncated", [*RUN, "--scene-ids", "{scene}", "--model-files", "{tmp}/m.pt"],
         USAGE, ("{tmp}/m.pt", "damaged"), prepare=_checkpoint("m.pt", _truncated_model)),
    Case("model-unknown-layout", [*RUN, "--scene-ids", "{scene}", "--model-files",
         "{tmp}/m.pt"], USAGE, ("{tmp}/m.pt", "not a DARTS checkpoint"),
         prepare=_checkpoint("m.pt", _torch_save({"weights": [1.0, 2.0]}))),
    Case("model-a-folder", [*RUN, "--scene-ids", "{scene}", "--model-files", "{tmp}"], USAGE,
         ("{tmp}", "model file")),
    Case("model-none", [*RUN, "--scene-ids", "{scene}"], USAGE, ("--model-files",)),
    # -- network and credentials --------------------------------------------------------
    Case("stac-unreachable", [*PREP, *TILE, "--optical", "--cdse-stac-url", "{dead}/v1/",
         "--max-retries", "0"], NETWORK, ("{dead}/v1/", "catalogue", "run again")),
    Case("earth-engine-unreachable", [*PREP, *TILE, "--optical", "--raw-data-source", "gee",
         "--earth-engine-url", "{dead}", "--max-retries", "0"], NETWORK,
         ("{dead}", "gee catalogue", "run again")),
    Case("s3-profile-unknown", [*PREP, "--scene-ids", "{other}", "--optical", "--aws-profile",
         "nosuch"], USAGE, ("AWS profile 'nosuch'", "AWS_ACCESS_KEY_ID")),
    Case("s3-no-credentials", ["--config-file", "{tmp}/nokeys.toml", *PREP, "--scene-ids",
         "{other}", "--optical"], USAGE, ("No S3 credentials", "AWS_ACCESS_KEY_ID"),
         prepare=_sandbox_config_without_s3_keys),
    Case("s3-wrong-keys", ["--config-file", "{tmp}/nokeys.toml", *PREP, "--scene-ids",
         "{other}", "--optical", "--max-retries", "0"], USAGE,
         ("InvalidAccessKeyId", "keys from environment variables are wrong"),
         env={"AWS_ACCESS_KEY_ID": "AKIANOTTHESANDBOX", "AWS_SECRET_ACCESS_KEY": "wrong"},
         prepare=_sandbox_config_without_s3_keys),
    # -- staged data --------------------------------------------------------------------
    # A damaged commit record is not bad input: readiness lists it, prep-data stages the
    # scene again and an offline run refuses before any work (tests/test_damage_restaging.py).
    # -- the local disk -----------------------------------------------------------------
    Case("raw-data-store-is-a-file", [*PREP, "--scene-ids", "{other}", "--optical",
         "--raw-data-store", "{tmp}/afile"], STORAGE,
         ("raw-data store {tmp}/afile", "not a directory", "--raw-data-store"),
         prepare=_a_file_at("afile")),
    Case("data-dir-under-a-file", [*PREP, "--scene-ids", "{other}", "--optical",
         "--darts-dir", "{tmp}/afile/darts"], STORAGE,
         ("{tmp}/afile", "not a directory", "--darts-dir"), prepare=_a_file_at("afile")),
    Case("output-dir-under-a-file", [*RUN, "--scene-ids", "{scene}", *MODEL, "--offline",
         "--output-dir", "{tmp}/afile/out"], STORAGE,
         ("output folder {tmp}/afile/out", "not a directory", "--output-dir"),
         prepare=_a_file_at("afile")),
    Case("aux-cube-is-a-file", [*PREP, "--scene-ids", "{scene}", "--aux", "--tcvis-dir",
         "{tmp}/afile"], STORAGE, ("TCVIS datacube {tmp}/afile", "not a directory"),
         prepare=_a_file_at("afile")),
    Case("scene-id-file-out-under-a-file", [*PREP, *TILE, "--optical", "--dry-run",
         "--prep-data-scene-id-file", "{tmp}/afile/ids.json"], STORAGE,
         ("scene-id file", "{tmp}/afile", "--prep-data-scene-id-file"),
         prepare=_a_file_at("afile")),
    Case("report-file-a-folder", [*READY, "--scene-ids", "{scene}", "--report-file", "{tmp}"],
         STORAGE, ("report file {tmp}", "is a directory")),
    Case("log-file-a-folder", ["--log-file", "{tmp}", *PREP, *TILE, "--optical"], STORAGE,
         ("log file {tmp}", "is a directory")),
    Case("log-file-on-a-full-disk", ["--log-file", "/dev/full", *PREP, *TILE, "--optical"],
         STORAGE, ("log file /dev/full", "no space left")),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_line_and_leaves_the_caches(
    case: Case, ctx: Ctx, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if case.prepare is not None:
        case.prepare(ctx)
    for name, value in case.env.items():
        monkeypatch.setenv(name, ctx.fill(value))
    before = {path: tree_digest(path) for path in caches(ctx)}
    try:
        code = darts_main([ctx.fill(arg) for arg in case.argv])
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code
    _, err = capfd.readouterr()
    assert_one_line(err, code, case.code, [ctx.fill(word) for word in case.says])
    assert {path: tree_digest(path) for path in caches(ctx)} == before


def assert_one_line(err: str, code: object, expected: int, says: list[str]) -> None:
    lines = err.strip().splitlines()
    assert code == expected, err
    assert len(lines) == 1, err
    assert lines[0].startswith("darts: error: "), err
    assert "Traceback" not in err and "internal error" not in err
    for words in says:
        assert words in lines[0], f"{words!r} not in {lines[0]!r}"


def test_the_catalogue_is_large_and_names_its_cases_once() -> None:
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)


# --------------------------------------------------------------------------------------
# In a process of their own: the real script, a refusing disk.


def _darts_script(args: list[str], ctx: Ctx, preexec: Callable[[], None] | None = None):
    exe = Path(sys.executable).parent / "darts"
    return subprocess.run(
        [str(exe), *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=preexec,
    )


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG, as a
        # write to a full disk fails with ENOSPC.
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _without_root_override() -> Callable[[], None] | None:
    """A pre-exec hook that takes away what lets root write anywhere (CAP_DAC_OVERRIDE
    and friends, dropped from the bounding set, so the exec'd process lacks them); None
    when not root, where the permission bits already apply."""
    if os.geteuid() != 0:
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop = 24
    dac_override, dac_read_search, fowner = 1, 2, 3

    def drop() -> None:
        for capability in (dac_override, dac_read_search, fowner):
            if libc.prctl(pr_capbset_drop, capability, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")

    return drop


def _read_only(path: Path) -> None:
    for item in [path, *path.rglob("*")]:
        if not item.is_symlink():
            item.chmod(item.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _writable_again(path: Path) -> None:
    for item in [path, *path.rglob("*")]:
        if not item.is_symlink():
            item.chmod(item.stat().st_mode | stat.S_IWUSR)


def test_a_full_disk_while_staging_is_one_line_and_keeps_what_was_staged(ctx: Ctx) -> None:
    store = ctx.tmp / "store"
    shutil.copytree(ctx.data / "sentinel2" / "cdse", store)
    staged_entry = store / f"{ctx.scene}.zarr"
    before = tree_digest(staged_entry)
    args = [*PREP, "--scene-ids", ctx.other, "--optical", "--raw-data-store", str(store)]
    result = _darts_script(args, ctx, _limit_file_size(100_000))
    assert_one_line(
        result.stderr,
        result.returncode,
        STORAGE,
        [f"cannot store scene {ctx.other} in the raw-data store {store}", "file size limit"],
    )
    assert tree_digest(staged_entry) == before

    from darts.store.scenes import SceneStore

    assert SceneStore(store).stored_bands(ctx.other) == set()  # nothing half committed


def test_a_read_only_store_is_refused_before_any_download(ctx: Ctx) -> None:
    store = ctx.tmp / "store"
    shutil.copytree(ctx.data / "sentinel2" / "cdse", store)
    before = tree_digest(store)
    _read_only(store)
    try:
        args = [*PREP, "--scene-ids", ctx.other, "--optical", "--raw-data-store", str(store)]
        result = _darts_script(args, ctx, _without_root_override())
    finally:
        _writable_again(store)
    assert_one_line(
        result.stderr,
        result.returncode,
        STORAGE,
        [f"raw-data store {store} is not writable", "--raw-data-store"],
    )
    assert tree_digest(store) == before


def test_a_read_only_output_folder_is_refused_before_any_scene(ctx: Ctx) -> None:
    parent = ctx.tmp / "shared"
    parent.mkdir()
    _read_only(parent)
    before = {path: tree_digest(path) for path in caches(ctx)}
    try:
        args = [*RUN, "--scene-ids", ctx.scene, "--model-files", str(ctx.model), "--offline",
                "--output-dir", str(parent / "out")]  # fmt: skip
        result = _darts_script(args, ctx, _without_root_override())
    finally:
        _writable_again(parent)
    assert_one_line(
        result.stderr,
        result.returncode,
        STORAGE,
        [f"output folder {parent / 'out'} cannot be created: {parent} is not writable"],
    )
    assert {path: tree_digest(path) for path in caches(ctx)} == before
    assert not (parent / "out").exists()
