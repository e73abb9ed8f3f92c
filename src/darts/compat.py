"""What this installation of DARTS can do: the optional extras, and the ``darts`` script.

``pip install darts-rts`` stages data (``darts inference prep-data``, ``readiness``,
``debug-paths``, the Python API's discover and stage); the extras add the rest:

- ``[inference]``: torch, torchvision, segmentation-models-pytorch (and scipy, pillow
  for the post-processing), for ``darts inference sentinel2-sequential``;
- ``[sandbox]``: moto's server, werkzeug, cql2, for ``darts sandbox ...``;
- ``[dask]``: dask, distributed, dask-jobqueue, for ``darts inference sentinel2-dask``
  (which needs ``[inference]`` too);
- ``darts demo`` needs both.

The ``darts`` script (:func:`main`) checks a command's extras before it runs, so a
missing one is one line naming what to install (exit code 2), not a traceback in the
middle of a run. Only the presence of the packages is checked (nothing is imported).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterable, Sequence

from darts.errors import DartsError

DISTRIBUTION = "darts-rts"

# The import names each extra provides (checked, never imported here).
EXTRAS: dict[str, tuple[str, ...]] = {
    "inference": ("torch", "torchvision", "segmentation_models_pytorch", "scipy", "PIL"),
    "sandbox": ("moto", "flask", "werkzeug", "cql2"),
    "dask": ("dask", "distributed", "dask_jobqueue"),
}

# Which commands need which extras, by their leading words; the rest need none.
COMMAND_EXTRAS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("demo",): ("inference", "sandbox"),
    ("inference", "sentinel2-sequential"): ("inference",),
    ("inference", "sentinel2-dask"): ("inference", "dask"),
    ("sandbox",): ("sandbox",),
}


class MissingExtra(DartsError):
    """An optional part of DARTS is not installed."""

    exit_code = 2


def installed(module: str) -> bool:
    """Whether ``module`` (a top-level import name) can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install, or an import hook refusing it
        return False


def missing_modules(extra: str) -> list[str]:
    return [module for module in EXTRAS[extra] if not installed(module)]


def install_hint(extras: Iterable[str]) -> str:
    return f"pip install '{DISTRIBUTION}[{','.join(extras)}]'"


def require_extras(*extras: str, what: str = "this") -> None:
    """Raise :class:`MissingExtra` (one line: what is missing, what to install) unless
    every package of ``extras`` is installed."""
    missing = {extra: missing_modules(extra) for extra in extras}
    lacking = [extra for extra, modules in missing.items() if modules]
    if not lacking:
        return
    modules = [missing[extra][0] for extra in lacking]  # one per extra says enough
    names = " and ".join(lacking)
    noun = "extra" if len(lacking) == 1 else "extras"
    raise MissingExtra(
        f"{what} needs the {names} {noun} of DARTS ({', '.join(modules)} not installed): "
        f"{install_hint(lacking)}"
    )


def extras_for(command: Sequence[str]) -> tuple[str, ...]:
    """The extras the command with these words needs."""
    for words, extras in COMMAND_EXTRAS.items():
        if tuple(command[: len(words)]) == words:
            return extras
    return ()


# Icechunk warns, on every repository opened on a local disk, that concurrent commits
# are unsafe there (icechunk 1: icechunk::storage::object_store; 2: its
# icechunk_arrow_object_store) and that conditional PUTs lack write-ids: darts
# serialises its commits with a file lock, so these (2-6 lines each time) only bury the
# command's own output, and an error's one line with them.
ICECHUNK_LOG = (
    "warn,icechunk::storage::object_store=error,icechunk_arrow_object_store=error,"
    "icechunk_storage::readback=error"
)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``darts`` script: :func:`darts.cli.main.main`, after checking that the
    command's extras are installed."""
    os.environ.setdefault("ICECHUNK_LOG", ICECHUNK_LOG)  # read when icechunk is imported
    from darts.cli.commands import ALL_COMMANDS, GROUP_HELP
    from darts.cli.main import main as cli_main
    from darts.cli.parser import build_parser

    # Parsing twice costs milliseconds; --help, --version and usage errors end here
    # exactly as they would in cli_main.
    args = build_parser(ALL_COMMANDS, GROUP_HELP).parse_args(argv)
    command = getattr(args, "_command", None)
    if command is not None:
        words = command.spec.path
        try:
            require_extras(*extras_for(words), what=f"`darts {' '.join(words)}`")
        except MissingExtra as exc:
            print(f"darts: error: {exc}", file=sys.stderr)
            return exc.exit_code
    return cli_main(argv)


def script() -> None:
    """The ``darts`` console script: :func:`main`, ending the process with its exit code
    and without the interpreter's teardown (:mod:`darts.process_exit` says why)."""
    from darts.process_exit import run_then_exit

    run_then_exit(main)


if __name__ == "__main__":
    script()
