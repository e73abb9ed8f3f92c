"""`darts sandbox serve` as a user runs it: a process, a config file, real clients."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pystac_client
import requests

from darts.cli.main import main
from darts.sandbox.layout import WorldLayout
from darts.settings.resolve import read_config_file


def test_serve_writes_a_working_config_and_stops_cleanly(
    sandbox_world: WorldLayout, tmp_path: Path, loopback_only
) -> None:
    config_out = tmp_path / "sandbox.toml"
    faults = tmp_path / "faults.toml"
    faults.write_text("[all]\nlatency_ms = 5\n[s3]\nerror_rate = 0.25\nretry_after_s = 1\n")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "darts.cli.main",
            "sandbox",
            "serve",
            "--root",
            str(sandbox_world.root.parent),
            "--config-out",
            str(config_out),
            "--faults-file",
            str(faults),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Ctrl-C as at a terminal: a test run that a non-interactive shell started in
        # the background inherits SIGINT ignored, and the server would too.
        preexec_fn=_default_sigint,
    )
    try:
        started = time.monotonic()
        while not config_out.exists():
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() - started < 60, "sandbox did not come up within 60 s"
            time.sleep(0.1)
        endpoints = read_config_file(config_out).table["endpoints"]
        for url in endpoints.values():
            if url.startswith("http"):
                assert url.startswith("http://127.0.0.1:")
        manifest = json.loads(sandbox_world.manifest.read_text())
        tile = manifest["main_tile"]
        client = pystac_client.Client.open(endpoints["cdse-stac-url"])
        found = list(
            client.search(
                collections=["sentinel-2-l2a"],
                filter={"op": "=", "args": [{"property": "grid:code"}, f"MGRS-{tile}"]},
                filter_lang="cql2-json",
            ).items_as_dicts()
        )
        assert sorted(i["id"] for i in found) == sorted(
            s["id"] for s in manifest["scenes"] if s["tile"] == tile
        )
        s3_faults = requests.get(endpoints["cdse-s3-endpoint"] + "/_sandbox/faults", timeout=5)
        assert s3_faults.json()["error_rate"] == 0.25
        assert s3_faults.json()["latency_ms"] == 5
        stac_faults = requests.get(
            endpoints["cdse-stac-url"].removesuffix("/v1/") + "/_sandbox/faults", timeout=5
        )
        assert stac_faults.json()["error_rate"] == 0
        credentials = Path(endpoints["aws-credentials-file"]).read_text()
        assert endpoints["aws-profile"] in credentials
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "sandbox stopped" in output
    assert "secret" not in output


def test_unknown_fault_table_is_a_clear_error(tmp_path: Path, capsys) -> None:
    faults = tmp_path / "faults.toml"
    faults.write_text("[s4]\nerror_rate = 0.5\n")
    code = main(["sandbox", "serve", "--root", str(tmp_path), "--faults-file", str(faults)])
    err = capsys.readouterr().err
    assert code == 2
    assert "s4" in err and str(faults) in err
    assert not any(tmp_path.glob("small-*")), "nothing may be built for a bad request"


def test_selftest_passes_on_the_small_world(sandbox_world: WorldLayout, capsys) -> None:
    code = main(["sandbox", "selftest", "--root", str(sandbox_world.root.parent)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "FAIL" not in out
    assert "9 passed, 0 failed" in out
    assert "Earth Engine token exchange" in out


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
