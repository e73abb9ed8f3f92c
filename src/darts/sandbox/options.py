"""Options of the ``darts sandbox`` commands."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from darts.settings.options import AT_LEAST_0, Section, option


@dataclass(frozen=True)
class SandboxOptions(Section):
    SECTION = "sandbox"
    ENV_PREFIX = "DARTS_SANDBOX_"

    world: str = option("small", choices=("small", "full"), help="which synthetic world")
    seed: int = option(0, bounds=AT_LEAST_0, help="world seed: the same seed builds the same bytes")
    root: Path | None = option(
        None,
        help="where worlds are built and cached",
        default_text="<darts-dir>/sandbox",
        metavar="DIR",
    )
    config_out: Path | None = option(
        None,
        help="write a darts TOML config pointing at the running stand-ins",
        metavar="FILE",
    )
    faults_file: Path | None = option(
        None,
        help="TOML file of fault settings: a table per server (cdse-stac, s3, pgc-stac, "
        "pgc-data, tcvis-stac, tcvis-data) or [all]",
        metavar="FILE",
    )
    latency_ms: float = option(
        0.0,
        bounds=AT_LEAST_0,
        help="milliseconds added to every request of every server",
        metavar="MS",
    )
