"""Schema errors for method-config mappings that name the key: ``training.defaults.epochs: expected an integer``.

:class:`~s2cac.training.config.MethodConfig` is the one source of the keys and their types; this module reads
them from its type hints, so a typo or a wrong type is reported where it was written (``training.defaults``
or ``experiments.<name>``) before any value reaches the dataclass (where ``epochs: ten`` would fail with a
TypeError far from its cause).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

from s2cac.training.config import MethodConfig, NSBConfig

_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping"}


def check_method_mapping(mapping: Any, where: str, cls: type = MethodConfig) -> None:
    """Refuse unknown keys and values of the wrong type in a method-config mapping.

    Args:
        mapping: e.g. ``training.defaults`` or one experiment of a workflow config.
        where: how the user finds it in their file (``training.defaults``, ``experiments.s2cac``).
        cls: the dataclass whose fields the mapping sets.

    Raises:
        ValueError: ``"<where>.<key>: ..."``, naming the key and what was expected.
    """
    if mapping is None:
        return
    if not isinstance(mapping, dict):
        raise ValueError(f"{where}: expected a mapping of method config keys, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key, value in mapping.items():
        if key not in hints:
            raise ValueError(f"{where}.{key}: unknown method config key; known: {', '.join(known)}")
        _check_value(hints[key], value, f"{where}.{key}")


def _check_value(hint: Any, value: Any, where: str) -> None:
    if hint is NSBConfig:
        check_method_mapping(value, where, NSBConfig)
        return
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return
        rest = [o for o in options if o is not type(None)]
        if len(rest) == 1:
            _check_value(rest[0], value, where)
            return
    if origin is tuple:  # e.g. patch_size (z, y, x)
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ValueError(f"{where}: expected a list of {len(args)} integers, got {value!r}")
        for item in value:
            _check_value(args[0], item, where)
        return
    base = origin or hint
    if base is Any:
        return
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
        dict: lambda v: isinstance(v, dict),
    }.get(base)
    if ok is not None and not ok(value):
        raise ValueError(f"{where}: expected {_NAMES[base]}, got {value!r}")


def check_workflow_config(doc: dict[str, Any]) -> None:
    """Check ``training.defaults`` and every experiment of a workflow config, each blamed by its own name."""
    check_method_mapping((doc.get("training") or {}).get("defaults"), "training.defaults")
    for name, mapping in (doc.get("experiments") or {}).items():
        check_method_mapping(mapping, f"experiments.{name}")


def check_method_files(config: str | Path | None, experiment: str | None, experiments_file: str | Path | None) -> None:
    """The checks of :func:`check_workflow_config` / :func:`check_method_mapping` for ``s2cac train``'s files.

    Raises:
        ValueError: unreadable YAML or a bad key, naming the file and the key.
    """
    if experiment is not None and experiments_file is not None:
        doc = _read_yaml(experiments_file)
        try:
            check_method_mapping((doc.get("training") or {}).get("defaults"), "training.defaults")
            check_method_mapping((doc.get("experiments") or {}).get(experiment), f"experiments.{experiment}")
        except ValueError as err:
            raise ValueError(f"{experiments_file}: {err}") from None
    if config is not None:
        doc = _read_yaml(config)
        mapping = doc.get("method") if isinstance(doc.get("method"), dict) else doc
        try:
            check_method_mapping(mapping, "method" if mapping is not doc else "config")
        except ValueError as err:
            raise ValueError(f"{config}: {err}") from None


def _read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return doc
