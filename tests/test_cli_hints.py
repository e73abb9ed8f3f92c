"""Every message that names a command or a flag names one that works.

The first half walks the source: every string (not docstrings) that names a `darts ...`
command in backticks must name a real command, with flags that command takes; every
other ``--flag`` in a string must be a flag of some command (modules with a command
line of their own are held to their own flags), and every example of ``--help`` must
parse. The second half follows the hints users meet first, against the sandbox: it
runs the command a message names, as the message words it, and checks that it works.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

import darts
from darts.cli.commands import ALL_COMMANDS, GROUP_HELP
from darts.cli.main import main
from darts.cli.parser import build_parser
from darts.sandbox.layout import WorldLayout

SOURCE = Path(darts.__file__).parent
# Modules with a command line of their own: their flags are their parser's.
OWN_COMMAND_LINES = ("demo/train.py", "sandbox/world/__main__.py")
PLACEHOLDER = "{X}"


# -- the strings of the source --------------------------------------------------------


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = [v.value if isinstance(v, ast.Constant) else PLACEHOLDER for v in node.values]
        return "".join(str(p) for p in parts)
    return None


def source_strings() -> Iterator[tuple[str, int, str]]:
    """(module, line, text) of every string literal that is not a docstring; an
    f-string is one text with ``{X}`` for each replacement field."""
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        skip: set[int] = set()
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (
                isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and body
                and isinstance(body[0], ast.Expr)
            ):
                skip.add(id(body[0].value))
            if isinstance(node, ast.JoinedStr):
                skip.update(id(v) for v in node.values)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            text = _text(node)
            if text and ("--" in text or "`darts " in text):
                yield path.relative_to(SOURCE).as_posix(), node.lineno, text


COMMAND_RE = re.compile(r"(?<!`)`(darts [^`]+)`(?!`)")
FLAG_RE = re.compile(r"(?<![\w-])--[a-z][a-z0-9.-]*[a-z0-9](?![\w{-])")


def parsers_by_path() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    found: dict[tuple[str, ...], argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        found[path] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for word, sub in action.choices.items():
                    walk(sub, (*path, word))

    walk(build_parser(ALL_COMMANDS, GROUP_HELP), ())
    return found


PARSERS = parsers_by_path()
ALL_FLAGS = {flag for parser in PARSERS.values() for flag in parser._option_string_actions}


def is_group(path: tuple[str, ...]) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) for a in PARSERS[path]._actions)


def takes_argument(path: tuple[str, ...]) -> bool:
    """Whether the command takes a positional argument (`Command.positional`)."""
    return not is_group(path) and any(not a.option_strings for a in PARSERS[path]._actions)


def check_command(command: str) -> list[str]:
    """Problems of one `darts ...` hint: its words must name a command, each flag must
    be one of the command it follows (the top parser's before the command words).
    ``...`` and ``{X}`` stand for what the user fills in."""
    words = [w for w in command.split() if w not in ("...", "\\")]
    assert words[0] == "darts"
    path: tuple[str, ...] = ()
    after_flag = False
    flags: list[tuple[str, tuple[str, ...]]] = []
    argument_taken = False
    for word in words[1:]:
        if word.startswith("-"):
            flags.append((word.split("=", 1)[0], path))
            after_flag = "=" not in word
        elif is_group(path) and (*path, word) in PARSERS:
            path, after_flag = (*path, word), False
        elif not after_flag and not argument_taken and takes_argument(path):
            # The command's one argument (`darts cache import FROM`).
            argument_taken = True
        elif not after_flag and PLACEHOLDER not in word:
            return [f"`{command}`: {' '.join(('darts', *path, word))!r} is no command"]
    if path and is_group(path):
        # `darts inference prep-data` runs nothing: a hint names the whole command.
        return [f"`{command}`: `darts {' '.join(path)}` is a group, not a command"]
    return [
        f"`{command}`: `darts {' '.join(where)}` takes no {flag}"
        for flag, where in flags
        if flag not in PARSERS[where]._option_string_actions
    ]


def own_flags(module: str) -> set[str]:
    """The flags a module's own parser declares (``add_argument("--x", ...)``)."""
    tree = ast.parse((SOURCE / module).read_text())
    return {
        arg.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"
        for arg in node.args
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
    }


def test_every_hint_names_a_command_and_flags_that_exist() -> None:
    problems: list[str] = []
    commands_seen = 0
    for module, line, text in source_strings():
        for command in COMMAND_RE.findall(text):
            commands_seen += 1
            problems += [f"{module}:{line}: {p}" for p in check_command(command)]
        known = own_flags(module) if module in OWN_COMMAND_LINES else ALL_FLAGS
        for flag in FLAG_RE.findall(COMMAND_RE.sub("", text)):
            if flag not in known:
                problems.append(f"{module}:{line}: {flag} is no flag of any command")
    assert commands_seen >= 8  # the walk finds the hints (they are not all f-strings)
    assert problems == []


def test_the_walk_catches_a_wrong_hint() -> None:
    # The checker itself: a flag of another command, a misspelt command word.
    assert check_command("darts inference readiness sentinel2 --dry-run") != []
    assert check_command("darts inference prep-dat sentinel2") != []
    assert check_command("darts inference prep-data") != []  # the old offline hint
    assert check_command("darts inference prep-data sentinel2 --tile-ids ... --optical") == []


def examples() -> Iterator[tuple[str, list[str]]]:
    for command in ALL_COMMANDS:
        lines = "\n".join(command.examples).replace("\\\n", " ")
        for line in lines.splitlines():
            if line.startswith("darts "):
                yield line, shlex.split(line)[1:]


@pytest.mark.parametrize(("line", "argv"), list(examples()), ids=lambda v: str(v)[:60])
def test_every_help_example_parses(line: str, argv: list[str]) -> None:
    assert check_command(line) == []
    parsed = PARSERS[()].parse_args(argv)
    assert parsed._command is not None


# -- the hints, followed against the sandbox ------------------------------------------

TILE = "08WPB"  # one cloud-free 2024 scene in the small world


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def hinted(message: str) -> list[str]:
    """The `darts ...` command a message names, as argv after ``darts``."""
    (command,) = COMMAND_RE.findall(message)
    return shlex.split(command)[1:]


def fill(argv: list[str], dots: list[str], **values: str) -> list[str]:
    """The hint with its ``...`` and capitalised placeholders filled in."""
    out: list[str] = []
    for word in argv:
        out += dots if word == "..." else [values.get(word, word)]
    return out


PATCHES = ["--patch-size", "256", "--overlap", "32", "--batch-size", "4"]


def test_the_offline_tile_hint_leads_to_a_working_offline_run(
    data_dir: Path, model_file: Path, capsys
) -> None:
    ids_file = data_dir.parent / "ids.json"
    run_args = ["inference", "sentinel2-sequential", "--model-files", str(model_file), *PATCHES]
    code, _, err = run([*run_args, "--tile-ids", TILE, "--years", "2024", "--offline"], capsys)
    assert code == 2, err
    assert "--scene-id-file (the file" not in err  # the old, wrong hint
    staging = fill(hinted(err), [TILE, "--years", "2024"], FILE=str(ids_file))
    assert staging[:3] == ["inference", "prep-data", "sentinel2"]
    assert "--prep-data-scene-id-file" in staging
    code, out, err = run(staging, capsys)
    assert code == 0, out + err
    (scene,) = json.loads(ids_file.read_text())["scene_ids"]
    # The saved file alone is the selection, offline.
    code, out, err = run(
        [*run_args, "--offline", "--prep-data-scene-id-file", str(ids_file)], capsys
    )
    assert code == 0, out + err
    assert f"{scene}  done" in out
    # So is it for the readiness check.
    code, out, _ = run(
        ["inference", "readiness", "sentinel2", "--prep-data-scene-id-file", str(ids_file)],
        capsys,
    )
    assert code == 0 and "ready for an offline run" in out


def test_the_readiness_hint_stages_what_is_missing(
    sandbox_world: WorldLayout, data_dir: Path, capsys
) -> None:
    scene = _scene_of(sandbox_world, TILE, 2024)
    check = ["inference", "readiness", "sentinel2", "--scene-ids", scene]
    code, _, err = run(check, capsys)
    assert code == 1
    staging = fill(hinted(err), ["--scene-ids", scene])
    code, out, err = run(staging, capsys)
    assert code == 0, out + err
    assert run(check, capsys)[0] == 0
    # prep-data refuses --offline and names readiness: that works offline as given.
    code, _, err = run(["inference", "prep-data", "sentinel2", "--scene-ids", scene,
                        "--optical", "--offline"], capsys)  # fmt: skip
    assert code == 2
    assert run([*hinted(err), "--scene-ids", scene], capsys)[0] == 0
    # The hint of a network failure: `darts debug-paths` runs anywhere.
    assert run(["debug-paths"], capsys)[0] == 0


@pytest.mark.parametrize(
    ("source", "scene_id"),
    [
        # Well-formed, with an hour 25 no product has: looked up, not found.
        ("cdse", "S2A_MSIL2A_20240715T253849_N0510_R029_T08WPB_20240716T003852"),
        ("gee", "20240715T253849_20240715T204100_T08WPB"),
    ],
)
def test_a_well_formed_id_of_no_product_is_looked_up_and_not_found(
    data_dir: Path, capsys, source: str, scene_id: str
) -> None:
    code, _, err = run(
        ["inference", "prep-data", "sentinel2", "--raw-data-source", source,
         "--scene-ids", scene_id, "--optical"],
        capsys,
    )  # fmt: skip
    assert code == 2
    assert "1 of 1 scene id(s) not found" in err and scene_id in err
    assert "impossible" not in err and "invalid scene id" not in err


def _scene_of(world: WorldLayout, tile: str, year: int) -> str:
    manifest = json.loads(world.manifest.read_text())
    (scene,) = [
        s["id"]
        for s in manifest["scenes"]
        if s["tile"] == tile and s["datetime"].startswith(str(year))
    ]
    return scene
