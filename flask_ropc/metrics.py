"""OpenTelemetry metrics, counted by a subscriber of our signals.

Optional: with ``opentelemetry-api`` installed (the ``otel`` extra) and
``ROPC_METRICS_ENABLED`` on, ``init_app`` calls :func:`subscribe`, which
creates the ``flask_ropc`` meter's instruments and connects one receiver per
row of :data:`SUBSCRIPTIONS` to that app's signals. Without the package
nothing is connected: no signal has a receiver, so ``signals.send`` returns at
once and the request path does no metrics work at all. Only the API is used,
never the SDK: the app installs a ``MeterProvider`` and an exporter (or
passes one as ``ROPC(meter_provider=...)``); until then the API's meters do
nothing.

Attribute values come from closed sets only (``metrics_attributes``), so an
attacker cannot grow the number of time series.
``client_authentication_failed``, whose client id is as presented, is left
out on purpose.

Imports ``signals``, ``metrics_attributes``, ``state`` and, when installed,
``opentelemetry.metrics``.
"""

from __future__ import annotations

import dataclasses
import logging
import typing as t
import weakref
from collections.abc import Callable
from collections.abc import Iterable
from importlib import metadata

import flask

from . import signals
from .metrics_attributes import Attributes
from .metrics_attributes import client_attribute
from .metrics_attributes import mfa_outcome
from .metrics_attributes import revocation
from .metrics_attributes import throttle_refusal
from .metrics_attributes import token_request
from .metrics_attributes import validation
from .metrics_attributes import validation_result
from .state import get_state

try:
    from opentelemetry import metrics as otel
except ImportError:  # the optional "otel" extra is not installed
    otel = None  # type: ignore[assignment]

#: Whether ``opentelemetry-api`` could be imported.
AVAILABLE = otel is not None

#: The meter's name (its version is the installed Flask-ROPC's).
METER_NAME = "flask_ropc"

log = logging.getLogger("flask_ropc")

TOKEN_REQUESTS = "flask_ropc.token.requests"
PASSWORD_VALIDATIONS = "flask_ropc.password.validations"
VALIDATION_DURATION = "flask_ropc.password.validation.duration"
THROTTLE_REFUSALS = "flask_ropc.throttle.refusals"
REUSE_DETECTIONS = "flask_ropc.refresh.reuse_detections"
REVOCATIONS = "flask_ropc.token.revocations"
MFA_OUTCOMES = "flask_ropc.mfa.outcomes"
SIGNING_KEY_AGE = "flask_ropc.signing_key.age"

#: Seconds; the OpenTelemetry HTTP duration buckets, which suit a validator
#: that hashes a password (a few to a few hundred milliseconds).
DURATION_BUCKETS = (
    *(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75),
    *(1.0, 2.5, 5.0, 7.5, 10.0),
)


@dataclasses.dataclass(frozen=True)
class Instrument:
    """What to create: the kind, unit and description of one instrument."""

    #: ``"counter"`` or ``"histogram"``.
    kind: str
    unit: str
    description: str


#: Every synchronous instrument a row of :data:`SUBSCRIPTIONS` may name; only
#: those some row names are created.
INSTRUMENTS: dict[str, Instrument] = {
    TOKEN_REQUESTS: Instrument(
        "counter", "{request}", "Token endpoint requests, by grant type and result"
    ),
    PASSWORD_VALIDATIONS: Instrument(
        "counter", "{validation}", "Calls of the app's password validator"
    ),
    VALIDATION_DURATION: Instrument(
        "histogram", "s", "How long the app's password validator took"
    ),
    THROTTLE_REFUSALS: Instrument(
        "counter", "{attempt}", "Password attempts refused by brute-force throttling"
    ),
    REUSE_DETECTIONS: Instrument(
        "counter", "{family}", "Refresh token reuse detected; the family was revoked"
    ),
    REVOCATIONS: Instrument(
        "counter", "{token}", "Tokens revoked at the revocation endpoint"
    ),
    MFA_OUTCOMES: Instrument(
        "counter", "{event}", "Steps of the multi-factor login, by result"
    ),
}


@dataclasses.dataclass(frozen=True)
class Subscription:
    """For every ``signal`` an app sends: add 1 to ``instrument`` (or record
    the payload's ``value`` field, for a histogram) with ``attributes``."""

    signal: t.Any
    instrument: str
    attributes: Attributes
    value: str | None = None


#: What is counted. A new signal is one row. ``recovery_code_used`` has
#: none: it follows ``mfa_succeeded`` (factor ``recovery-code``), which
#: already counts that login once.
SUBSCRIPTIONS: tuple[Subscription, ...] = (
    Subscription(signals.token_request_handled, TOKEN_REQUESTS, token_request),
    Subscription(signals.password_validated, PASSWORD_VALIDATIONS, validation),
    Subscription(
        signals.password_validated,
        VALIDATION_DURATION,
        validation_result,
        value="duration",
    ),
    Subscription(signals.throttled, THROTTLE_REFUSALS, throttle_refusal),
    Subscription(signals.refresh_token_reused, REUSE_DETECTIONS, client_attribute),
    Subscription(signals.token_revoked, REVOCATIONS, revocation),
    Subscription(signals.mfa_required, MFA_OUTCOMES, mfa_outcome("required")),
    Subscription(signals.mfa_succeeded, MFA_OUTCOMES, mfa_outcome("succeeded")),
    Subscription(signals.mfa_failed, MFA_OUTCOMES, mfa_outcome("failed")),
    Subscription(signals.mfa_locked, MFA_OUTCOMES, mfa_outcome("locked")),
)


def subscribe(app: flask.Flask, provider: otel.MeterProvider | None = None) -> None:
    """Create the instruments on ``provider`` (default: the global one) and
    count ``app``'s events into them.

    Internal: called by ``init_app``; the signature may change.
    """
    assert otel is not None, "opentelemetry-api is not installed"
    provider = provider or otel.get_meter_provider()
    meter = provider.get_meter(METER_NAME, _version())
    names = dict.fromkeys(row.instrument for row in SUBSCRIPTIONS)
    made = {name: _create(meter, name, INSTRUMENTS[name]) for name in names}
    for row in SUBSCRIPTIONS:
        # weak=False: nothing else holds the receiver. Blinker drops it when
        # the app goes away, and it holds no reference to the app.
        row.signal.connect(_receiver(row, made[row.instrument]), sender=app, weak=False)
    meter.create_observable_gauge(
        SIGNING_KEY_AGE,
        callbacks=[_signing_key_age(weakref.ref(app))],
        unit="s",
        description="Seconds since the key that signs new tokens was created",
    )


def _create(meter: otel.Meter, name: str, spec: Instrument) -> t.Any:
    if spec.kind == "histogram":
        return meter.create_histogram(
            name,
            unit=spec.unit,
            description=spec.description,
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
    return meter.create_counter(name, unit=spec.unit, description=spec.description)


def _receiver(row: Subscription, instrument: t.Any) -> Callable[..., None]:
    def receive(sender: flask.Flask, **payload: t.Any) -> None:
        try:
            attributes = row.attributes(payload)
            if row.value is None:
                instrument.add(1, attributes)
            else:
                instrument.record(payload[row.value], attributes)
        except Exception:
            # A metrics fault must never fail the login it counts.
            log.exception("metrics: counting %s failed", row.instrument)

    return receive


def _signing_key_age(
    app_ref: weakref.ref[flask.Flask],
) -> Callable[[otel.CallbackOptions], Iterable[otel.Observation]]:
    """The gauge's callback: run by the exporter's thread, at each collection.

    The key ring caches the signer (re-read at most every 30 s), so a scrape
    rarely reaches the database. Configured keys have no creation time and
    report nothing; so does a failure (logged), rather than a made-up value.
    """

    def observe(options: otel.CallbackOptions) -> Iterable[otel.Observation]:
        app = app_ref()
        if app is None:
            return []
        try:
            with app.app_context():
                state = get_state(app)
                key = state.keyring.signing_key()
                now = state.store.now()
        except Exception as error:
            log.warning(
                "metrics: could not read the signing key's age (%s)",
                type(error).__name__,
            )
            return []
        if not key.created_at:
            return []
        return [otel.Observation(max(0, now - key.created_at))]

    return observe


def _version() -> str | None:
    try:
        return metadata.version("Flask-ROPC")
    except metadata.PackageNotFoundError:  # run from a checkout, not installed
        return None
