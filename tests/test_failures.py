"""How a failure ends the command: which errors are the user's (one line, a documented
exit code), which are the disk's, and which are bugs (never dressed up as either)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from darts.cli.failures import explain
from darts.errors import EXIT_NETWORK, EXIT_STORAGE, EXIT_USAGE, ConfigError, StorageError
from darts.net.errors import CredentialsError, NetworkError, OfflineError, RemoteError
from darts.store.disk import check_writable_dir, check_writable_file, disk_problem
from darts.store.errors import StoreError


def _raised_from(error: BaseException, cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise error from inner
    except BaseException as outer:
        return outer


@pytest.mark.parametrize(
    ("error", "code", "says"),
    [
        (ConfigError("--x: bad"), EXIT_USAGE, "--x: bad"),
        (StorageError("full"), EXIT_STORAGE, "full"),
        (CredentialsError("no keys"), EXIT_USAGE, "no keys"),
        (OfflineError("http://h/x", "the index"), EXIT_USAGE, "prep-data"),
        (NetworkError("GET http://h/ failed", attempts=3), EXIT_NETWORK, "run again"),
        (RemoteError(503, "http://h/a\nb"), EXIT_NETWORK, "HTTP 503"),
        (StoreError("commit record x is unreadable"), EXIT_USAGE, "unreadable"),
        (OSError(errno.ENOSPC, "No space left on device", "/d/f"), EXIT_STORAGE,
         "cannot use /d/f: no space left"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), EXIT_STORAGE, "quota"),
        (PermissionError(errno.EACCES, "Permission denied", "/ro/x"), EXIT_STORAGE,
         "/ro/x: permission denied"),
        (OSError(errno.EROFS, "Read-only file system", "/ro"), EXIT_STORAGE, "read-only"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/f/x"), EXIT_STORAGE,
         "not a directory"),
        # Libraries that wrap the OS error in their own type or text.
        (_raised_from(RuntimeError("write failed"), OSError(errno.EFBIG, "File too large")),
         EXIT_STORAGE, "file size limit"),
        (RuntimeError("Unable to copy data to file: File too large (os error 27)"),
         EXIT_STORAGE, "file size limit"),
        (ValueError("sqlite3_exec failed: database or disk is full"), EXIT_STORAGE, "no space"),
    ],
)  # fmt: skip
def test_predictable_failures_are_one_line_with_their_code(error, code, says) -> None:
    explained = explain(error)
    assert explained is not None
    message, exit_code = explained
    assert exit_code == code
    assert says in message and "\n" not in message


@pytest.mark.parametrize(
    "error",
    [
        KeyError("bands"),
        ValueError("operands could not be broadcast together"),
        RuntimeError("unexpected state"),
        FileNotFoundError(errno.ENOENT, "No such file or directory", "/x"),  # a path bug
        # A bug while handling a full disk is still a bug.
        _raised_from(TypeError("'NoneType' object is not iterable"), OSError(errno.ENOSPC, "x")),
        _raised_from(AttributeError("no attribute 'root'"), OSError(errno.EACCES, "x")),
    ],
)
def test_bugs_are_not_explained_away(error) -> None:
    assert explain(error) is None


def test_a_network_error_is_not_read_as_the_disk() -> None:
    # "[Errno 13]" in a connection error is the network's, not the local disk's.
    error = NetworkError("GET http://h/ failed: [Errno 13] Permission denied")
    explained = explain(error)
    assert explained is not None and explained[1] == EXIT_NETWORK


def test_disk_problem_keeps_the_path() -> None:
    problem = disk_problem(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/a.zarr/c/0"))
    assert problem is not None and problem.path == "/data/a.zarr/c/0"
    assert problem.message("scene S") == (
        "scene S (/data/a.zarr/c/0): no space left on the device; " + problem.hint
    )


def test_writable_checks_create_nothing_and_name_the_blocker(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    check_writable_dir(tmp_path / "new" / "deeper", "output folder")  # creatable: fine
    assert not (tmp_path / "new").exists()
    with pytest.raises(StorageError, match=f"output folder {blocker} is a file, not a dir"):
        check_writable_dir(blocker, "output folder")
    with pytest.raises(StorageError, match=f"cannot be created: {blocker} is a file"):
        check_writable_dir(blocker / "out", "output folder", "set by --output-dir")
    with pytest.raises(StorageError, match="is a directory"):
        check_writable_file(tmp_path, "report file")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(StorageError, match="broken symbolic link"):
        check_writable_dir(tmp_path / "link" / "x", "raw-data store")
    check_writable_file(Path("/dev/null"), "log file", in_place=True)


def test_a_log_file_whose_disk_fills_up_says_so_once(tmp_path: Path, capsys) -> None:
    import logging

    from darts.cli.main import _LogFile

    class FullDisk:
        def write(self, text: str) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def flush(self) -> None:
            pass

    handler = _LogFile(tmp_path / "darts.log")
    handler.stream.close()
    handler.stream = FullDisk()
    logger = logging.getLogger("darts.test.full-log")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for n in range(3):
            logger.warning("record %d", n)
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"darts: warning: log file {tmp_path / 'darts.log'}: no space left")
