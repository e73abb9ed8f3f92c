"""Reading a TOML config file the way existing DARTS config files are written.

The file's settings live in its ``[darts]`` table. Within it:

- a key is an option's flat name or one of its aliases, kebab-case or snake_case
  (``output-dir``, ``output_data_dir``);
- a table named after a command (``[darts.inference.sentinel2-sequential]``) applies to
  that command only and beats the tables above it;
- a table named after an option section (``[darts.endpoints]``, ``[darts.pipeline]``)
  holds that section's options, and dotted keys (``pipeline.offline = true``) are the
  same thing written inline;
- any other table is flattened into the table it is in (``[darts.paths]
  model-file = ...`` is ``model-file = ...``), as existing config files expect.

Outside ``[darts]``, a top-level table named after a section (``[default_dirs]``,
``[pipeline]``) is read as ``[darts.<section>]``. Options read before the config file
(``--config-file``, ``--log-dir``, verbosity) are refused in it. Every unknown key and
every refused key of a file is reported at once, each with a suggestion when one is
close, so a file is fixed in one round.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from darts.errors import ConfigError
from darts.settings.options import OptionSpec, convert
from darts.settings.suggest import closest, did_you_mean

if TYPE_CHECKING:
    from darts.settings.resolve import CommandSpec

# How close a sub-table's name must be to a command's to be taken for its misspelling
# rather than a table to flatten ("sentinel2-sequentail", not "paths" for "debug-paths").
_TYPO = 0.85

# The command line's own options (not declared in a section): read before the file.
COMMAND_LINE_ONLY = ("config-file", "verbose", "debug", "log-file")


@dataclass(frozen=True)
class ConfigFile:
    path: Path
    document: dict[str, Any]  # the whole TOML document

    @property
    def table(self) -> dict[str, Any]:
        """The ``[darts]`` table."""
        table = self.document.get("darts", {})
        return table if isinstance(table, dict) else {}


def read_config_file(path: Path | str) -> ConfigFile:
    """Read a TOML config file; every problem names the file. Keys are checked when
    the file is applied (`config_entries`), against every command at once."""
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
    if "darts" in data and not isinstance(data["darts"], dict):
        raise ConfigError(f"'darts' in config file {path} must be a table")
    return ConfigFile(Path(path), data)


def norm(key: str) -> str:
    """A key as an option name: snake_case and kebab-case are the same."""
    return key.replace("_", "-")


@dataclass(frozen=True)
class _Entry:
    prefix: tuple[str, ...]  # the command words of the table it is in
    section: str | None  # set when the key is qualified by its section's table
    key: str  # the option name as written (kebab-case): the name or an alias
    value: Any  # as in the file; converted per command (`config_entries`)
    spelled: str  # how refusals name it: "key darts.x in config file F"
    where: str  # its origin: "config file F [darts.x]"

    @property
    def depth(self) -> int:
        return len(self.prefix)


@dataclass
class _Known:
    """What a table may hold: the commands below it, their options by flat name and
    by (section, name)."""

    children: set[str]
    flat: dict[str, OptionSpec]
    qualified: dict[tuple[str, str], OptionSpec]
    sections: set[str]
    # Names of options that only a deeper table may set (`OptionSpec.config_scope`):
    # name → the table that may.
    elsewhere: dict[str, str]


def _known(commands: Sequence[CommandSpec], prefix: tuple[str, ...]) -> _Known:
    below = [c for c in commands if c.path[: len(prefix)] == prefix]
    known = _Known(set(), {}, {}, set(), {})
    for command in below:
        if len(command.path) > len(prefix):
            known.children.add(command.path[len(prefix)])
        for spec in command.options():
            if not spec.config_sets_in(prefix):
                for name in spec.names:
                    known.elsewhere.setdefault(name, ".".join(("darts", *spec.config_scope)))
                continue
            known.sections.add(spec.section)
            for name in spec.names:
                known.flat.setdefault(name, spec)
                known.qualified.setdefault((spec.section, name), spec)
    return known


class _Walk:
    """One pass over a file: every entry, and every problem (reported together)."""

    def __init__(self, cfg: ConfigFile, commands: Sequence[CommandSpec]) -> None:
        self.cfg = cfg
        self.commands = commands
        self.entries: list[_Entry] = []
        self.unknown: list[str] = []
        self.command_line_only: list[str] = []
        self._known: dict[tuple[str, ...], _Known] = {}

    def known(self, prefix: tuple[str, ...]) -> _Known:
        if prefix not in self._known:
            self._known[prefix] = _known(self.commands, prefix)
        return self._known[prefix]

    def document(self) -> None:
        top = self.known(())
        for raw_key, value in self.cfg.document.items():
            key = norm(raw_key)
            if raw_key == "darts":
                self.table(value, (), "darts", "darts", section=None, commands_allowed=True)
            elif key in top.sections and isinstance(value, dict):
                # The paths guide's top-level [default_dirs] / [pipeline] tables.
                self.table(value, (), raw_key, raw_key, section=key, commands_allowed=False)
            else:
                hint = did_you_mean(key, ["darts", *sorted(top.sections)], quote=True)
                self.unknown.append(f"'{raw_key}'{hint or ' (settings go under a [darts] table)'}")

    def table(
        self,
        table: Mapping[str, Any],
        prefix: tuple[str, ...],
        name: str,
        origin: str,
        *,
        section: str | None,
        commands_allowed: bool,
    ) -> None:
        """Walk one table: ``name`` is its dotted path (for messages), ``origin`` the
        command table it belongs to (for `Resolved.origin`)."""
        known = self.known(prefix)
        for raw_key, value in table.items():
            key = norm(raw_key)
            path = f"{name}.{raw_key}"
            if isinstance(value, dict):
                if commands_allowed and key in known.children:
                    self.table(
                        value, (*prefix, key), path, path, section=None, commands_allowed=True
                    )
                elif key in known.sections:
                    self.table(value, prefix, path, origin, section=key, commands_allowed=False)
                elif commands_allowed and closest(key, known.children, cutoff=_TYPO) is not None:
                    # A misspelt command table must not quietly apply to every command
                    # (a grouping table like [darts.paths] is merely flattened).
                    hint = did_you_mean(key, known.children, cutoff=_TYPO)
                    self.unknown.append(f"'{path}' (a table of no command{hint})")
                else:
                    self.table(value, prefix, path, origin, section=section, commands_allowed=False)
                continue
            self.leaf(raw_key, key, value, prefix, name, origin, section)

    def leaf(
        self,
        raw_key: str,
        key: str,
        value: Any,
        prefix: tuple[str, ...],
        table_name: str,
        origin: str,
        section: str | None,
    ) -> None:
        known = self.known(prefix)
        path = f"{table_name}.{raw_key}"
        qualified = known.qualified.get((section, key)) if section is not None else None
        spec = qualified or known.flat.get(key)
        if key in COMMAND_LINE_ONLY or (spec is not None and spec.info.global_option):
            self.command_line_only.append(f"'{path}' (pass --{key})")
            return
        if spec is None:
            if key in known.elsewhere:
                self.unknown.append(f"'{path}' (set it under [{known.elsewhere[key]}])")
                return
            names = list(known.flat)
            if section is not None:
                names += [n for (s, n) in known.qualified if s == section]
            hint = did_you_mean(key, names)
            self.unknown.append(f"'{path}'{hint}")
            return
        spelled = f"key {path} in config file {self.cfg.path}"
        convert(spec, value, spelled)  # every value is checked, whichever command runs
        self.entries.append(
            _Entry(
                prefix=prefix,
                section=section if qualified is not None else None,
                key=key,
                value=value,
                spelled=spelled,
                where=f"config file {self.cfg.path} [{origin}]",
            )
        )

    def raise_problems(self) -> None:
        parts = []
        if len(self.unknown) == 1:
            parts.append(f"unknown key {self.unknown[0]}")
        elif self.unknown:
            parts.append(f"{len(self.unknown)} unknown keys: {', '.join(self.unknown)}")
        if self.command_line_only:
            parts.append(
                "read from the command line only, before the config file: "
                + ", ".join(self.command_line_only)
            )
        if parts:
            raise ConfigError(f"config file {self.cfg.path}: {'; '.join(parts)}")


def check_config_file(cfg: ConfigFile, commands: Sequence[CommandSpec]) -> list[_Entry]:
    """Every entry of the file, after checking all its keys against ``commands``: one
    `ConfigError` lists every key that no command knows."""
    walk = _Walk(cfg, commands)
    walk.document()
    walk.raise_problems()
    return walk.entries


def config_entries(
    cfg: ConfigFile, commands: Sequence[CommandSpec], command: CommandSpec
) -> dict[tuple[str, str], tuple[Any, str]]:
    """The values a config file sets for ``command``: (section, name) → (value, origin).
    A deeper table wins over the ones above it; one option set twice at the same depth
    (under its name and an alias, say) is an error naming both keys."""
    entries = check_config_file(cfg, commands)
    chosen: dict[tuple[str, str], tuple[_Entry, Any]] = {}
    for spec in command.options():
        for entry in entries:
            if command.path[: entry.depth] != entry.prefix or entry.key not in spec.names:
                continue
            if not spec.config_sets_in(entry.prefix):
                continue  # e.g. a run's scene-ids in [darts], for `darts cache`
            if entry.section is not None and entry.section != spec.section:
                continue
            value = convert(spec, entry.value, entry.spelled)
            slot = (spec.section, spec.name)
            current = chosen.get(slot)
            if current is not None and current[0].depth == entry.depth:
                if current[1] != value:
                    raise ConfigError(
                        f"config file {cfg.path} sets --{spec.name} twice at the same level: "
                        f"{_key_of(current[0])} and {_key_of(entry)}; keep one"
                    )
                continue
            if current is None or entry.depth > current[0].depth:
                chosen[slot] = (entry, value)
    return {slot: (value, entry.where) for slot, (entry, value) in chosen.items()}


def _key_of(entry: _Entry) -> str:
    return entry.spelled.split(" ", 2)[1]
