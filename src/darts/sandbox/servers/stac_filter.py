"""CQL2 filters (and the older ``query`` extension) evaluated on items.

Evaluation is delegated to the ``cql2`` package. Where cql2 0.6 gets an answer wrong
or gives none, the expression is rewritten into an equivalent one it does evaluate:

* ``BETWEEN`` with timestamp/date bounds is always false in cql2 (the CQL2 schema
  only allows numbers there, while pgstac-backed services such as CDSE accept it);
  it becomes ``>= lower AND <= upper``.
* Comparing a timestamp property with a ``DATE('...')`` literal gives wrong results;
  the date becomes midnight UTC of that day, the cast PostgreSQL (pgstac) applies.
* A comparison on a property the item lacks makes ``matches`` raise instead of
  treating the value as null; such an item does not match (SQL three-valued logic:
  unknown is not true), which is what the real service answers.
"""

from __future__ import annotations

import json
from typing import Any

import cql2

from darts.sandbox.servers.stac_errors import StacApiError, bad_request

_COMPARISONS = {"=", "<>", "<", "<=", ">", ">="}
_TEMPORAL_LITERAL_KEYS = ("timestamp", "date")

# The ``query`` extension operators and the CQL2 operator each one becomes.
_QUERY_OPS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


class CompiledFilter:
    """A parsed, patched CQL2 expression, ready to test items against."""

    def __init__(self, expression: dict[str, Any]) -> None:
        self.expression = _patch(expression)
        try:
            self._expr = cql2.parse_json(json.dumps(self.expression))
        except (cql2.ParseError, ValueError) as err:
            raise bad_request(f"Invalid CQL2 filter: {err}", "InvalidFilter") from err

    def matches(self, item: dict[str, Any]) -> bool:
        """Whether ``item`` (id, collection, geometry, properties) satisfies the filter."""
        try:
            return bool(self._expr.matches(item))
        except Exception:  # cql2 raises a bare Exception when no boolean comes out
            return self._undecided(item)

    def _undecided(self, item: dict[str, Any]) -> bool:
        remainder = self._expr.reduce(item).to_json()
        if _mentions_property(remainder):
            # Something the item lacks is still unresolved: null, hence no match.
            return False
        raise StacApiError(
            400,
            "InvalidFilter",
            f"Filter cannot be evaluated (unsupported operation): {json.dumps(remainder)}",
        )


def parse_filter(value: Any, filter_lang: str | None, default_lang: str) -> CompiledFilter:
    """Parse a ``filter`` request value given in ``filter_lang`` (or ``default_lang``)."""
    lang = (filter_lang or default_lang).strip().lower()
    if lang == "cql2-text":
        if not isinstance(value, str):
            raise bad_request("filter-lang cql2-text needs the filter as a string", "InvalidFilter")
        try:
            expression = cql2.parse_text(value).to_json()
        except (cql2.ParseError, ValueError) as err:
            raise bad_request(f"Invalid CQL2 text filter: {err}", "InvalidFilter") from err
        return CompiledFilter(expression)
    if lang == "cql2-json":
        if isinstance(value, str):
            # GET requests carry JSON filters as a string.
            try:
                value = json.loads(value)
            except json.JSONDecodeError as err:
                raise bad_request(f"Filter is not valid JSON: {err}", "InvalidFilter") from err
        if not isinstance(value, dict):
            raise bad_request("A cql2-json filter must be a JSON object", "InvalidFilter")
        return CompiledFilter(value)
    raise bad_request(
        f"Unsupported filter-lang {lang!r}; use cql2-text or cql2-json", "InvalidFilter"
    )


def query_to_cql2(query: Any) -> dict[str, Any] | None:
    """Translate a ``query`` extension object into one CQL2 JSON expression."""
    if not isinstance(query, dict):
        raise bad_request("query must be a JSON object", "InvalidQuery")
    terms: list[dict[str, Any]] = []
    for name, conditions in query.items():
        if not isinstance(conditions, dict):
            raise bad_request(f"query[{name!r}] must be an object of operators", "InvalidQuery")
        prop = {"property": name}
        for op, operand in conditions.items():
            terms.append(_query_term(prop, op, operand))
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else {"op": "and", "args": terms}


def combine(first: CompiledFilter | None, second: CompiledFilter | None) -> CompiledFilter | None:
    """Both filters must hold (a request may carry ``filter`` and ``query``)."""
    if first is None or second is None:
        return first or second
    return CompiledFilter({"op": "and", "args": [first.expression, second.expression]})


def _query_term(prop: dict[str, str], op: str, operand: Any) -> dict[str, Any]:
    if op in _QUERY_OPS:
        return {"op": _QUERY_OPS[op], "args": [prop, operand]}
    if op == "in":
        if not isinstance(operand, list):
            raise bad_request("query operator 'in' needs a list", "InvalidQuery")
        return {"op": "in", "args": [prop, operand]}
    patterns = {"startsWith": "{}%", "endsWith": "%{}", "contains": "%{}%"}
    if op in patterns and isinstance(operand, str):
        return {"op": "like", "args": [prop, patterns[op].format(_escape_like(operand))]}
    raise bad_request(f"Unsupported query operator {op!r}", "InvalidQuery")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _patch(node: Any) -> Any:
    """Rewrite the constructs cql2 mis-evaluates (see the module docstring)."""
    if isinstance(node, list):
        return [_patch(n) for n in node]
    if not isinstance(node, dict):
        return node
    op = node.get("op")
    args = node.get("args")
    if isinstance(op, str) and isinstance(args, list):
        op = op.lower()
        if op in _COMPARISONS or op == "between":
            args = [_date_to_timestamp(a) for a in args]
        if op == "between" and len(args) == 3 and any(_is_temporal(a) for a in args[1:]):
            return {
                "op": "and",
                "args": [
                    {"op": ">=", "args": [_patch(args[0]), args[1]]},
                    {"op": "<=", "args": [_patch(args[0]), args[2]]},
                ],
            }
        return {**node, "args": [_patch(a) for a in args]}
    return node


def _is_temporal(node: Any) -> bool:
    return isinstance(node, dict) and any(k in node for k in _TEMPORAL_LITERAL_KEYS)


def _date_to_timestamp(node: Any) -> Any:
    if isinstance(node, dict) and set(node) == {"date"} and isinstance(node["date"], str):
        return {"timestamp": f"{node['date']}T00:00:00Z"}
    return node


def _mentions_property(node: Any) -> bool:
    if isinstance(node, dict):
        return "property" in node or any(_mentions_property(v) for v in node.values())
    if isinstance(node, list):
        return any(_mentions_property(v) for v in node)
    return False
