"""Declaring options once: a section is a dataclass whose fields are the options.

Every option has one flat name (``scene-ids``) and belongs to one section
(``pipeline``), which gives its dotted spelling (``--pipeline.scene-ids``); it may have
aliases (the names existing DARTS users type: ``output-data-dir`` for ``output-dir``),
words for its values (``high_quality`` for quality level 2) and an environment
variable (``DARTS_<NAME>`` unless declared otherwise). The CLI parser with its help,
the config-file reader and the environment reader are all generated from these
declarations, so the three can never disagree about what an option is called or what
type it has, and a new option gets all of it by being declared. The values an option
accepts (numeric ranges, choices, a date's form) are declared with it too and checked
in `convert`, the one function every value passes through, so a bad value is refused
the same way from a flag, a variable or a file, with a message that names the spelling
the user wrote.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

from darts.errors import ConfigError
from darts.settings.suggest import did_you_mean


@dataclass(frozen=True)
class Bounds:
    """The range of a numeric option (of each item, for a list option).

    ``min``/``max`` are inclusive, ``above`` is an exclusive lower bound (a timeout must
    be more than 0, not 0). Every int and float option declares one (a test checks), so
    a range cannot be forgotten when an option is added.
    """

    min: float | None = None
    max: float | None = None
    above: float | None = None

    def allows(self, value: float) -> bool:
        if self.min is not None and value < self.min:
            return False
        if self.above is not None and value <= self.above:
            return False
        return self.max is None or value <= self.max

    def describe(self, whole: bool) -> str:
        """``a whole number from 1 to 12``, ``a number greater than 0``, ``a whole
        number of at least 1``."""
        kind = "a whole number" if whole else "a number"
        low = self.min
        if low is not None and self.max is not None:
            return f"{kind} from {_show(low)} to {_show(self.max)}"
        parts = []
        if low is not None:
            parts.append(f"of at least {_show(low)}")
        if self.above is not None:
            parts.append(f"greater than {_show(self.above)}")
        if self.max is not None:
            parts.append(f"of at most {_show(self.max)}")
        return " ".join([kind, *parts])


# The ranges most options share.
AT_LEAST_0 = Bounds(min=0)
AT_LEAST_1 = Bounds(min=1)
POSITIVE = Bounds(above=0)
FRACTION = Bounds(min=0, max=1)
PERCENT = Bounds(min=0, max=100)


def _show(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def iso_day(text: str) -> None:
    """A calendar day written ``YYYY-MM-DD`` (strictly: ``date.fromisoformat`` also
    takes ``20230701`` and ``2023-W27``, more likely typos than intent)."""
    if _DAY_RE.match(text):
        try:
            date.fromisoformat(text)
            return
        except ValueError:
            pass
    raise ValueError("must be a day written YYYY-MM-DD, e.g. 2023-07-01")


# A named value (see `OptionInfo.value_names`) that is accepted in a list and left out
# of it: it names something that happens anyway (``--export metadata``: the completion
# record is always written).
class _Implied:
    def __repr__(self) -> str:
        return "IMPLIED"


IMPLIED: Any = _Implied()


@dataclass(frozen=True)
class OptionInfo:
    """What the dataclass field alone cannot say about an option."""

    help: str = ""
    # Environment variables read for it; None: the automatic ``DARTS_<NAME>``
    # (`OptionSpec.env`), ``()``: none at all.
    env: tuple[str, ...] | None = None
    # ``--no-<name>``: False for a flag, None (switched off) for an optional value.
    negatable: bool = False
    choices: tuple[str, ...] | tuple[int, ...] | None = None
    metavar: str | None = None
    bounds: Bounds | None = None
    # Further checks of a converted value (of each item of a list): raise ValueError
    # with what the value must be.
    check: Callable[[Any], None] | None = None
    # Other flat names of the option (the names existing DARTS users type, e.g.
    # ``output-data-dir`` for ``output-dir``): accepted on the command line (flat and
    # dotted), in config files and as API keywords; ``--help`` shows the main name.
    aliases: tuple[str, ...] = ()
    # Words accepted for a value (of each item of a list) and what they mean:
    # ``{"high_quality": 2}``; `IMPLIED` drops the item from a list.
    value_names: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # How ``--help`` words a default that is computed elsewhere (``<large-dir>/out``).
    default_text: str | None = None
    # Accepted for compatibility and otherwise ignored: why (said once when it is set).
    ignored: str | None = None
    # Read before everything else: accepted before the command words too, never from a
    # config file (``--log-dir``: where the log of reading the config goes).
    global_option: bool = False


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str = "",
    env: tuple[str, ...] | str | None = None,
    negatable: bool = False,
    choices: tuple[str, ...] | tuple[int, ...] | None = None,
    metavar: str | None = None,
    bounds: Bounds | None = None,
    check: Callable[[Any], None] | None = None,
    aliases: tuple[str, ...] | str = (),
    value_names: Mapping[str, Any] | None = None,
    default_text: str | None = None,
    ignored: str | None = None,
    global_option: bool = False,
) -> Any:
    """A dataclass field carrying its CLI/config/env description.

    ``env``: the variables read for it (default ``DARTS_<NAME>``; ``()`` for none).
    ``aliases``: other flat names accepted everywhere, shown nowhere but the README.
    ``value_names``: words accepted for values. ``default_text``: the default as help
    shows it when the field's own default is None. ``ignored``: accepted, does
    nothing, and says why. ``global_option``: command line (and env) only.
    """
    info = OptionInfo(
        help=help,
        env=(env,) if isinstance(env, str) else (tuple(env) if env is not None else None),
        negatable=negatable,
        choices=choices,
        metavar=metavar,
        bounds=bounds,
        check=check,
        aliases=(aliases,) if isinstance(aliases, str) else tuple(aliases),
        value_names=dict(value_names or {}),
        default_text=default_text,
        ignored=ignored,
        global_option=global_option,
    )
    if isinstance(default, list):
        frozen = tuple(default)
        return dataclasses.field(default_factory=lambda: list(frozen), metadata={"darts": info})
    return dataclasses.field(default=default, metadata={"darts": info})


class Section:
    """Base for option sections; subclasses are frozen dataclasses.

    ``SECTION`` gives the dotted spelling (``--pipeline.<name>``); ``ENV_PREFIX`` the
    automatic environment variable of its options (``DARTS_<NAME>``); ``CONFIG_SCOPE``
    the command words a config file table must lie within to set its options (``()``:
    any table; ``("cache",)``: ``[darts.cache]`` and below, so a run's ``scene-ids``
    in ``[darts]`` is never what ``darts cache prune`` removes)."""

    SECTION: ClassVar[str]
    ENV_PREFIX: ClassVar[str] = "DARTS_"
    CONFIG_SCOPE: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True)
class OptionSpec:
    """One option, fully described."""

    section: str
    field: str
    type: Any
    default: Any
    info: OptionInfo
    env_prefix: str = "DARTS_"
    # `Section.CONFIG_SCOPE` of its section.
    config_scope: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.field.replace("_", "-")

    def config_sets_in(self, prefix: tuple[str, ...]) -> bool:
        """Whether a config file table of the command words ``prefix`` may set it."""
        return prefix[: len(self.config_scope)] == self.config_scope

    @property
    def names(self) -> tuple[str, ...]:
        """The flat name and its aliases (kebab-case), the name first."""
        return (self.name, *self.info.aliases)

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def flags(self) -> tuple[str, ...]:
        """Every command-line spelling, the one ``--help`` shows first: ``--name``,
        ``--section.name``, then the same for each alias."""
        return tuple(
            flag for name in self.names for flag in (f"--{name}", f"--{self.section}.{name}")
        )

    @property
    def env(self) -> tuple[str, ...]:
        """The environment variables read for it: declared, else ``DARTS_<NAME>``
        (none for an ignored option)."""
        if self.info.env is not None:
            return self.info.env
        if self.info.ignored:
            return ()
        return (self.env_prefix + self.field.upper(),)

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
        out.append(
            OptionSpec(
                section.SECTION,
                f.name,
                hints[f.name],
                default,
                info,
                section.ENV_PREFIX,
                section.CONFIG_SCOPE,
            )
        )
    return out


def convert(spec: OptionSpec, value: Any, where: str) -> Any:
    """Turn a raw value (a CLI/env string or a TOML value) into the option's type and
    check it against the option's declaration.

    ``where`` names the value as the user spelled it (``--max-retries``, ``environment
    variable DARTS_MAX_RETRIES``, ``darts.network.max-retries in config file X``); every
    refusal is one `ConfigError` naming it, the value and what the value must be.
    """
    if value is None:
        if spec.optional:
            return None
        raise ConfigError(f"{where} needs a value")
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
        converted = [_checked(spec, item_type, v, where) for v in items]
        return [v for v in converted if v is not IMPLIED]
    value = _checked(spec, tp, value, where)
    if value is IMPLIED:
        raise ConfigError(f"invalid value for {where}: a word only a list of values takes")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _checked(spec: OptionSpec, tp: Any, value: Any, where: str) -> Any:
    named = _named_value(spec.info, value)
    if named is not _UNNAMED:
        return named
    try:
        try:
            converted = _convert_scalar(tp, value)
        except ValueError:
            if not spec.info.choices:
                raise
            # "best_quality" for a level: what the choices are says more than its type.
            raise ValueError(_choices_message(spec.info, value)) from None
        _check(spec.info, tp, converted)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid value {value!r} for {where}: {exc}") from None
    return converted


_UNNAMED: Any = object()


def _named_value(info: OptionInfo, value: Any) -> Any:
    """What a value word means (``high_quality`` → 2; ``high-quality`` too), else
    `_UNNAMED`."""
    if not info.value_names or not isinstance(value, str):
        return _UNNAMED
    word = value.strip()
    for candidate in (word, word.replace("-", "_"), word.lower().replace("-", "_")):
        if candidate in info.value_names:
            return info.value_names[candidate]
    return _UNNAMED


def _convert_scalar(tp: Any, value: Any) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("must be true or false")
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError("must be a whole number")
        try:
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        except (TypeError, ValueError):
            raise ValueError("must be a whole number") from None
    if tp is float:
        if isinstance(value, bool):
            raise ValueError("must be a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError("must be a number") from None
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        return number
    if tp is Path:
        if not isinstance(value, str | Path) or str(value) == "":
            raise ValueError("must be a path")
        return Path(value).expanduser()
    if tp is str:
        if not isinstance(value, str):
            raise ValueError("must be text")
        return value
    # A declaration this module cannot convert is a bug, not a bad value.
    raise RuntimeError(f"unsupported option type {tp!r}")


def _choices_message(info: OptionInfo, value: Any) -> str:
    """``choose a, b or c (or by name: x, y)``, and the closest one if any is close."""
    assert info.choices
    shown = [str(c) for c in info.choices]
    listed = ", ".join(shown[:-1]) + f" or {shown[-1]}" if len(shown) > 1 else shown[0]
    names = [name for name, meaning in info.value_names.items() if meaning is not IMPLIED]
    by_name = f" (or by name: {', '.join(names)})" if names else ""
    # Words accepted but left out (IMPLIED) are still what a typo may have meant.
    hint = did_you_mean(str(value), [*shown, *info.value_names], quote=True)
    return f"choose {listed}{by_name}{hint}"


def _check(info: OptionInfo, tp: Any, value: Any) -> None:
    if info.choices and value not in info.choices:
        raise ValueError(_choices_message(info, value))
    if info.bounds is not None and not info.bounds.allows(value):
        raise ValueError(f"must be {info.bounds.describe(whole=tp is int)}")
    if info.check is not None:
        info.check(value)
