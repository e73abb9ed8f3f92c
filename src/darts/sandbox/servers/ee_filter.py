"""The ``filter`` of Earth Engine's ``listImages``: a strict subset of AIP-160.

Clients filter on image properties with comparisons joined by ``AND``; a parenthesised
group of comparisons joined by ``OR`` may stand in for one comparison::

    properties.CLOUDY_PIXEL_PERCENTAGE <= 10 AND
    (properties.MGRS_TILE = "08WMC" OR properties.MGRS_TILE = "08WMD")

Values are numbers or double-quoted strings (``\\"`` and ``\\\\`` escaped). Anything
else (other fields, ``NOT``, ``:``, nested groups, a dangling operator) is refused
with a message naming the position, because a stand-in that silently ignored part of
a filter would let a client bug pass as "no match" instead of failing loudly.

A comparison with a missing property, or of a number with a string, is false (the
image is left out), as filtering on an absent property is in Earth Engine.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<field>properties\.[A-Za-z_][A-Za-z0-9_:]*)
      | (?P<op><=|>=|!=|=|<|>)
      | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<string>"(?:[^"\\]|\\["\\])*")
      | (?P<paren>[()])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.:]*)
    )""",
    re.VERBOSE,
)
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_EXAMPLE = 'e.g. properties.CLOUDY_PIXEL_PERCENTAGE <= 10 AND properties.MGRS_TILE = "08WMC"'


class FilterError(ValueError):
    """A filter outside the supported grammar; the message says where and why."""


@dataclass(frozen=True)
class Comparison:
    """``properties.<name> <op> <value>``."""

    name: str
    op: str
    value: float | str

    def matches(self, properties: Mapping[str, Any]) -> bool:
        actual = properties.get(self.name)
        if isinstance(self.value, str):
            if not isinstance(actual, str):
                return False
        elif isinstance(actual, bool) or not isinstance(actual, int | float):
            return False
        return _OPERATORS[self.op](actual, self.value)


@dataclass(frozen=True)
class ImageFilter:
    """A conjunction of terms; each term is a disjunction of comparisons."""

    terms: tuple[tuple[Comparison, ...], ...]

    def matches(self, properties: Mapping[str, Any]) -> bool:
        return all(any(c.matches(properties) for c in term) for term in self.terms)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def parse_filter(text: str) -> ImageFilter:
    """Parse ``text``; raises :class:`FilterError` for anything outside the subset."""
    tokens = _tokenize(text)
    if not tokens:
        raise FilterError(f"filter is empty; {_EXAMPLE}")
    parser = _Parser(text, tokens)
    return parser.parse()


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.lastgroup is None:
            start = len(text) - len(text[position:].lstrip())
            raise FilterError(
                f"filter {text!r}: unexpected character {text[start]!r} at position {start}"
            )
        kind = match.lastgroup
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.index = 0

    def parse(self) -> ImageFilter:
        terms = [self._term()]
        while self._peek_word("AND"):
            self.index += 1
            terms.append(self._term())
        if self.index < len(self.tokens):
            token = self.tokens[self.index]
            raise self._error(token, "expected AND or the end of the filter")
        return ImageFilter(tuple(terms))

    def _term(self) -> tuple[Comparison, ...]:
        token = self._next("a comparison or '('")
        if token.kind != "paren" or token.text != "(":
            self.index -= 1
            return (self._comparison(),)
        group = [self._comparison()]
        while self._peek_word("OR"):
            self.index += 1
            group.append(self._comparison())
        closing = self._next("')'")
        if closing.kind != "paren" or closing.text != ")":
            raise self._error(
                closing, "expected OR or ')' (a group holds comparisons joined by OR only)"
            )
        return tuple(group)

    def _comparison(self) -> Comparison:
        field = self._next("properties.NAME")
        if field.kind != "field":
            raise self._error(
                field, f"expected a comparison like properties.NAME <= 10 ({_EXAMPLE})"
            )
        op = self._next("a comparison operator")
        if op.kind != "op":
            raise self._error(op, "expected one of = != < <= > >=")
        value = self._next("a number or a double-quoted string")
        if value.kind == "number":
            return Comparison(field.text.removeprefix("properties."), op.text, float(value.text))
        if value.kind == "string":
            unquoted = re.sub(r"\\([\"\\])", r"\1", value.text[1:-1])
            return Comparison(field.text.removeprefix("properties."), op.text, unquoted)
        raise self._error(value, "expected a number or a double-quoted string")

    def _peek_word(self, word: str) -> bool:
        if self.index >= len(self.tokens):
            return False
        token = self.tokens[self.index]
        return token.kind == "word" and token.text == word

    def _next(self, wanted: str) -> _Token:
        if self.index >= len(self.tokens):
            raise FilterError(f"filter {self.text!r}: expected {wanted} at the end")
        token = self.tokens[self.index]
        self.index += 1
        return token

    def _error(self, token: _Token, message: str) -> FilterError:
        return FilterError(
            f"filter {self.text!r}: {message} at position {token.position}, found {token.text!r}"
        )
