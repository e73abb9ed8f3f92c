"""Building the argparse tree from command declarations.

Each option is added once with both spellings (``--pipeline.scene-ids`` and
``--scene-ids``). Nothing gets an argparse default: an option absent from the parsed
namespace was not given, which is what lets flags take precedence over the environment
and the config file only when they are really there.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from darts import __version__
from darts.settings.options import OptionSpec
from darts.settings.resolve import CommandSpec

Handler = Callable[["CommandContext"], int]


@dataclass(frozen=True)
class Command:
    spec: CommandSpec
    help: str
    handler: Handler
    description: str = ""


@dataclass
class CommandContext:
    command: Command
    settings: object  # darts.settings.resolve.Resolved; typed loosely to avoid a cycle
    debug: bool
    verbosity: int


def _add_global_options(parser: argparse.ArgumentParser, top: bool) -> None:
    # Globals are accepted before and after the sub-command words; SUPPRESS keeps a
    # sub-parser from overwriting a value given earlier on the line.
    default = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("global options")
    group.add_argument(
        "--config-file",
        type=Path,
        default=default,
        metavar="PATH",
        help="TOML config file (also: DARTS_CONFIG_FILE)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if top else argparse.SUPPRESS,
        help="more log output (-vv for debug messages)",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="show tracebacks and debug logs",
    )
    group.add_argument(
        "--log-file", type=Path, default=default, metavar="PATH", help="also log to this file"
    )


def _add_option(group: argparse._ArgumentGroup, spec: OptionSpec) -> None:
    names = [f"--{spec.dotted}", f"--{spec.name}"]
    help_text = spec.info.help
    if spec.info.env:
        help_text += f" [env: {', '.join(spec.info.env)}]"
    if spec.is_flag:
        group.add_argument(
            *names,
            dest=spec.dest,
            action="store_const",
            const=True,
            default=argparse.SUPPRESS,
            help=help_text,
        )
        if spec.info.negatable:
            group.add_argument(
                f"--{spec.section}.no-{spec.name}",
                f"--no-{spec.name}",
                dest=spec.dest,
                action="store_const",
                const=False,
                default=argparse.SUPPRESS,
                help=f"turn off --{spec.name}",
            )
        return
    kwargs: dict[str, object] = {
        "dest": spec.dest,
        "default": argparse.SUPPRESS,
        "help": help_text,
        "metavar": spec.info.metavar or spec.name.split("-")[-1].upper(),
    }
    if spec.info.choices:
        kwargs["choices"] = spec.info.choices
        kwargs["metavar"] = "{" + ",".join(spec.info.choices) + "}"
    if spec.is_list:
        # `--tile-ids A B` and `--tile-ids A --tile-ids B` both give [A, B].
        kwargs["nargs"] = "+"
        kwargs["action"] = "extend"
    group.add_argument(*names, **kwargs)  # type: ignore[arg-type]


def build_parser(commands: Sequence[Command], group_help: dict[tuple[str, ...], str]):
    parser = argparse.ArgumentParser(
        prog="darts",
        description="Map retrogressive thaw slumps from Sentinel-2, ArcticDEM and TCVIS.",
    )
    parser.add_argument("--version", action="version", version=f"darts {__version__}")
    _add_global_options(parser, top=True)
    parser.set_defaults(_command=None, _parser=parser)

    subparsers: dict[tuple[str, ...], argparse._SubParsersAction] = {}
    parsers: dict[tuple[str, ...], argparse.ArgumentParser] = {(): parser}

    def parser_for(path: tuple[str, ...], help_text: str = "") -> argparse.ArgumentParser:
        if path in parsers:
            return parsers[path]
        parent = parser_for(path[:-1], group_help.get(path[:-1], ""))
        if path[:-1] not in subparsers:
            subparsers[path[:-1]] = parent.add_subparsers(title="commands", metavar="COMMAND")
        sub = subparsers[path[:-1]].add_parser(path[-1], help=help_text, description=help_text)
        sub.set_defaults(_parser=sub)
        parsers[path] = sub
        return sub

    for path, text in group_help.items():
        parser_for(path, text)
    for command in commands:
        sub = parser_for(command.spec.path, command.help)
        sub.description = command.description or command.help
        # argparse's generated usage would list every option twice over; --help does.
        sub.usage = f"darts {' '.join(command.spec.path)} [options]"
        sub.set_defaults(_command=command)
        by_section: dict[str, argparse._ArgumentGroup] = {}
        for spec in command.spec.options():
            if spec.section not in by_section:
                by_section[spec.section] = sub.add_argument_group(f"{spec.section} options")
            _add_option(by_section[spec.section], spec)
        _add_global_options(sub, top=False)
    return parser
