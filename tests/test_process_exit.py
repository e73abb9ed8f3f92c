"""The ``darts`` script ends its process itself (`darts.process_exit`): the exit code is
the command's, and everything the interpreter's own exit would do that matters outside
the process still happens — exit handlers, logging's flush, buffered output."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def _run(body: str, tmp_path: Path) -> subprocess.CompletedProcess:
    script = textwrap.dedent(
        """
        import atexit, logging, sys
        from darts.process_exit import run_then_exit
        """
    ) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )


@pytest.mark.parametrize(("returned", "code"), [("0", 0), ("3", 3), ("None", 0), ("70", 70)])
def test_the_exit_code_is_what_main_returned(tmp_path: Path, returned: str, code: int) -> None:
    result = _run(f"run_then_exit(lambda: {returned})", tmp_path)
    assert result.returncode == code, result.stderr


def test_output_without_a_newline_and_exit_handlers_are_not_lost(tmp_path: Path) -> None:
    result = _run(
        """
        def main():
            atexit.register(lambda: print("handler ran", file=sys.stderr))
            sys.stdout.write("no newline, still buffered")
            return 4
        run_then_exit(main)
        """,
        tmp_path,
    )
    assert result.returncode == 4
    assert result.stdout == "no newline, still buffered"
    assert result.stderr == "handler ran\n"


def test_buffered_log_records_are_written(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    result = _run(
        f"""
        import logging.handlers
        def main():
            # Holds records until it is closed, which logging's shutdown does.
            handler = logging.handlers.MemoryHandler(100, target=logging.FileHandler({str(log)!r}))
            logging.getLogger().addHandler(handler)
            logging.getLogger().warning("the last line")
            return 0
        run_then_exit(main)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert log.read_text() == "the last line\n"


def test_sys_exit_inside_main_keeps_its_code_and_message(tmp_path: Path) -> None:
    assert _run("run_then_exit(lambda: sys.exit(5))", tmp_path).returncode == 5
    result = _run("run_then_exit(lambda: sys.exit('no such thing'))", tmp_path)
    assert result.returncode == 1
    assert result.stderr == "no such thing\n"


def test_an_escaping_exception_prints_its_traceback_and_exits_with_1(tmp_path: Path) -> None:
    result = _run(
        """
        def main():
            raise ValueError("boom")
        run_then_exit(main)
        """,
        tmp_path,
    )
    assert result.returncode == 1
    assert "ValueError: boom" in result.stderr


def test_the_console_script_is_the_one_that_ends_the_process_itself() -> None:
    """`python -m darts` and the installed script go through `compat.script`."""
    result = subprocess.run(
        [sys.executable, "-m", "darts", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
