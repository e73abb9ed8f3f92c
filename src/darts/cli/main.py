"""The ``darts`` entry point: parse, resolve settings, run one command, map errors to
exit codes. Commands themselves live in sibling modules and stay thin."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from darts.cli.commands import ALL_COMMANDS, GROUP_HELP
from darts.cli.parser import CommandContext, build_parser
from darts.errors import DartsError
from darts.settings.resolve import Resolved, read_config_file, resolve

log = logging.getLogger("darts")


def _setup_logging(verbosity: int, debug: bool, log_file: os.PathLike | None) -> None:
    level = (
        logging.DEBUG if debug or verbosity >= 2 else logging.INFO if verbosity else logging.WARNING
    )
    root = logging.getLogger()
    root.handlers.clear()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    console.setLevel(level)
    root.addHandler(console)
    root.setLevel(logging.DEBUG if log_file else level)
    if log_file:
        handler = logging.FileHandler(log_file)
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
    from darts.settings.commands import ALL_SPECS

    all_specs = list(ALL_SPECS)
    return resolve(args._command.spec, flags, os.environ, config, all_specs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(ALL_COMMANDS, GROUP_HELP)
    args = parser.parse_args(argv)
    debug = bool(args.debug)
    try:
        _setup_logging(args.verbose, debug, args.log_file)
        command = args._command
        if command is None:
            args._parser.print_help(sys.stderr)
            return 2
        settings = resolve_command(args)
        context = CommandContext(command, settings, debug=debug, verbosity=args.verbose)
        return command.handler(context)
    except DartsError as exc:
        if debug:
            raise
        print(f"darts: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # Output piped into `head` and the like: not an error worth a message.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("darts: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        log.debug("unexpected error", exc_info=True)
        print(
            f"darts: internal error: {type(exc).__name__}: {exc} "
            "(this is a bug; run again with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
