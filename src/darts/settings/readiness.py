"""How thoroughly `darts inference readiness` checks what is staged."""

from __future__ import annotations

from dataclasses import dataclass

from darts.settings.options import Section, option


@dataclass(frozen=True)
class ReadinessCheck(Section):
    SECTION = "pipeline"

    verify: bool = option(
        False,
        help="also read every staged byte the run needs and check it: the SHA-256 of each "
        "scene file and the CRC-32C of each cube chunk (slow: reads everything; without "
        "it, presence and sizes are checked)",
    )
