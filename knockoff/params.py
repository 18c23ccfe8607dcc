"""Read one stage's section of params.yaml into that stage's typed config."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

DEFAULT_PARAMS = Path("params.yaml")
Config = TypeVar("Config")


def read_section(section: str, path: Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """The section as a dict; an absent file or section means 'all defaults'."""
    if not Path(path).is_file():
        return {}
    values = yaml.safe_load(Path(path).read_text()) or {}
    return dict(values.get(section) or {})


def build_config(cls: type[Config], values: dict[str, Any], where: str = "params") -> Config:
    """A dataclass from a dict: unknown keys are an error (a typo must not silently do nothing),
    nested dataclasses are built recursively and lists become tuples where the field is one."""
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known keys are {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    built = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in values.items()}
    return cls(**built)


def load_config(cls: type[Config], section: str, path: Path = DEFAULT_PARAMS) -> Config:
    return build_config(cls, read_section(section, path), where=f"{path}:{section}")


def _convert(hint: Any, value: Any, where: str) -> Any:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else (hint,)
    for option in options:
        if dataclasses.is_dataclass(option) and isinstance(value, dict):
            return build_config(option, value, where)
        if typing.get_origin(option) is tuple and isinstance(value, list):
            return tuple(value)
        if option is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
    return value
