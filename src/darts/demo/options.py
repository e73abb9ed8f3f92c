"""Options of ``darts demo``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from darts.settings.options import Section, option


@dataclass(frozen=True)
class DemoOptions(Section):
    SECTION = "demo"

    demo_dir: Path | None = option(
        None,
        help="data dir of the demo: staged scenes, datacubes, outputs (default: <darts-dir>/demo)",
        metavar="DIR",
    )
    sandbox_root: Path | None = option(
        None,
        help="where the sandbox world is built and cached (default: <darts-dir>/sandbox, "
        "shared with `darts sandbox`)",
        metavar="DIR",
    )
    model_file: Path | None = option(
        None,
        help="model checkpoint to run (default: the packaged demo model, trained on the "
        "sandbox world only)",
        metavar="FILE",
    )
