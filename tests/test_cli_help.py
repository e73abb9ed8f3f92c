"""`--help` that teaches: every option once, under the name ``--help`` shows, with its
default and environment variable; only the command's own options; short metavars; and
examples and ids that never wrap inside a word."""

from __future__ import annotations

import argparse
import re

import pytest

from darts.cli.commands import ALL_COMMANDS, GROUP_HELP
from darts.cli.parser import build_parser

WIDTH = 80


def leaf_parsers(parser: argparse.ArgumentParser, path=()) -> dict:
    """Every parser of the tree by its command words."""
    found = {path: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for word, sub in action.choices.items():
                found.update(leaf_parsers(sub, (*path, word)))
    return found


@pytest.fixture
def parsers(monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    return leaf_parsers(build_parser(ALL_COMMANDS, GROUP_HELP))


def command_help(parsers: dict, path: tuple[str, ...]) -> str:
    return parsers[path].format_help()


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: " ".join(c.spec.path))
def test_every_option_is_shown_once_with_default_and_env(parsers, command) -> None:
    text = command_help(parsers, command.spec.path)
    invocations = [line.split()[0] for line in text.splitlines() if line.startswith("  --")]
    for spec in command.spec.options():
        flag, *others = spec.flags
        if spec.info.ignored:
            assert flag not in invocations  # accepted, explained when used, not listed
            continue
        assert invocations.count(flag) == 1, flag
        for other in others:  # the dotted spelling and the aliases: accepted, not listed
            assert other not in invocations, other
            assert re.search(rf"(^|\s){re.escape(other)}\s", text) is None, other
        action = parsers[command.spec.path]._option_string_actions[flag]
        assert "[default: " in action.help, flag
        for variable in spec.env:
            assert variable in action.help, (flag, variable)
        metavar = action.metavar
        assert metavar is None or len(str(metavar)) <= 24, (flag, metavar)
    assert len(invocations) == len(set(invocations))
    # The global options too: every listed option but --help says its default.
    for action in parsers[command.spec.path]._actions:
        if action.option_strings and action.help != argparse.SUPPRESS and action.dest != "help":
            assert "[default: " in action.help, action.option_strings


def test_readiness_lists_only_its_own_options(parsers) -> None:
    text = command_help(parsers, ("inference", "readiness", "sentinel2"))
    for absent in ("--dry-run", "--optical", "--aux", "--offline", "--request-timeout",
                   "--output-dir", "--model-files", "--max-cloud-cover"):  # fmt: skip
        assert absent + " " not in text and absent + "\n" not in text, absent
    for present in ("--scene-ids", "--prep-data-scene-id-file", "--bands", "--report-file"):
        assert present in text
    prep = command_help(parsers, ("inference", "prep-data", "sentinel2"))
    for absent in ("--model-files", "--output-dir", "--terrain-convention", "--export"):
        assert absent + " " not in prep, absent


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: " ".join(c.spec.path))
def test_help_never_breaks_a_word_and_keeps_examples_whole(parsers, command) -> None:
    text = command_help(parsers, command.spec.path)
    for line in text.splitlines():
        if len(line) > WIDTH:
            # Only a word longer than the help column may stick out (a default URL).
            assert max(len(word) for word in line.split()) > WIDTH - 32, line
    for example in command.examples:
        assert f"  {example}\n" in text or not example, example
    # No id or path is cut at a hyphen or underscore across two lines.
    assert not re.search(r"[-_/]\n", text)


def test_the_export_option_fits_on_a_few_short_lines(parsers) -> None:
    text = command_help(parsers, ("inference", "sentinel2-sequential"))
    start = text.index("  --export ")
    block = text[start : text.index("\n  --", start + 1)]
    assert all(len(line) <= WIDTH for line in block.splitlines())
    assert "KEY [KEY ...]" in block and "{probabilities" not in block


def test_negatable_flag_is_one_line_and_both_work(parsers) -> None:
    text = command_help(parsers, ("inference", "sentinel2-sequential"))
    assert "--no-offline turns it off" in " ".join(text.split())
    assert "\n  --no-offline" not in text
    parser = parsers[()]
    for flag, value in (
        ("--offline", True),
        ("--no-offline", False),
        ("--pipeline.no-offline", False),
    ):
        parsed = parser.parse_args(["inference", "sentinel2-sequential", flag])
        assert parsed.pipeline__offline is value


def test_global_options_are_accepted_before_and_after_the_command(parsers) -> None:
    parser = parsers[()]
    before = parser.parse_args(["--log-dir", "/l", "debug-paths"])
    after = parser.parse_args(["debug-paths", "--log-dir", "/l", "--log-plain"])
    assert before.logging__log_dir == after.logging__log_dir == "/l"
    assert after.logging__log_plain is True
    assert "--log-dir" in command_help(parsers, ()) and "--log-dir" in command_help(
        parsers, ("debug-paths",)
    )
