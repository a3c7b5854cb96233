"""How one configuration value is checked: the generic kinds of value.

Positive integers, choices, optional strings, booleans, durations in seconds
and keyword-argument mappings; each check reads ``config[key]`` and raises a
:class:`~flask_ropc.errors.ConfigurationError` naming the key.
:mod:`flask_ropc.config` declares the keys and uses these for them (the
checks of one key only stay there). A leaf: imports ``errors`` only.
"""

from __future__ import annotations

import typing as t

from .errors import ConfigurationError


def positive_int(config: t.Mapping[str, t.Any], key: str) -> int:
    """``config[key]`` as a positive integer (not a bool)."""
    value = config[key]
    # bool is an int subclass; True as a lifetime is a mistake, not "1 second".
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(f"{key} must be a positive integer, got {value!r}")
    return value


def choice(config: t.Mapping[str, t.Any], key: str, choices: tuple[str, ...]) -> str:
    """``config[key]``, one of ``choices``."""
    value = config[key]
    if value not in choices:
        raise ConfigurationError(
            f"{key} must be one of {', '.join(choices)}, got {value!r}"
        )
    return t.cast(str, value)


def optional_str(config: t.Mapping[str, t.Any], key: str) -> str | None:
    """``config[key]`` as a non-blank string, or ``None``."""
    value: str | None = config[key]
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigurationError(f"{key} must be a non-empty string or None")
    return value


def boolean(config: t.Mapping[str, t.Any], key: str) -> bool:
    """``config[key]``, ``True`` or ``False``."""
    value = config[key]
    if not isinstance(value, bool):
        raise ConfigurationError(f"{key} must be True or False, got {value!r}")
    return value


def seconds(config: t.Mapping[str, t.Any], key: str) -> float | None:
    """``config[key]`` as a positive number of seconds, or ``None``."""
    value: float | None = config[key]
    # Not a bool either: True as a timeout is a mistake, not "1 second".
    if value is None or (type(value) in (int, float) and value > 0):
        return value
    raise ConfigurationError(f"{key} must be a positive number or None, got {value!r}")


def keyword_arguments(config: t.Mapping[str, t.Any], key: str) -> dict[str, t.Any]:
    """``config[key]`` as a dict of keyword arguments (``None``: empty).

    The message never quotes the value: it may hold a password.
    """
    value = {} if config[key] is None else config[key]
    if isinstance(value, dict) and all(isinstance(name, str) for name in value):
        return dict(value)
    raise ConfigurationError(f"{key} must be a dict of keyword arguments or None")
