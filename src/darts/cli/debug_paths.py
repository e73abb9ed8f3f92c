"""``darts debug-paths``: explain where every path and endpoint comes from.

Creates nothing: it only computes paths and says whether they exist.
"""

from __future__ import annotations

from darts.cli.parser import CommandContext
from darts.paths import data_paths
from darts.settings.sections import Endpoints, Network


def run(ctx: CommandContext) -> int:
    settings = ctx.settings
    paths = data_paths(settings)  # type: ignore[arg-type]
    rows: list[tuple[str, str, str]] = []
    for name, path, origin in paths.explained():
        if path is None:
            rows.append((name, "(none)", origin))
        else:
            state = "" if path.exists() else "  (does not exist yet)"
            rows.append((name, f"{path}{state}", origin))
    print("Paths")
    _print_rows(rows)

    print("\nRemote endpoints")
    endpoints = settings.get(Endpoints)  # type: ignore[attr-defined]
    _print_rows(
        [
            (
                name,
                str(getattr(endpoints, name.replace("-", "_"))),
                settings.origin_of(Endpoints, name),
            )  # type: ignore[attr-defined]
            for name in (
                "cdse-stac-url",
                "cdse-s3-endpoint",
                "pgc-stac-url",
                "arcticdem-index-url",
                "earth-engine-url",
                "earth-engine-highvolume-url",
                "ee-use-highvolume",
                "ee-project",
                "ee-credentials-file",
                "tcvis-source",
                "tcvis-stac-url",
                "aws-credentials-file",
                "aws-profile",
            )
        ]
    )
    print("\nNetwork")
    network = settings.get(Network)  # type: ignore[attr-defined]
    _print_rows(
        [
            (name, str(getattr(network, name.replace("-", "_"))), settings.origin_of(Network, name))  # type: ignore[attr-defined]
            for name in ("request-timeout", "max-retries", "max-concurrency")
        ]
    )
    return 0


def _print_rows(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    for name, value, origin in rows:
        print(f"  {name:<{width}}  {value}\n  {'':<{width}}    from: {origin}")
