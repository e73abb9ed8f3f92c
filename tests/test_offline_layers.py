"""Offline is decided where clients are built, not tested by the steps that use them.

Issue 14: no ``if offline:`` outside the network layer and the readiness check. This
walks every module's syntax tree and lists each branch (``if``, conditional expression,
``while``, boolean operand) whose condition reads something called ``offline``; only
the places that build clients or prove readiness may have one.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "darts"

# Where offline may steer behaviour, and why:
ALLOWED = (
    "net/",  # the network layer: the gate and the clients refuse by themselves
    "sandbox/",  # the test servers' own tooling, not the product
    "cli/",  # option conflicts (`prep-data --offline`) are the command line's to reject
    "pipelines/runtime.py",  # settings → clients: offline becomes a client property
    "pipelines/scene_sources.py",  # offline runtime → the store-only source
    "pipelines/readiness.py",  # the readiness check
    # `darts cache repair`: offline it cleans and names what to re-stage — a readiness
    # report for damaged entries — instead of fetching.
    "pipelines/cache/repair.py",
)


def _reads_offline(node: ast.AST) -> bool:
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and child.id == "offline":
            return True
        if isinstance(child, ast.Attribute) and child.attr == "offline":
            return True
    return False


def _offline_branches(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.If | ast.IfExp | ast.While):
            conditions = [node.test]
        elif isinstance(node, ast.BoolOp):
            conditions = node.values
        else:
            continue
        if any(_reads_offline(condition) for condition in conditions):
            lines.append(node.lineno)
    return lines


def test_only_client_builders_and_readiness_branch_on_offline() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative.startswith(ALLOWED):
            continue
        for line in _offline_branches(ast.parse(path.read_text(), str(path))):
            found.append(f"{relative}:{line}")
    assert found == [], "branches on offline outside the network layer: " + ", ".join(found)


def test_the_check_sees_a_branch() -> None:
    sample = "def f(runtime):\n    if runtime.offline:\n        return 1\n    return 2\n"
    assert _offline_branches(ast.parse(sample)) == [2]
    assert _offline_branches(ast.parse("x = a if not offline else b\n")) == [1]
    assert _offline_branches(ast.parse("def g(offline):\n    return offline\n")) == []
