"""The error type every layer raises for problems a user can fix, and the exit codes.

The CLI prints a ``DartsError`` as one line and exits with its ``exit_code``; a few
other predictable failures (a remote service down, a full or read-only disk) are mapped
to one line by ``darts.cli.failures``; anything else is a bug and says so. Keeping one
base class lets each layer stay ignorant of the CLI.
"""

from __future__ import annotations

# The exit codes of the `darts` command (README, "Exit codes").
EXIT_OK = 0
EXIT_FAILED_ITEMS = 1  # it ran, but some scenes or tiles failed (or are not staged)
EXIT_USAGE = 2  # a bad option, config file, input file, credentials or staged data
EXIT_NETWORK = 3  # a remote service could not be reached or kept failing
EXIT_STORAGE = 4  # the local disk refused: full, read-only, no permission, not a dir
EXIT_INTERNAL = 70  # a bug (BSD's EX_SOFTWARE)
EXIT_INTERRUPTED = 130


class DartsError(Exception):
    """A problem with input, configuration or data that the user can act on."""

    exit_code: int = EXIT_USAGE


class ConfigError(DartsError):
    """A bad option value, config file or environment variable."""


class StorageError(DartsError):
    """The local file system refused: full, read-only, no permission, not a directory.

    The message names the path (or the store) and what to do; the command exits with
    its own code so a job script can tell "fix the disk" from "fix the input".
    """

    exit_code = EXIT_STORAGE
