"""Which requests a fault injector faults: the configured share of every few requests.

Drawing each request's fate independently (one ``random()`` per request) honours a rate
only on average: a short run sees far fewer or far more faults than configured, and
with one seed for every server, each server replays the same lucky prefix (seed 0 draws
nothing below 0.25 in its first ten draws, so a 20 % rate faulted none of a small run's
requests). A reliability test then proves nothing.

Here the requests are dealt from shuffled decks instead. Whether a request is faulted
comes from a deck of ``size`` cards of which ``rate × size`` say "fault" (``rate`` the sum
of the kinds' rates), so every ``size`` consecutive matching requests hold exactly the
configured share of faults (one in every five at 20 %), in a random order within the
deck. Which kind a faulted request gets comes from a second deck dealt in the kinds'
proportions (10 % errors + 5 % resets + 5 % truncation: two errors, one reset and one
truncation in every four faults). A deck's ``size`` is the smallest on which its shares
are whole numbers of cards, at most ``MAX_DECK``; shares that need a larger deck carry
their fractions from deck to deck, so the long-run rate is still exact.

The shuffles are seeded per server from a base seed and the server's name, so servers
fault independently of one another, and a client making the same requests in the same
order meets the same faults on every run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

MAX_DECK = 100
# How close rate × size must be to a whole number to count as one (float noise).
_WHOLE = 1e-6


def deck_size(rates: Mapping[str, float]) -> int:
    """The smallest deck holding a whole number of cards of every rate (≤ MAX_DECK)."""
    positive = [rate for rate in rates.values() if rate > 0]
    for size in range(1, MAX_DECK + 1):
        if all(abs(rate * size - round(rate * size)) < _WHOLE for rate in positive):
            return size
    return MAX_DECK


def schedule_seed(base_seed: int, name: str) -> str:
    """The seed of one server's schedule: independent per server, fixed per base seed.
    (``random.Random`` hashes a str seed with SHA-512, the same in every process.)"""
    return f"{base_seed}:{name}"


class Deck:
    """Deals keys in the given shares (adding up to at most 1; the rest is None) from
    shuffled decks of ``size`` cards."""

    def __init__(self, shares: Mapping[str, float], rng: random.Random) -> None:
        self.shares = {key: share for key, share in shares.items() if share > 0}
        self.size = deck_size(self.shares)
        self._rng = rng
        self._carry = dict.fromkeys(self.shares, 0.0)
        self._cards: list[str | None] = []

    def deal(self) -> str | None:
        if not self._cards:
            self._cards = self._new_deck()
        return self._cards.pop()

    def _new_deck(self) -> list[str | None]:
        cards: list[str | None] = []
        for key, share in self.shares.items():
            exact = share * self.size + self._carry[key]
            count = math.floor(exact + _WHOLE)
            # Never more cards than the deck holds (possible only when the shares add
            # up to 1 and fractions are carried): the surplus waits for the next deck.
            count = min(count, self.size - len(cards))
            self._carry[key] = exact - count
            cards.extend([key] * count)
        cards.extend([None] * (self.size - len(cards)))
        self._rng.shuffle(cards)
        return cards


class FaultSchedule:
    """Deals the fault kind (or None) of each matching request. Not thread-safe: the
    injector calls it under its lock."""

    def __init__(self, rates: Mapping[str, float], seed: int | str) -> None:
        for kind, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rate of {kind!r} must be within [0, 1], got {rate}")
        total = sum(rates.values())
        if total > 1.0 + _WHOLE:
            raise ValueError("the fault rates must not add up to more than 1")
        self.rates = {kind: rate for kind, rate in rates.items() if rate > 0}
        self.rng = random.Random(seed)
        self._faulted = Deck({"fault": min(total, 1.0)}, self.rng)
        self._kinds = Deck({kind: rate / total for kind, rate in self.rates.items()}, self.rng)

    @property
    def size(self) -> int:
        """How many consecutive matching requests hold exactly the configured share."""
        return self._faulted.size

    def next(self) -> str | None:
        """The fault kind of the next matching request, None for none."""
        if not self.rates or self._faulted.deal() is None:
            return None
        # The kinds' shares add up to 1, so a None here is float noise at most.
        return self._kinds.deal() or max(self.rates, key=self.rates.__getitem__)
