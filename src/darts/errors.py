"""The error type every layer raises for problems a user can fix.

The CLI prints a ``DartsError`` as one line and exits non-zero; anything else is a bug
and gets a traceback. Keeping one base class lets each layer stay ignorant of the CLI.
"""

from __future__ import annotations


class DartsError(Exception):
    """A problem with input, configuration or data that the user can act on."""

    exit_code: int = 2


class ConfigError(DartsError):
    """A bad option value, config file or environment variable."""
