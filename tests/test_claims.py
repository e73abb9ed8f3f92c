"""Claims across processes: made once, released, a dead claimant's claim taken over
(same host at once, another host once its heartbeat stands still), a live one kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from darts.store.claims import Claimant, ClaimBoard, HeldClaim
from darts.store.liveness import is_alive, process_start


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid  # reaped: no process has this id now (reuse is vanishingly rare)


def _plant(board: ClaimBoard, key: str, claimant: Claimant) -> Path:
    """A claim file as another process would have left it."""
    path = board.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(claimant.to_json())
    return path


def test_one_claim_per_key_until_released(tmp_path: Path) -> None:
    board = ClaimBoard(tmp_path / "claims")
    first = board.try_claim("40_18")
    assert isinstance(first, HeldClaim)
    # Anyone else (another thread or process alike) finds the live claimant.
    second = board.try_claim("40_18")
    assert isinstance(second, Claimant) and second.pid == os.getpid()
    assert second == first.claimant
    assert isinstance(board.try_claim("40_19"), HeldClaim)  # other keys are free
    first.release()
    assert not board.path("40_18").exists()
    third = board.try_claim("40_18")
    assert isinstance(third, HeldClaim) and third.claimant.token != first.claimant.token
    third.release()
    # No temporary file is left behind.
    assert sorted(p.name for p in board.root.iterdir()) == ["40_19.claim"]


def test_a_claim_names_its_claimant(tmp_path: Path) -> None:
    board = ClaimBoard(tmp_path)
    with board.try_claim("t") as claim:  # type: ignore[union-attr]
        written = json.loads(board.path("t").read_text())
        assert written["pid"] == os.getpid() and written["token"] == claim.claimant.token
        assert written["start"] == process_start(os.getpid())
        assert f"process {os.getpid()} on " in claim.claimant.describe()
    assert not board.path("t").exists()


def test_a_dead_claimant_of_this_host_is_taken_over_at_once(tmp_path: Path) -> None:
    board = ClaimBoard(tmp_path)
    me = Claimant.me()
    _plant(board, "t", replace(me, pid=_dead_pid(), token="dead"))
    claim = board.try_claim("t")
    assert isinstance(claim, HeldClaim)
    assert json.loads(board.path("t").read_text())["pid"] == os.getpid()
    claim.release()


def test_a_reused_process_id_is_not_the_claimant(tmp_path: Path) -> None:
    # Our own pid, but a process start time that is not ours: the claimant is gone.
    me = Claimant.me()
    assert me.start is not None
    assert not is_alive(os.getpid(), me.start + 1)
    board = ClaimBoard(tmp_path)
    _plant(board, "t", replace(me, start=me.start + 1, token="old"))
    assert isinstance(board.try_claim("t"), HeldClaim)


def test_another_hosts_claim_is_kept_while_its_heartbeat_moves(tmp_path: Path) -> None:
    board = ClaimBoard(tmp_path, stale_after_s=0.4)
    remote = replace(Claimant.me(), host="node-elsewhere.example", pid=1, token="remote")
    path = _plant(board, "t", remote)
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        # Its claimant touches the claim, as a live process elsewhere would.
        os.utime(path, ns=(time.time_ns(), time.time_ns()))
        assert board.try_claim("t") == remote
        time.sleep(0.1)
    # Then its heartbeat stands still: abandoned once stale_after_s has passed here.
    assert board.try_claim("t") == remote
    time.sleep(0.5)
    taken = board.try_claim("t")
    assert isinstance(taken, HeldClaim)
    taken.release()


def test_an_unreadable_claim_is_taken_over_once_it_stands_still(tmp_path: Path) -> None:
    board = ClaimBoard(tmp_path, stale_after_s=0.2)
    board.path("t").write_text("")  # a claim being written, or damaged
    assert isinstance(board.try_claim("t"), Claimant)
    time.sleep(0.3)
    assert isinstance(board.try_claim("t"), HeldClaim)


def test_the_heartbeat_touches_the_claim(tmp_path: Path) -> None:
    board = ClaimBoard(tmp_path, heartbeat_s=0.05)
    claim = board.try_claim("t")
    assert isinstance(claim, HeldClaim)
    path = board.path("t")
    os.utime(path, (0, 0))
    time.sleep(0.3)
    assert path.stat().st_mtime > 1e9
    claim.release()


def test_releasing_a_claim_taken_over_leaves_the_new_claimants_alone(tmp_path: Path) -> None:
    board = ClaimBoard(tmp_path)
    claim = board.try_claim("t")
    assert isinstance(claim, HeldClaim)
    newer = replace(Claimant.me(), pid=os.getppid(), token="newer")
    _plant(board, "t", newer)  # another process took it over meanwhile
    claim.release()
    assert json.loads(board.path("t").read_text())["token"] == "newer"


def test_sweeping_removes_only_dead_claimants_of_this_host(tmp_path: Path) -> None:
    board = ClaimBoard(tmp_path, stale_after_s=0.0)
    me = Claimant.me()
    dead = _plant(board, "dead", replace(me, pid=_dead_pid(), start=None, token="d"))
    live = _plant(board, "live", replace(me, pid=os.getppid(), start=None, token="l"))
    remote = _plant(board, "remote", replace(me, host="elsewhere.example", token="r"))
    leftover = board.root / "x.claim.0123.tmp"  # a claim never made
    leftover.write_text("{}")
    os.utime(leftover, (1, 1))
    assert sorted(board.remove_dead()) == sorted([dead, leftover])
    assert live.exists() and remote.exists()


def test_a_claim_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    board = ClaimBoard(tmp_path)
    script = (
        "import sys, time\n"
        "from darts.store.claims import ClaimBoard\n"
        f"claim = ClaimBoard({str(tmp_path)!r}).try_claim('t')\n"
        "print(type(claim).__name__, flush=True)\n"
        "time.sleep(600)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "HeldClaim"
        holder = board.try_claim("t")
        assert isinstance(holder, Claimant) and holder.pid == child.pid  # alive: kept
    finally:
        child.kill()
        child.wait()
    claim = board.try_claim("t")
    assert isinstance(claim, HeldClaim)
    claim.release()
