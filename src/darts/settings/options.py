"""Declaring options once: a section is a dataclass whose fields are the options.

Every option has one flat name (``scene-ids``) and belongs to one section
(``pipeline``), which gives its dotted spelling (``--pipeline.scene-ids``). The CLI
parser, the config-file reader and the environment reader are all generated from these
declarations, so the three can never disagree about what an option is called or what
type it has.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from darts.errors import ConfigError


@dataclass(frozen=True)
class OptionInfo:
    """What the dataclass field alone cannot say about an option."""

    help: str = ""
    env: tuple[str, ...] = ()
    # ``--no-<name>``: False for a flag, None (switched off) for an optional value.
    negatable: bool = False
    choices: tuple[str, ...] | None = None
    metavar: str | None = None


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str = "",
    env: tuple[str, ...] | str = (),
    negatable: bool = False,
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
) -> Any:
    """A dataclass field carrying its CLI/config/env description."""
    info = OptionInfo(
        help=help,
        env=(env,) if isinstance(env, str) else tuple(env),
        negatable=negatable,
        choices=choices,
        metavar=metavar,
    )
    if isinstance(default, list):
        frozen = tuple(default)
        return dataclasses.field(default_factory=lambda: list(frozen), metadata={"darts": info})
    return dataclasses.field(default=default, metadata={"darts": info})


class Section:
    """Base for option sections; subclasses are frozen dataclasses."""

    SECTION: ClassVar[str]


@dataclass(frozen=True)
class OptionSpec:
    """One option, fully described."""

    section: str
    field: str
    type: Any
    default: Any
    info: OptionInfo

    @property
    def name(self) -> str:
        return self.field.replace("_", "-")

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def dest(self) -> str:
        return f"{self.section.replace('-', '_')}__{self.field}"

    @property
    def base_type(self) -> Any:
        return _strip_optional(self.type)

    @property
    def is_list(self) -> bool:
        return typing.get_origin(self.base_type) is list

    @property
    def is_flag(self) -> bool:
        return self.base_type is bool

    @property
    def optional(self) -> bool:
        return _strip_optional(self.type) is not self.type


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def specs_of(section: type[Section]) -> list[OptionSpec]:
    hints = typing.get_type_hints(section)
    out = []
    for f in dataclasses.fields(section):  # type: ignore[arg-type]
        info = f.metadata.get("darts")
        if info is None:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        out.append(OptionSpec(section.SECTION, f.name, hints[f.name], default, info))
    return out


def convert(spec: OptionSpec, value: Any, where: str) -> Any:
    """Turn a raw value (a CLI/env string or a TOML value) into the option's type."""
    if value is None:
        if spec.optional:
            return None
        raise ConfigError(f"{where}: option '{spec.name}' needs a value")
    tp = spec.base_type
    if spec.is_list:
        (item_type,) = typing.get_args(tp)
        if isinstance(value, str):
            # Env vars and single CLI words may carry several values separated by commas.
            items: list[Any] = [v for v in value.replace(",", " ").split() if v]
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            items = [value]
        return [_convert_scalar(spec, item_type, v, where) for v in items]
    return _convert_scalar(spec, tp, value, where)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert_scalar(spec: OptionSpec, tp: Any, value: Any, where: str) -> Any:
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError("expected true or false")
        if tp is int:
            if isinstance(value, bool):
                raise ValueError("expected a whole number")
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        if tp is Path:
            if not isinstance(value, str | Path) or str(value) == "":
                raise ValueError("expected a path")
            return Path(value).expanduser()
        if tp is str:
            if not isinstance(value, str):
                raise ValueError("expected text")
            if spec.info.choices and value not in spec.info.choices:
                raise ValueError(f"expected one of {', '.join(spec.info.choices)}")
            return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{where}: invalid value {value!r} for option '{spec.name}': {exc}"
        ) from None
    raise TypeError(f"unsupported option type {tp!r} for {spec.dotted}")
