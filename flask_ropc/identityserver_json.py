"""Reading JSON values the way .NET configuration binding does.

Helpers of :mod:`~flask_ropc.identityserver`: each reads one value at a
configuration path (``IdentityServer:Clients:0:Enabled``) or raises
:class:`InvalidClientFile` naming it; :class:`Reader` reads one object's
properties that way. A leaf: the standard library only.
"""

from __future__ import annotations

import datetime
import typing as t


class InvalidClientFile(ValueError):
    """The file cannot be imported; :attr:`path` names the bad field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


def read_lower(path: str, value: t.Any) -> dict[str, t.Any]:
    """An object, its keys lower-cased (binding ignores their case)."""
    if not isinstance(value, dict):
        raise InvalidClientFile(path, "must be an object")
    return {key.lower(): item for key, item in value.items()}


def read_int(path: str, value: t.Any) -> int:
    """An integer, or a string of one (configuration values are text)."""
    # Configuration binding reads "3600" as well as 3600.
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidClientFile(path, "must be an integer")
    return value


def read_bool(path: str, value: t.Any) -> bool:
    """``true``/``false``, or the string of one in any case."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise InvalidClientFile(path, "must be true or false")
    return value


def read_str(path: str, value: t.Any) -> str:
    """A string."""
    if not isinstance(value, str):
        raise InvalidClientFile(path, "must be a string")
    return value


def read_strings(path: str, value: t.Any) -> list[str]:
    """An array of strings."""
    if not isinstance(value, list):
        raise InvalidClientFile(path, "must be an array of strings")
    return [read_str(f"{path}:{i}", item) for i, item in enumerate(value)]


def read_enum(path: str, value: t.Any, names: dict[str, int]) -> int:
    """An enum member by name in any case, or by number (``"1"`` too)."""
    lowered = {name.lower(): number for name, number in names.items()}
    if isinstance(value, str) and value.lower() in lowered:
        return lowered[value.lower()]
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if value in names.values():
            return value
    choices = ", ".join(f"{name}={number}" for name, number in names.items())
    raise InvalidClientFile(path, f"unknown value {value!r}; choose from {choices}")


def read_time(path: str, value: t.Any) -> float:
    """An ISO 8601 date and time (UTC when no offset) as Unix time."""
    try:
        when = datetime.datetime.fromisoformat(read_str(path, value))
    except ValueError:
        raise InvalidClientFile(path, "must be an ISO 8601 date and time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


class Reader:
    """One JSON object (a client, a secret): typed reads by property name in
    any case, and the findings and notes about it.

    :param path: the object's configuration path.
    :param raw: the object.
    """

    def __init__(self, path: str, raw: t.Any) -> None:
        #: The object's configuration path, e.g. ``IdentityServer:Clients:0``.
        self.path = path
        #: The properties, by lower-cased name.
        self.raw = read_lower(path, raw)
        #: Each lower-cased name as the file spells it.
        self.names = {key.lower(): key for key in raw}
        #: "X cannot be honoured: why" lines.
        self.findings: list[str] = []
        #: "X: how it was carried over" lines.
        self.notes: list[str] = []

    def at(self, key: str) -> str:
        """The path of property ``key`` (lower-cased), as the file spells it."""
        return f"{self.path}:{self.names.get(key, key)}"

    def get(
        self, key: str, read: t.Callable[[str, t.Any], t.Any], default: t.Any
    ) -> t.Any:
        """Property ``key`` read with ``read``, or ``default`` when absent."""
        value = self.raw.get(key)
        return default if value is None else read(self.at(key), value)

    def cannot(self, setting: str, why: str) -> None:
        """Report that ``setting`` is not honoured, and ``why``."""
        self.findings.append(f"{setting} cannot be honoured: {why}")
