"""A wrong secret for a known client id costs what an unknown id costs.

Before #13 a known id answered about 50 µs slower than an unknown one (the
row was turned into a :class:`~flask_ropc.Client`, an unknown id skipped
that): enough to tell, over many requests, which client ids exist. Timings
are never asserted here (they depend on the machine); instead this checks,
on purpose on internals, that both paths run the same functions of ours the
same number of times, and the same number of SHA-256 digests and
constant-time comparisons. The measurement is in the report of #13 and
docs/security.md.
"""

from __future__ import annotations

import collections
import cProfile
import pstats
import secrets
import typing as t

import pytest

from conftest import OAuthClient
from conftest import basic_auth
from conftest import password_form

#: Built-in functions whose calls are counted too.
COUNTED_BUILTINS = ("openssl_sha256", "compare_digest")


def calls_of(request: t.Callable[[], t.Any]) -> collections.Counter[str]:
    """How often ``request`` called each function of ours, and each counted
    built-in, as ``file:function`` (line numbers left out)."""
    profile = cProfile.Profile()
    profile.enable()
    try:
        response = request()
    finally:
        profile.disable()
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.get_json()["error"] == "invalid_client"
    counts: collections.Counter[str] = collections.Counter()
    for (path, _, name), (_, calls, *_) in pstats.Stats(profile).stats.items():
        if "/flask_ropc/" in path:
            counts[f"{path.rsplit('/flask_ropc/', 1)[1]}:{name}"] += calls
        elif path == "~" and any(b in name for b in COUNTED_BUILTINS):
            counts[name] += calls
    return counts


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_unknown_id_and_wrong_secret_run_the_same_code(
    http: t.Any, make_client: t.Callable[..., OAuthClient], auth_method: str
) -> None:
    known = make_client(auth_method=auth_method).client_id
    unknown = secrets.token_hex(16)  # what generated ids look like

    def attempt(client_id: str) -> t.Callable[[], t.Any]:
        wrong = secrets.token_urlsafe(32)
        if auth_method == "client_secret_post":
            form = password_form(client_id=client_id, client_secret=wrong)
            return lambda: http.post("/oauth/token", data=form)
        headers = basic_auth(client_id, wrong)
        return lambda: http.post("/oauth/token", data=password_form(), headers=headers)

    attempt(known)()  # warm up: keys, caches, compiled statements
    attempt(unknown)()
    known_calls = calls_of(attempt(known))
    unknown_calls = calls_of(attempt(unknown))

    assert known_calls == unknown_calls
    digests = [n for n in known_calls if "sha256" in n]
    comparisons = [n for n in known_calls if "compare_digest" in n]
    assert digests and comparisons  # the secret is checked at all
    assert any(name.endswith(":from_row") for name in known_calls)
