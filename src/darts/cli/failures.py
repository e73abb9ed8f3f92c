"""How a failure ends the ``darts`` command: one line on stderr and an exit code.

Predictable failures are the user's to fix and get one line naming what is wrong and
what to do, with a code a job script can act on (README, "Exit codes"):

- ``DartsError``: bad options, config, input files, staged data (2), the local disk (4);
- the network layer's errors: a remote service unreachable or failing after the retry
  budget (3); missing or refused credentials, and offline refusals (2);
- the stores' errors: staged data that is missing, damaged or locked (2);
- the OS refusing the local disk — full, read-only, no permission, not a directory —
  also when a library wrapped that error (4).

Everything else is a bug, reported as one (70), never dressed up as a user error:
:func:`explain` answers None for it.
"""

from __future__ import annotations

from darts.errors import EXIT_NETWORK, EXIT_STORAGE, EXIT_USAGE, DartsError
from darts.net.errors import CredentialsError, NetworkError, OfflineError
from darts.store.disk import disk_problem
from darts.store.errors import StoreError

# Errors that only ever mean a mistake in the code: not explained by an OS error in
# their context (a bug while handling a full disk is still a bug).
_BUGS = (AttributeError, NameError, TypeError, AssertionError, NotImplementedError, SyntaxError)

_NETWORK_HINT = "check the endpoint settings (`darts debug-paths`) and the network, then run again"
_OFFLINE_HINT = (
    "stage it first with `darts inference prep-data sentinel2 ... --optical --aux` on a "
    "machine with internet, or run without --offline"
)


def explain(error: BaseException) -> tuple[str, int] | None:
    """(one-line message, exit code) for a predictable failure; None for a bug."""
    if isinstance(error, DartsError):
        # Written by DARTS for the user (a gap list may be several lines on purpose).
        return str(error), error.exit_code
    if isinstance(error, OfflineError):
        return _one_line(f"{error}; {_OFFLINE_HINT}"), EXIT_USAGE
    if isinstance(error, CredentialsError):
        return _one_line(str(error)), EXIT_USAGE
    if isinstance(error, NetworkError):
        text = str(error)
        if "run again" not in text:
            text = f"{text}; {_NETWORK_HINT}"
        return _one_line(text), EXIT_NETWORK
    if isinstance(error, StoreError):
        return _one_line(str(error)), EXIT_USAGE
    if isinstance(error, _BUGS):
        return None
    problem = disk_problem(error)
    if problem is not None:
        return _one_line(problem.message()), EXIT_STORAGE
    return None


def _one_line(text: str) -> str:
    """Messages quoting a server or a library can hold line breaks; one line is the
    promise."""
    return " ".join(text.split())
