"""Options of ``darts demo``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from darts.settings.options import Section, option


@dataclass(frozen=True)
class DemoOptions(Section):
    SECTION = "demo"
    ENV_PREFIX = "DARTS_DEMO_"

    demo_dir: Path | None = option(
        None,
        env="DARTS_DEMO_DIR",
        help="data dir of the demo: staged scenes, datacubes, outputs",
        default_text="<darts-dir>/demo",
        metavar="DIR",
    )
    sandbox_root: Path | None = option(
        None,
        help="where the sandbox world is built and cached (shared with `darts sandbox build`)",
        default_text="<darts-dir>/sandbox",
        metavar="DIR",
    )
    raw_data_source: str = option(
        "cdse",
        choices=("cdse", "cdse-mosaic", "gee"),
        help="where the demo's Sentinel-2 data comes from (each served by its sandbox stand-in)",
    )
    model_file: Path | None = option(
        None,
        help="model checkpoint to run",
        default_text="the packaged demo model, trained on the sandbox world only",
        metavar="FILE",
    )
