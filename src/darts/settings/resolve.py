"""Resolving option values: flag > environment > config file > default.

Each resolved value remembers where it came from, so ``darts debug-paths`` can explain
every path and a bad value can be reported together with the place it was set.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from darts.errors import ConfigError
from darts.settings.options import OptionSpec, Section, convert, specs_of

S = TypeVar("S", bound=Section)


@dataclass(frozen=True)
class CommandSpec:
    """A leaf command: its words (``("inference", "prep-data", "sentinel2")``) and the
    option sections it accepts."""

    path: tuple[str, ...]
    sections: tuple[type[Section], ...]

    def options(self) -> list[OptionSpec]:
        specs = [s for section in self.sections for s in specs_of(section)]
        seen: dict[str, OptionSpec] = {}
        for spec in specs:
            if spec.name in seen and seen[spec.name].section != spec.section:
                # The flat spelling must name exactly one option per command.
                raise AssertionError(f"option name '{spec.name}' is ambiguous in {self.path}")
            seen[spec.name] = spec
        return list(seen.values())


@dataclass(frozen=True)
class ConfigFile:
    path: Path
    table: dict[str, Any]  # the [darts] table


def read_config_file(path: Path) -> ConfigFile:
    """Read a TOML config file; every problem names the file."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory, not a TOML file") from None
    except PermissionError:
        raise ConfigError(f"config file {path} cannot be read (permission denied)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for key in data:
        if key != "darts":
            raise ConfigError(
                f"unknown key '{key}' in config file {path}: settings go under a [darts] table"
            )
    table = data.get("darts", {})
    if not isinstance(table, dict):
        raise ConfigError(f"'darts' in config file {path} must be a table")
    return ConfigFile(Path(path), table)


def _norm(key: str) -> str:
    return key.replace("_", "-")


@dataclass
class _ConfigEntry:
    value: Any
    where: str
    depth: int


def _collect(
    cfg: ConfigFile,
    commands: Sequence[CommandSpec],
    table: Mapping[str, Any],
    prefix: tuple[str, ...],
    out: dict[tuple[tuple[str, ...], str, str], _ConfigEntry],
) -> None:
    """Walk one table; record (command prefix, section, option) -> value; reject
    anything that is neither a sub-command, a section nor an option."""
    below = [c for c in commands if c.path[: len(prefix)] == prefix]
    table_name = ".".join(("darts", *prefix))
    children = {c.path[len(prefix)] for c in below if len(c.path) > len(prefix)}
    by_section: dict[str, dict[str, OptionSpec]] = {}
    by_name: dict[str, OptionSpec] = {}
    for command in below:
        for spec in command.options():
            by_section.setdefault(spec.section, {})[spec.name] = spec
            by_name[spec.name] = spec
    where = f"config file {cfg.path} [{table_name}]"
    for raw_key, value in table.items():
        key = _norm(raw_key)
        if key in children and isinstance(value, dict):
            _collect(cfg, commands, value, (*prefix, key), out)
        elif key in by_section and isinstance(value, dict):
            for raw_sub, sub_value in value.items():
                spec = by_section[key].get(_norm(raw_sub))
                if spec is None:
                    raise ConfigError(
                        f"unknown key '{table_name}.{key}.{raw_sub}' in config file {cfg.path}"
                    )
                out[(prefix, spec.section, spec.name)] = _ConfigEntry(
                    convert(spec, sub_value, where), where, len(prefix)
                )
        elif key in by_name and not isinstance(value, dict):
            spec = by_name[key]
            out[(prefix, spec.section, spec.name)] = _ConfigEntry(
                convert(spec, value, where), where, len(prefix)
            )
        else:
            raise ConfigError(f"unknown key '{table_name}.{raw_key}' in config file {cfg.path}")


def config_entries(
    cfg: ConfigFile, commands: Sequence[CommandSpec], command: CommandSpec
) -> dict[tuple[str, str], tuple[Any, str]]:
    """The values a config file sets for one command; deeper tables win."""
    entries: dict[tuple[tuple[str, ...], str, str], _ConfigEntry] = {}
    _collect(cfg, commands, cfg.table, (), entries)  # validates the whole file
    chosen: dict[tuple[str, str], _ConfigEntry] = {}
    for (prefix, section, name), entry in entries.items():
        if command.path[: len(prefix)] != prefix:
            continue
        current = chosen.get((section, name))
        if current is None or entry.depth > current.depth:
            chosen[(section, name)] = entry
    return {k: (e.value, e.where) for k, e in chosen.items()}


@dataclass
class Resolved:
    """The sections of one command, with the origin of every value."""

    sections: dict[type[Section], Section] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)  # dotted name -> where from

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
) -> Resolved:
    """Apply the precedence rule to every option of ``command``.

    ``flags`` maps ``OptionSpec.dest`` to already-parsed command-line values; options not
    given on the command line are absent from it.
    """
    from_config = config_entries(config, all_commands, command) if config else {}
    resolved = Resolved()
    for section in command.sections:
        values: dict[str, Any] = {}
        for spec in specs_of(section):
            value, origin = _pick(spec, flags, environ, from_config)
            values[spec.field] = value
            resolved.origin[spec.dotted] = origin
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
) -> tuple[Any, str]:
    if spec.dest in flags:
        where = f"command-line flag --{spec.dotted} / --{spec.name}"
        return convert(spec, flags[spec.dest], where), f"command line (--{spec.name})"
    for var in spec.info.env:
        raw = environ.get(var)
        if raw:
            return convert(spec, raw, f"environment variable {var}"), f"env {var}"
    if (spec.section, spec.name) in from_config:
        value, where = from_config[(spec.section, spec.name)]
        return value, where
    if spec.default is dataclasses.MISSING:
        raise ConfigError(f"option --{spec.name} is required")
    return spec.default, "default"
