"""Resolving option values: flag > environment > config file > default.

Each resolved value remembers where it came from, so ``darts debug-paths`` can explain
every path and a bad value can be reported together with the place it was set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from darts.errors import ConfigError
from darts.settings.config_file import ConfigFile, config_entries, read_config_file
from darts.settings.options import OptionSpec, Section, convert, specs_of

__all__ = ["CommandSpec", "ConfigFile", "Resolved", "read_config_file", "resolve"]

S = TypeVar("S", bound=Section)


@dataclass(frozen=True)
class CommandSpec:
    """A leaf command: its words (``("inference", "prep-data", "sentinel2")``) and the
    option sections it accepts. The global sections (`GLOBAL_SECTIONS`: logging) are
    added to every command."""

    path: tuple[str, ...]
    sections: tuple[type[Section], ...]

    def __post_init__(self) -> None:
        from darts.settings.sections import GLOBAL_SECTIONS

        extra = tuple(s for s in GLOBAL_SECTIONS if s not in self.sections)
        object.__setattr__(self, "sections", (*self.sections, *extra))

    def options(self) -> list[OptionSpec]:
        specs = [s for section in self.sections for s in specs_of(section)]
        seen: dict[str, OptionSpec] = {}
        for spec in specs:
            for name in spec.names:
                other = seen.get(name)
                if other is not None and (other.section, other.field) != (
                    spec.section,
                    spec.field,
                ):
                    # A flat spelling (name or alias) must name exactly one option.
                    raise AssertionError(f"option name '{name}' is ambiguous in {self.path}")
                seen[name] = spec
        return list({(s.section, s.field): s for s in specs}.values())


@dataclass
class Resolved:
    """The sections of one command, with the origin of every value."""

    sections: dict[type[Section], Section] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)  # dotted name -> where from
    # One line per option that was set but is ignored (`OptionInfo.ignored`): the
    # caller says them (the command line on stderr, the API in the log).
    notes: list[str] = field(default_factory=list)

    def get(self, section: type[S]) -> S:
        return self.sections[section]  # type: ignore[return-value]

    def origin_of(self, section: type[Section], name: str) -> str:
        return self.origin.get(f"{section.SECTION}.{name.replace('_', '-')}", "default")

    def to_document(self) -> dict[str, dict[str, Any]]:
        """Every option as ``{dotted name: {"value", "origin"}}``, JSON-ready (paths as
        text): what a run records so it can be understood and repeated later."""
        document: dict[str, dict[str, Any]] = {}
        for section, values in self.sections.items():
            for spec in specs_of(section):
                if spec.info.ignored:
                    continue  # accepted for old config files; means nothing here
                value = getattr(values, spec.field)
                if isinstance(value, list):
                    value = [str(v) if isinstance(v, Path) else v for v in value]
                elif isinstance(value, Path):
                    value = str(value)
                document[spec.dotted] = {
                    "value": value,
                    "origin": self.origin_of(section, spec.field),
                }
        return dict(sorted(document.items()))


def resolve(
    command: CommandSpec,
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    config: ConfigFile | None,
    all_commands: Sequence[CommandSpec],
    spellings: Mapping[str, str] | None = None,
) -> Resolved:
    """Apply the precedence rule to every option of ``command``.

    ``flags`` maps ``OptionSpec.dest`` to already-parsed command-line values; options not
    given on the command line are absent from it. ``spellings`` maps a dest to how the
    user wrote it (``--pipeline.max-retries``, or a keyword argument of the Python API),
    so a refused value is reported under that name; the flat flag is the default.
    """
    from_config = config_entries(config, all_commands, command) if config else {}
    resolved = Resolved()
    for section in command.sections:
        values: dict[str, Any] = {}
        for spec in specs_of(section):
            value, origin = _pick(spec, flags, environ, from_config, spellings or {})
            values[spec.field] = value
            resolved.origin[spec.dotted] = origin
            if spec.info.ignored and origin != "default":
                resolved.notes.append(f"--{spec.name} ({origin}) is ignored: {spec.info.ignored}")
        try:
            resolved.sections[section] = section(**values)  # type: ignore[call-arg]
        except TypeError as exc:  # a required option nobody set
            raise ConfigError(f"missing option in section '{section.SECTION}': {exc}") from None
    return resolved


def _pick(
    spec: OptionSpec,
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    from_config: Mapping[tuple[str, str], tuple[Any, str]],
    spellings: Mapping[str, str],
) -> tuple[Any, str]:
    if spec.dest in flags:
        where = spellings.get(spec.dest, f"--{spec.name}")
        return convert(spec, flags[spec.dest], where), f"command line (--{spec.name})"
    for var in spec.env:
        raw = environ.get(var)
        if raw:
            return convert(spec, raw, f"environment variable {var}"), f"env {var}"
    if (spec.section, spec.name) in from_config:
        value, where = from_config[(spec.section, spec.name)]
        return value, where
    if spec.default is dataclasses.MISSING:
        raise ConfigError(f"option --{spec.name} is required")
    return spec.default, "default"
