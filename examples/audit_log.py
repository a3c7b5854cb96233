"""An audit-log subscriber: every Flask-ROPC event as one JSON line.

Use it from any app::

    from examples.audit_log import write_audit_events_to
    write_audit_events_to(app, "audit.jsonl")

Each line holds the event name, a UTC timestamp and the event's payload
(request id, client IP, client id, hashed username, reason, ...). Payloads
never contain passwords, secrets or tokens, so the file is safe to ship to a
log store.
"""

from __future__ import annotations

import datetime
import json
import threading
import typing as t

from flask import Flask

from flask_ropc import signals

EVENTS = {
    "token_issued": signals.token_issued,
    "password_grant_failed": signals.password_grant_failed,
    "throttled": signals.throttled,
    "client_authentication_failed": signals.client_authentication_failed,
    "refresh_token_reused": signals.refresh_token_reused,
    "refresh_token_repeated": signals.refresh_token_repeated,
    "token_revoked": signals.token_revoked,
}


def write_audit_events_to(app: Flask, path: str) -> t.Callable[[], None]:
    """Append every event sent by ``app`` to ``path`` as JSON lines.

    Returns a function that disconnects the subscriber again.
    """
    lock = threading.Lock()
    receivers = []
    for name, signal in EVENTS.items():

        def receiver(sender: Flask, _name: str = name, **payload: t.Any) -> None:
            record = {
                "event": _name,
                "time": datetime.datetime.now(datetime.UTC).isoformat(),
                **payload,
            }
            line = json.dumps(record, default=list, sort_keys=True)
            with lock, open(path, "a", encoding="utf-8") as log_file:
                log_file.write(line + "\n")

        signal.connect(receiver, sender=app, weak=False)
        receivers.append((signal, receiver))

    def disconnect() -> None:
        for signal, receiver in receivers:
            signal.disconnect(receiver, sender=app)

    return disconnect
