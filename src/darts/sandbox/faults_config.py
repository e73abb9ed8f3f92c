"""Reading fault settings for ``darts sandbox serve --faults-file``.

The file holds one table per server, or ``[all]`` for every server; a server's own
table overrides ``[all]`` key by key::

    [all]
    latency_ms = 30

    [s3]
    error_rate = 0.05
    retry_after_s = 1
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from darts.errors import ConfigError
from darts.sandbox.servers.faults import FaultConfig

SERVER_NAMES = (
    "cdse-stac",
    "s3",
    "pgc-stac",
    "pgc-data",
    "tcvis-stac",
    "tcvis-data",
    "earthengine",
)


def load_faults(path: Path | None, latency_ms: float = 0.0) -> dict[str, FaultConfig]:
    tables: dict[str, dict] = {}
    if path is not None:
        try:
            tables = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"faults file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"faults file {path} is not valid TOML: {exc}") from None
    unknown = set(tables) - {"all", *SERVER_NAMES}
    if unknown:
        raise ConfigError(
            f"unknown server table(s) {sorted(unknown)} in faults file {path}; "
            f"use [all] or one of: {', '.join(SERVER_NAMES)}"
        )
    shared = dict(tables.get("all", {}))
    if latency_ms:
        shared.setdefault("latency_ms", latency_ms)
    faults: dict[str, FaultConfig] = {}
    for name in SERVER_NAMES:
        merged = {**shared, **tables.get(name, {})}
        if not merged:
            continue
        try:
            faults[name] = FaultConfig.from_json(merged)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"faults file {path}, server '{name}': {exc}") from None
    return faults
