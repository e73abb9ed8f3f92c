"""Building the argparse tree from command declarations.

Each option is added once with all its spellings: the flat name (``--scene-ids``), the
dotted one (``--pipeline.scene-ids``) and the same for each alias (``--output-data-dir``
for ``--output-dir``); ``--help`` shows the flat name only, with the option's default
and environment variable. Nothing gets an argparse default: an option absent from the
parsed namespace was not given, which is what lets flags take precedence over the
environment and the config file only when they are really there. The spelling actually
used is recorded (``SPELLINGS``), so a refused value is reported under the name the user
typed. A usage error is one line, like every other error of the ``darts`` command, and
an unknown flag gets the closest known one as a suggestion.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from darts import __version__
from darts.settings.options import OptionSpec, specs_of
from darts.settings.resolve import CommandSpec
from darts.settings.suggest import did_you_mean

Handler = Callable[["CommandContext"], int]

# Namespace attribute: {dest: the option string the user typed}.
SPELLINGS = "_spellings"


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, with one spelling per option and text that never breaks inside
    a word: ids, paths and flags wrap as a whole, and indented lines (the examples) are
    printed as written."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        shown = getattr(action, "shown", None) or action.option_strings
        if not shown:
            return super()._format_action_invocation(action)
        if action.nargs == 0:
            return ", ".join(shown)
        args = self._format_args(action, self._get_default_metavar_for_optional(action))
        return ", ".join(f"{flag} {args}" for flag in shown)

    def _split_lines(self, text: str, width: int) -> list[str]:
        text = self._whitespace_matcher.sub(" ", text).strip()
        return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines: list[str] = []
        paragraph: list[str] = []

        def flush() -> None:
            if paragraph:
                lines.extend(
                    textwrap.wrap(
                        " ".join(paragraph),
                        width,
                        initial_indent=indent,
                        subsequent_indent=indent,
                        break_long_words=False,
                        break_on_hyphens=False,
                    )
                )
                paragraph.clear()

        for line in text.splitlines():
            if line.startswith(" ") or not line.strip():
                flush()
                lines.append(indent + line if line.strip() else "")
            else:
                paragraph.append(line.strip())
        flush()
        return "\n".join(lines)


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (argparse prints the whole usage
    first, which for these commands buries the one line that matters), and unknown
    flags answered with the closest known one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        # No abbreviations: with them, adding an option (or an alias) can break a
        # command line that worked, and a typo is better met by a suggestion.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        # Set on the top parser: flag → the commands that take it (for hints).
        self.commands_of_flag: dict[str, list[str]] = {}

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"darts: error: {_clearer(message)}; see `{self.prog} --help`\n")

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        words = list(sys.argv[1:] if args is None else args)
        self._check_before_command(words)
        parsed, extras = self.parse_known_args(words, namespace)
        if extras:
            target = getattr(parsed, "_parser", None) or self
            target.error(self._unknown(extras, target))
        return parsed

    def _check_before_command(self, words: Sequence[str]) -> None:
        """A command's option before the command words would be read by argparse as
        the command (``darts --output-dir x debug-paths``: "unknown command 'x'");
        say where it goes instead."""
        index = 0
        while index < len(words) and words[index].startswith("-"):
            flag = words[index].split("=", 1)[0]
            action = self._option_string_actions.get(flag)
            if action is None:
                others = self.commands_of_flag.get(flag)
                if others:
                    self.error(
                        f"{flag} is an option of `darts {others[0]}`"
                        f"{' and others' if len(others) > 1 else ''}: put it after the "
                        "command words"
                    )
                known = [*self._option_string_actions, *self.commands_of_flag]
                self.error(f"unknown option {flag}{did_you_mean(flag, known)}")
            takes_value = action.nargs is None and "=" not in words[index]
            index += 2 if takes_value else 1

    def _unknown(self, extras: Sequence[str], target: argparse.ArgumentParser) -> str:
        flags = [word for word in extras if word.startswith("-")]
        if not flags:
            return f"unexpected argument {extras[0]!r} (values follow their option)"
        flag = flags[0].split("=", 1)[0]
        known = [s for s in target._option_string_actions if s.startswith("--")]
        others = self.commands_of_flag.get(flag, [])
        if others:
            elsewhere = ", ".join(f"`darts {c}`" for c in others)
            return f"{flag} is not an option of `{target.prog}` (it is one of {elsewhere})"
        return f"unknown option {flag}{did_you_mean(flag, known)}"


def _clearer(message: str) -> str:
    """argparse's messages with an option named once (it joins every spelling with
    "/"), and a misspelt command word answered with the closest one."""
    message = re.sub(r"argument (-[^\s/:]+)(?:/-[^\s:]+)*:", r"option \1:", message)
    choice = re.match(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)$", message)
    if choice:
        word, listed = choice.group(2), re.findall(r"'([^']*)'", choice.group(3))
        message = f"unknown command word {word!r}{did_you_mean(word, listed)}; choose from " + (
            ", ".join(listed)
        )
    return message


def _spelled(base: type[argparse.Action]) -> type[argparse.Action]:
    """``base``, also remembering which option string was used."""

    class Spelled(base):  # type: ignore[valid-type, misc]
        def __call__(
            self,
            parser: argparse.ArgumentParser,
            namespace: argparse.Namespace,
            values: Any,
            option_string: str | None = None,
        ) -> None:
            super().__call__(parser, namespace, values, option_string)
            spellings = dict(getattr(namespace, SPELLINGS, None) or {})
            spellings[self.dest] = option_string
            setattr(namespace, SPELLINGS, spellings)

    return Spelled


# argparse's own actions behind "store", "store_const" and "extend".
_STORE = _spelled(argparse._StoreAction)
_STORE_CONST = _spelled(argparse._StoreConstAction)
_EXTEND = _spelled(argparse._ExtendAction)


@dataclass(frozen=True)
class Command:
    spec: CommandSpec
    help: str
    handler: Handler
    description: str = ""
    # The field of an option that may also be given as the command's one argument
    # (`darts cache import FROM` is `--archive FROM`).
    positional: str | None = None
    # Command lines shown under "examples:" in --help, as written (never wrapped); a
    # test parses each with the real parser.
    examples: tuple[str, ...] = ()


@dataclass
class CommandContext:
    command: Command
    settings: object  # darts.settings.resolve.Resolved; typed loosely to avoid a cycle
    debug: bool
    verbosity: int


def _global_specs() -> list[OptionSpec]:
    from darts.settings.sections import GLOBAL_SECTIONS

    return [spec for section in GLOBAL_SECTIONS for spec in specs_of(section)]


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
        help="TOML config file [default: none; env: DARTS_CONFIG_FILE]",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if top else argparse.SUPPRESS,
        help="more log output (-vv for debug messages) [default: warnings and errors]",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="show tracebacks and debug logs [default: off]",
    )
    group.add_argument(
        "--log-file",
        type=Path,
        default=default,
        metavar="PATH",
        help="also log to this file [default: none]",
    )
    for spec in _global_specs():
        add_option(group, spec)


def default_shown(spec: OptionSpec) -> str:
    """The default as ``--help`` shows it."""
    if spec.info.default_text is not None:
        return spec.info.default_text
    default = spec.default
    if spec.is_flag:
        return "on" if default else "off"
    if default is None or default == []:
        return "none"
    if isinstance(default, list):
        return " ".join(str(v) for v in default)
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


def help_text(spec: OptionSpec) -> str:
    """The option's help line: what it does, then ``[default: ...; env: ...]``."""
    text = spec.info.help
    if spec.is_flag and spec.info.negatable:
        text += f" (--no-{spec.name} turns it off)"
    facts = [f"default: {default_shown(spec)}"]
    if spec.env:
        facts.append("env: " + ", ".join(spec.env))
    # argparse %-formats help strings.
    return f"{text} [{'; '.join(facts)}]".replace("%", "%%")


def _metavar(spec: OptionSpec) -> str:
    choices = spec.info.choices
    if choices and not spec.info.metavar:
        listed = "{" + ",".join(str(c) for c in choices) + "}"
        if len(listed) <= 24:
            return listed
    return spec.info.metavar or spec.name.split("-")[-1].upper()


def add_option(group: argparse._ArgumentGroup, spec: OptionSpec) -> None:
    """Add ``spec`` with all its spellings; ``--help`` shows the first. An ignored
    option (`OptionInfo.ignored`) is accepted and not shown."""
    flags = list(spec.flags)
    shown = None if spec.info.ignored else help_text(spec)
    if spec.is_flag:
        action = group.add_argument(
            *flags,
            dest=spec.dest,
            action=_STORE_CONST,
            const=True,
            default=argparse.SUPPRESS,
            help=shown if shown is not None else argparse.SUPPRESS,
        )
        action.shown = flags[:1]  # type: ignore[attr-defined]
        if spec.info.negatable:
            group.add_argument(
                *(f"--no-{name}" for name in spec.names),
                *(f"--{spec.section}.no-{name}" for name in spec.names),
                dest=spec.dest,
                action=_STORE_CONST,
                const=False,
                default=argparse.SUPPRESS,
                help=argparse.SUPPRESS,  # said in the option's own help line
            )
        return
    kwargs: dict[str, object] = {
        "dest": spec.dest,
        "action": _STORE,
        "default": argparse.SUPPRESS,
        "help": shown if shown is not None else argparse.SUPPRESS,
        # Choices are checked (with a suggestion) where every value is: options.convert.
        "metavar": _metavar(spec),
    }
    if spec.is_list:
        # `--tile-ids A B` and `--tile-ids A --tile-ids B` both give [A, B].
        kwargs["nargs"] = "+"
        kwargs["action"] = _EXTEND
    action = group.add_argument(*flags, **kwargs)  # type: ignore[arg-type]
    action.shown = flags[:1]  # type: ignore[attr-defined]


def _examples(examples: Sequence[str]) -> str | None:
    if not examples:
        return None
    return "examples:\n" + "\n".join(f"  {line}" for line in examples)


def _add_positional(parser: argparse.ArgumentParser, command: Command) -> None:
    (spec,) = [s for s in command.spec.options() if s.field == command.positional]
    metavar = spec.info.metavar or spec.name.upper()
    # Named by the option's dest, so both spellings land in the same place.
    parser.add_argument(
        spec.dest, nargs="?", default=argparse.SUPPRESS, metavar=metavar, help=f"as --{spec.name}"
    )
    parser.usage = f"darts {' '.join(command.spec.path)} [options] [{metavar}]"


def build_parser(commands: Sequence[Command], group_help: dict[tuple[str, ...], str]):
    parser = Parser(
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
        sub.epilog = _examples(command.examples)
        # argparse's generated usage would list every option; --help does.
        sub.usage = f"darts {' '.join(command.spec.path)} [options]"
        sub.set_defaults(_command=command)
        by_section: dict[str, argparse._ArgumentGroup] = {}
        for spec in command.spec.options():
            if spec.info.global_option:
                continue  # with the global options below
            if spec.section not in by_section:
                title = f"{spec.section} options (also spelled --{spec.section}.NAME)"
                by_section[spec.section] = sub.add_argument_group(title)
            add_option(by_section[spec.section], spec)
            for flag in spec.flags:
                parser.commands_of_flag.setdefault(flag, []).append(" ".join(command.spec.path))
        if command.positional is not None:
            _add_positional(sub, command)
        _add_global_options(sub, top=False)
    return parser
