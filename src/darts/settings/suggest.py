""" "Did you mean ...?" for a misspelt flag, config key or value.

One rule for every place a name can be mistyped (command-line flags, config-file keys,
choice values), so the suggestions read the same everywhere: the closest known name by
`difflib`'s ratio, if it is close enough to be a likely typo rather than another word.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# difflib's similarity ratio from which a known name is offered: "--max-cloud-cvoer"
# finds "--max-cloud-cover", "--foo" finds nothing.
CUTOFF = 0.6


def closest(word: str, known: Iterable[str], *, cutoff: float = CUTOFF) -> str | None:
    """The known name closest to ``word``, or None when none is close."""
    candidates = sorted(set(known))
    found = difflib.get_close_matches(word, candidates, n=1, cutoff=cutoff)
    return found[0] if found else None


def did_you_mean(
    word: str, known: Iterable[str], *, quote: bool = False, cutoff: float = CUTOFF
) -> str:
    """`` (did you mean X?)`` for the closest known name, or ``""``."""
    match = closest(word, known, cutoff=cutoff)
    if match is None:
        return ""
    shown = f"'{match}'" if quote else match
    return f" (did you mean {shown}?)"
