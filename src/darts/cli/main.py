"""The ``darts`` entry point: parse, resolve settings, run one command, map errors to
exit codes (`darts.cli.failures`). Commands themselves live in sibling modules and stay
thin."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from darts import __version__
from darts.cli.commands import ALL_COMMANDS, GROUP_HELP
from darts.cli.failures import explain
from darts.cli.parser import SPELLINGS, CommandContext, build_parser
from darts.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, StorageError
from darts.settings.resolve import Resolved, read_config_file, resolve

log = logging.getLogger("darts")


class _LogFile(logging.FileHandler):
    """A log file that, once its disk refuses a write, says so in one line and stops,
    instead of logging's traceback for every later record."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        if self.failed:
            return
        self.failed = True
        from darts.store.disk import disk_problem

        error = sys.exc_info()[1]
        problem = disk_problem(error) if error is not None else None
        reason = problem.reason if problem else f"{type(error).__name__}: {error}"
        message = f"log file {self.baseFilename}: {reason}; not logging to it any more"
        print(f"darts: warning: {message}", file=sys.stderr)


def _open_log_file(path: Path, set_by: str) -> logging.Handler:
    """The log file's handler, after one line written and flushed to it: a path that
    cannot take the log (a directory, a full or read-only disk) stops the command
    before it starts, with one line."""
    from darts.store.disk import check_writable_file, disk_problem

    check_writable_file(path, "log file", set_by, in_place=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        # A folder the checks could not foresee refusing (a special file system).
        raise StorageError(
            f"the folder of the log file {path} cannot be created ({set_by}): "
            f"{error.strerror or error}; choose another folder"
        ) from None
    try:
        handler = logging.FileHandler(path)
        handler.stream.write(f"--- darts {__version__}: {' '.join(sys.argv[1:])}\n")
        handler.stream.flush()
    except OSError as error:
        problem = disk_problem(error)
        if problem is None:
            raise
        raise StorageError(problem.message(f"log file {path}")) from None
    handler.close()
    return _LogFile(path)


def _show_warnings_in_log(record: logging.LogRecord) -> bool:
    """Python warnings (mostly libraries' RuntimeWarnings) reach the console only with
    -v: without it, stderr holds DARTS's own messages, an error in one line."""
    return record.name != "py.warnings"


def _log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    logging.getLogger("py.warnings").warning(
        "%s", warnings.formatwarning(message, category, filename, lineno, line).strip()
    )


def _log_file_of(args: argparse.Namespace) -> tuple[Path | None, str]:
    """``--log-file``, else a new file in ``--log-dir`` (flag or ``DARTS_LOG_DIR``),
    else None; and what set it, for messages. Read before the config file, so only
    from those places."""
    if args.log_file:
        return Path(args.log_file), "set by --log-file"
    from darts.settings.resolve import CommandSpec
    from darts.settings.sections import GLOBAL_SECTIONS, Logging

    flags = {k: v for k, v in vars(args).items() if k.startswith("logging__")}
    early = resolve(CommandSpec(("global",), GLOBAL_SECTIONS), flags, os.environ, None, [])
    log_dir = early.get(Logging).log_dir
    if log_dir is None:
        return None, ""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    origin = early.origin_of(Logging, "log_dir")
    return log_dir / f"darts-{stamp}-{os.getpid()}.log", f"in the log folder set by {origin}"


def _setup_logging(
    verbosity: int, debug: bool, log_file: os.PathLike | None, set_by: str = "set by --log-file"
) -> None:
    level = (
        logging.DEBUG if debug or verbosity >= 2 else logging.INFO if verbosity else logging.WARNING
    )
    root = logging.getLogger()
    root.handlers.clear()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    console.setLevel(level)
    if not verbosity and not debug:
        console.addFilter(_show_warnings_in_log)
    root.addHandler(console)
    root.setLevel(logging.DEBUG if log_file else level)
    if log_file:
        handler = _open_log_file(Path(log_file), set_by)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.DEBUG)
        root.addHandler(handler)
    # Libraries we call are chatty at INFO; our own -v should not drown in them.
    for noisy in ("botocore", "boto3", "urllib3", "rasterio", "werkzeug", "moto"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def resolve_command(args: argparse.Namespace) -> Resolved:
    """The settings of the parsed command: flags, environment, config file, defaults."""
    config_path = args.config_file or os.environ.get("DARTS_CONFIG_FILE") or None
    config = read_config_file(config_path) if config_path else None
    flags = {k: v for k, v in vars(args).items() if "__" in k}
    spellings = getattr(args, SPELLINGS, None) or {}
    from darts.settings.commands import ALL_SPECS

    all_specs = list(ALL_SPECS)
    return resolve(args._command.spec, flags, os.environ, config, all_specs, spellings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(ALL_COMMANDS, GROUP_HELP)
    args = parser.parse_args(argv)
    debug = bool(args.debug)
    # Library warnings go to the log (see _show_warnings_in_log); restored on return,
    # so a caller's own warning filters (pytest's) are left as they were.
    with warnings.catch_warnings():
        warnings.showwarning = _log_warning
        return _run(args, debug)


def _run(args: argparse.Namespace, debug: bool) -> int:
    try:
        log_file, set_by = _log_file_of(args)
        _setup_logging(args.verbose, debug, log_file, set_by)
        command = args._command
        if command is None:
            args._parser.print_help(sys.stderr)
            return 2
        settings = resolve_command(args)
        for note in settings.notes:
            print(f"note: {note}", file=sys.stderr)
        context = CommandContext(command, settings, debug=debug, verbosity=args.verbose)
        return command.handler(context)
    except BrokenPipeError:
        # Output piped into `head` and the like: not an error worth a message.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("darts: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        explained = explain(exc)
        if explained is not None:
            message, code = explained
            log.debug("failed", exc_info=True)
            print(f"darts: error: {message}", file=sys.stderr)
            return code
        log.debug("unexpected error", exc_info=True)
        print(
            f"darts: internal error: {type(exc).__name__}: {' '.join(str(exc).split())} "
            "(this is a bug; run again with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    # `python -m darts.cli.main` gets what the `darts` script does: the extras check.
    from darts.compat import script

    script()
