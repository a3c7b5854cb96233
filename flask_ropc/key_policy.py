"""The automatic key lifecycle as pure functions of the stored keys and the time.

With ``ROPC_KEY_ROTATION_ENABLED``, which database key signs, when a new key
is made and when a key steps down are computed here from each key's
``created_at``, its stored state and the clock, never from anything a
process remembers: every worker, and a worker restarted at any moment,
reaches the same answer (Duende IdentityServer's automatic key management
works the same way). With interval *I*, propagation *G* and retention *R*,
a key created at *c*:

* is published (``pending``) from *c*, and may sign from *c + G*, when every
  API's cached JWKS already lists it;
* signs while it is the **oldest** eligible key, at most until *c + I*
  (longer only while its successor is still propagating, at most *G* more);
* a new key is made when the youngest key has *G* or less left to sign;
* steps down to ``previous``, published for *R* more (then it leaves the
  JWKS): ``publish_until`` is stamped once, when it steps down.

With no key able to sign (an empty table, or a deployment down longer than
*I + G*), a fresh key signs at once; the caller warns. A leaf: imports
``models`` (the key states), ``config_values`` and ``errors`` only.
"""

from __future__ import annotations

import dataclasses
import typing as t
from collections.abc import Sequence

from .config_values import boolean
from .config_values import positive_int
from .errors import ConfigurationError
from .models import ACTIVE
from .models import PENDING

DAY = 24 * 3600

#: Longest interval, propagation or retention accepted: ten years (more is a
#: value in milliseconds or a stray digit).
MAX_DURATION = 10 * 365 * DAY

#: How often (seconds of the app's clock) a worker re-reads the keys and, if
#: a transition is due, makes it: the "cheap check" on token and JWKS
#: requests. A worker may sign with what it read this long ago, so every
#: ``publish_until`` adds it.
CHECK_INTERVAL = 60


class KeyRow(t.Protocol):
    """What the policy reads of a stored key row."""

    @property
    def id(self) -> int: ...
    @property
    def kid(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def created_at(self) -> int: ...


@dataclasses.dataclass(frozen=True)
class KeyPolicy:
    """The durations of the lifecycle, in seconds (checked by the settings)."""

    #: A key signs at most this long after it was made (``I``).
    rotation_interval: int
    #: A new key is published this long before it signs (``G``).
    propagation_time: int
    #: A key stays published this long after it stopped signing (``R``).
    retention: int


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to change in the stored keys now; empty when nothing is due."""

    #: Make a new key in this state (``active``: nothing can sign; ``pending``:
    #: the successor of the signer), or ``None``.
    create: str | None = None
    #: The pending key that signs now, to store as ``active``.
    activate: str | None = None
    #: Keys that stop signing for good, to store as ``previous``.
    demote: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.create or self.activate or self.demote)


def _order(row: KeyRow) -> tuple[int, int]:
    return (row.created_at, row.id)


def live_keys(rows: Sequence[KeyRow]) -> list[KeyRow]:
    """The keys that may still sign (``pending`` or ``active``), oldest first."""
    return sorted((r for r in rows if r.status in (PENDING, ACTIVE)), key=_order)


def signer_of(rows: Sequence[KeyRow], now: int, policy: KeyPolicy) -> KeyRow | None:
    """The key that signs at ``now``, or ``None`` if none can.

    Keys older than the active one never sign again, so signers follow
    creation order. Then, in this order: the oldest key that is propagated
    (the active key counts from its creation: it was made to sign at once)
    and within its interval; the active key, while its successor is still
    propagating (a late rotation, a restart after downtime), for at most
    ``G`` past its interval; the oldest key within its interval that is
    not yet propagated (the caller warns).
    """
    interval, propagation = policy.rotation_interval, policy.propagation_time
    live = live_keys(rows)
    active = [r for r in live if r.status == ACTIVE]
    current = active[-1] if active else None
    if current is not None:
        live = [r for r in live if _order(r) >= _order(current)]
    for row in live:
        propagated = row.status == ACTIVE or row.created_at + propagation <= now
        if propagated and now < row.created_at + interval:
            return row
    if current is not None and now < current.created_at + interval + propagation:
        return current
    for row in live:
        if row.created_at <= now < row.created_at + interval:
            return row
    return None


def plan(rows: Sequence[KeyRow], now: int, policy: KeyPolicy) -> Plan:
    """The changes due at ``now``: idempotent, so safe to compute anywhere."""
    live = live_keys(rows)
    signer = signer_of(rows, now, policy)
    if signer is None:
        return Plan(create=ACTIVE, demote=tuple(r.kid for r in live))
    create = None
    youngest = live[-1]
    if youngest.created_at + policy.rotation_interval - now <= policy.propagation_time:
        create = PENDING
    demote = tuple(
        r.kid
        for r in live
        if r is not signer
        and (
            _order(r) < _order(signer)
            or r.status == ACTIVE
            or now >= r.created_at + policy.rotation_interval
        )
    )
    activate = signer.kid if signer.status == PENDING else None
    return Plan(create=create, activate=activate, demote=demote)


def publish_until(row: KeyRow, now: int, retention: int, policy: KeyPolicy) -> int:
    """When a key stepping down at ``now`` leaves the JWKS.

    ``retention`` after the later of its interval's end and now (a step
    made late, after downtime, still keeps it for the full retention), plus
    :data:`CHECK_INTERVAL`, for workers that still sign with what they read
    before.
    """
    end = max(row.created_at + policy.rotation_interval, now)
    return end + retention + CHECK_INTERVAL


def next_change(rows: Sequence[KeyRow], now: int, policy: KeyPolicy) -> int | None:
    """When the next key is due to be made (for ``--if-due``'s report)."""
    live = live_keys(rows)
    if not live:
        return None
    youngest = live[-1]
    return youngest.created_at + policy.rotation_interval - policy.propagation_time


def policy_from_config(config: t.Mapping[str, t.Any]) -> KeyPolicy | None:
    """The ``ROPC_KEY_*`` lifecycle settings, or ``None`` while it is off.

    The durations are checked even while it is off (a typo should not wait
    for the day it is turned on); how they relate to each other and to the
    token and JWKS lifetimes only when it is on.

    :raises ConfigurationError: naming the key and the rule.
    """
    enabled = boolean(config, "ROPC_KEY_ROTATION_ENABLED")
    names = (
        "ROPC_KEY_ROTATION_INTERVAL",
        "ROPC_KEY_PROPAGATION_TIME",
        "ROPC_KEY_RETENTION",
    )
    interval, propagation, retention = (positive_int(config, n) for n in names)
    for name, value in zip(names, (interval, propagation, retention), strict=True):
        if value > MAX_DURATION:
            raise ConfigurationError(
                f"{name} must be at most {MAX_DURATION} seconds (ten years), "
                f"got {value!r}"
            )
    if not enabled:
        return None
    if config.get("ROPC_SIGNING_KEYS") is not None:
        raise ConfigurationError(
            "ROPC_KEY_ROTATION_ENABLED rotates the keys kept in the database, "
            "but ROPC_SIGNING_KEYS is set (keys from configuration change "
            "with it); unset one of the two"
        )
    if propagation >= interval:
        raise ConfigurationError(
            f"ROPC_KEY_PROPAGATION_TIME ({propagation}) must be less than "
            f"ROPC_KEY_ROTATION_INTERVAL ({interval}): a key would stop "
            "signing before it could start"
        )
    max_age = config["ROPC_JWKS_MAX_AGE"]
    if propagation < max_age:
        raise ConfigurationError(
            f"ROPC_KEY_PROPAGATION_TIME ({propagation}) must be at least "
            f"ROPC_JWKS_MAX_AGE ({max_age}): an API that cached the JWKS just "
            "before a new key was published would reject its tokens"
        )
    lifetime = config["ROPC_ACCESS_TOKEN_LIFETIME"]
    if retention < lifetime + max_age:
        raise ConfigurationError(
            f"ROPC_KEY_RETENTION ({retention}) must be at least "
            f"ROPC_ACCESS_TOKEN_LIFETIME + ROPC_JWKS_MAX_AGE ({lifetime} + "
            f"{max_age}): tokens signed just before a rotation must verify "
            "until they expire, against a JWKS cached that long"
        )
    return KeyPolicy(interval, propagation, retention)
