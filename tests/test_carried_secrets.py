"""IdentityServer ``Sha512()`` client secrets carried over (#18): imported
without the plaintext, accepted at the real token endpoint, rehashed to our
SHA-256 digest on the first successful authentication, on SQLite and
PostgreSQL.

The race between that rehash and ``rotate-secret`` is staged without sleeps,
as in ``test_secret_rotation``: an SQLAlchemy event holds the token request
right after it has read the client while the rotation runs whole.
"""

from __future__ import annotations

import base64
import collections
import cProfile
import hashlib
import json
import logging
import pstats
import typing as t

import flask
import pytest

from flask_ropc import ROPC
from flask_ropc import hashing
from flask_ropc.state import get_state

from conftest import HeldAfterRead
from conftest import OAuthClient
from conftest import assert_oauth_error
from conftest import client_snapshot
from conftest import login
from conftest import password_form

#: The secret the IdentityServer client was given (its plaintext is only in
#: the client's own configuration; the server kept its hash).
SECRET = "s3cr3t-from-the-old-server-with-32chars"
#: ``SECRET.Sha512()``, as IdentityServer keeps it: base64 of SHA-512.
SECRET_SHA512 = base64.b64encode(hashlib.sha512(SECRET.encode()).digest()).decode()
#: Our digest of it, what the client must hold after its first login.
SECRET_SHA256_HEX = hashlib.sha256(SECRET.encode()).hexdigest()


def appsettings(*clients: dict[str, t.Any]) -> str:
    return json.dumps({"IdentityServer": {"Clients": list(clients)}})


def legacy(**extra: t.Any) -> dict[str, t.Any]:
    client = {
        "ClientId": "legacy",
        "ClientSecrets": [{"Value": SECRET_SHA512, "Type": "SharedSecret"}],
        "AllowedGrantTypes": ["password"],
        "AllowedScopes": ["api"],
    }
    client.update(extra)
    return client


def run_import(runner: t.Any, tmp_path: t.Any, text: str, *args: str) -> t.Any:
    path = tmp_path / "appsettings.json"
    path.write_text(text, encoding="utf-8")
    return runner.invoke(args=["ropc", "import", "identityserver", str(path), *args])


def stored_digest(app: flask.Flask, ropc: ROPC, client_id: str = "legacy") -> str:
    with app.app_context():
        digest = ropc.clients.require(client_id).secret_digest
    assert digest is not None
    return digest


def token_by_body(http: t.Any, client_id: str, secret: str) -> t.Any:
    form = password_form(client_id=client_id, client_secret=secret)
    return http.post("/oauth/token", data=form)


@pytest.fixture
def imported(runner: t.Any, tmp_path: t.Any) -> t.Any:
    """The CLI result of importing the ``legacy`` client."""
    result = run_import(runner, tmp_path, appsettings(legacy()))
    assert result.exit_code == 0, result.output
    return result


def test_the_test_vector_is_identityservers_sha512() -> None:
    # IdentityServer's Sha512(): SHA-512 of the UTF-8 string, base64.
    assert len(base64.b64decode(SECRET_SHA512)) == 64
    assert SECRET_SHA512.endswith("==") and len(SECRET_SHA512) == 88


def test_the_import_reports_the_carried_secret_and_never_prints_it(
    imported: t.Any, app: flask.Flask, ropc: ROPC
) -> None:
    assert "legacy: created" in imported.output
    assert "ClientSecrets:0: carried (sha512, rehashed on first use)" in (
        imported.output
    )
    digest = stored_digest(app, ropc)
    assert hashing.is_carried(digest) and len(digest) <= 64
    for value in (SECRET_SHA512, digest, digest.partition(":")[2]):
        assert value not in imported.output


@pytest.mark.parametrize("method", ["basic", "body"])
def test_the_old_secret_gets_a_token_and_is_rehashed_on_first_use(
    imported: t.Any,
    app: flask.Flask,
    ropc: ROPC,
    http: t.Any,
    caplog: pytest.LogCaptureFixture,
    method: str,
) -> None:
    def token() -> t.Any:
        if method == "basic":
            return login(http, OAuthClient("legacy", SECRET), scope="api")
        return token_by_body(http, "legacy", SECRET)

    carried = stored_digest(app, ropc)
    with caplog.at_level(logging.INFO, logger="flask_ropc"):
        first = token()
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["access_token"]
    # Our digest now, as if the secret had been created here.
    assert stored_digest(app, ropc) == SECRET_SHA256_HEX
    [upgrade] = [r for r in caplog.records if "carried-over" in r.getMessage()]
    assert upgrade.levelno == logging.INFO
    assert "legacy" in upgrade.getMessage()
    for value in (SECRET, SECRET_SHA512, carried, SECRET_SHA256_HEX):
        assert value not in caplog.text
    # The secret keeps working, by either method, and a wrong one still fails.
    assert login(http, OAuthClient("legacy", SECRET)).status_code == 200
    assert token_by_body(http, "legacy", SECRET).status_code == 200
    assert_oauth_error(
        login(http, OAuthClient("legacy", SECRET + "x")), 401, "invalid_client"
    )


def test_a_wrong_secret_is_invalid_client_and_rehashes_nothing(
    imported: t.Any, app: flask.Flask, ropc: ROPC, http: t.Any
) -> None:
    before = client_snapshot(app)
    for wrong in (SECRET.upper(), "", SECRET_SHA512, SECRET_SHA256_HEX):
        assert_oauth_error(
            login(http, OAuthClient("legacy", wrong)), 401, "invalid_client"
        )
        assert_oauth_error(token_by_body(http, "legacy", wrong), 401, "invalid_client")
    # The stored value itself is no secret that works.
    carried = stored_digest(app, ropc)
    assert_oauth_error(
        login(http, OAuthClient("legacy", carried)), 401, "invalid_client"
    )
    assert client_snapshot(app) == before


def test_show_client_and_json_say_carried_without_the_digest(
    imported: t.Any, runner: t.Any, app: flask.Flask, ropc: ROPC, http: t.Any
) -> None:
    carried = stored_digest(app, ropc)
    shown = runner.invoke(args=["ropc", "show-client", "legacy"])
    assert shown.exit_code == 0, shown.output
    assert "secret:                carried (sha512, rehashed on first use)" in (
        shown.output
    )
    as_json = runner.invoke(args=["ropc", "show-client", "--json", "legacy"])
    listed = runner.invoke(args=["ropc", "list-clients", "--json"])
    for result in (shown, as_json, listed):
        assert result.exit_code == 0, result.output
        assert carried not in result.output
        assert carried.partition(":")[2] not in result.output
    assert json.loads(as_json.output)["client_id"] == "legacy"
    assert login(http, OAuthClient("legacy", SECRET)).status_code == 200
    after = runner.invoke(args=["ropc", "show-client", "legacy"])
    assert "carried" not in after.output
    assert SECRET_SHA256_HEX not in after.output


def test_rotate_secret_replaces_a_carried_secret(
    imported: t.Any, runner: t.Any, app: flask.Flask, ropc: ROPC, http: t.Any
) -> None:
    rotated = runner.invoke(args=["ropc", "rotate-secret", "--json", "legacy"])
    assert rotated.exit_code == 0, rotated.output
    new_secret = json.loads(rotated.output)["client_secret"]
    assert stored_digest(app, ropc) == hashing.digest(new_secret)
    assert login(http, OAuthClient("legacy", new_secret)).status_code == 200
    assert_oauth_error(
        login(http, OAuthClient("legacy", SECRET)), 401, "invalid_client"
    )


def test_the_swap_with_a_stale_digest_changes_nothing(
    imported: t.Any, app: flask.Flask, ropc: ROPC, http: t.Any
) -> None:
    """A rotation between the read and the swap wins: the swap compares with
    the digest it read, which is no longer stored."""
    carried = stored_digest(app, ropc)
    with app.app_context():
        _, rotated = ropc.clients.rotate_secret("legacy")
        store = get_state().store.clients
        assert not store.replace_carried_digest("legacy", carried, SECRET_SHA256_HEX)
        assert not store.replace_carried_digest("nobody", carried, SECRET_SHA256_HEX)
        with pytest.raises(ValueError, match="only a carried digest"):
            store.replace_carried_digest("legacy", hashing.digest(rotated), carried)
    assert stored_digest(app, ropc) == hashing.digest(rotated)
    assert login(http, OAuthClient("legacy", rotated)).status_code == 200
    assert login(http, OAuthClient("legacy", SECRET)).status_code == 401


def test_the_swap_with_the_digest_read_replaces_it(
    imported: t.Any, app: flask.Flask, ropc: ROPC
) -> None:
    carried = stored_digest(app, ropc)
    with app.app_context():
        store = get_state().store.clients
        assert store.replace_carried_digest("legacy", carried, SECRET_SHA256_HEX)
        # Done once: the old value is gone, so a second swap changes nothing.
        assert not store.replace_carried_digest("legacy", carried, "0" * 64)
    assert stored_digest(app, ropc) == SECRET_SHA256_HEX


def test_a_rotation_during_the_first_login_wins_over_the_rehash(
    imported: t.Any,
    app: flask.Flask,
    ropc: ROPC,
    runner: t.Any,
    caplog: pytest.LogCaptureFixture,
    hold: HeldAfterRead,
) -> None:
    with caplog.at_level(logging.INFO, logger="flask_ropc"):
        # The login reads the carried digest, then the rotation runs whole.
        hold.start(lambda: login(app.test_client(), OAuthClient("legacy", SECRET)))
        rotated = runner.invoke(args=["ropc", "rotate-secret", "--json", "legacy"])
        held_login = hold.finish()
    assert rotated.exit_code == 0, rotated.output
    # The login had authenticated against what it read, as any request in
    # flight during a rotation does.
    assert held_login.status_code == 200, held_login.get_json()
    new_secret = json.loads(rotated.output)["client_secret"]
    # The swap found the rotated digest, not the one it read: it kept it.
    assert stored_digest(app, ropc) == hashing.digest(new_secret)
    assert "changed before it was rehashed" in caplog.text
    http = app.test_client()
    assert login(http, OAuthClient("legacy", new_secret)).status_code == 200
    assert login(http, OAuthClient("legacy", SECRET)).status_code == 401


def test_dry_run_reports_the_carried_secret_and_writes_nothing(
    runner: t.Any, tmp_path: t.Any, app: flask.Flask
) -> None:
    before = client_snapshot(app)
    result = run_import(runner, tmp_path, appsettings(legacy()), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "legacy: would create" in result.output
    assert "carried (sha512, rehashed on first use)" in result.output
    as_json = run_import(runner, tmp_path, appsettings(legacy()), "--dry-run", "--json")
    [client] = json.loads(as_json.output)["clients"]
    assert client["notes"] == [
        "ClientSecrets:0: carried (sha512, rehashed on first use)"
    ]
    assert SECRET_SHA512 not in result.output + as_json.output
    assert client_snapshot(app) == before


def test_re_import_is_unchanged_before_and_after_the_rehash(
    imported: t.Any,
    runner: t.Any,
    tmp_path: t.Any,
    app: flask.Flask,
    ropc: ROPC,
    http: t.Any,
) -> None:
    text = appsettings(legacy())
    before = client_snapshot(app)
    again = run_import(runner, tmp_path, text)
    assert again.exit_code == 0, again.output
    assert "legacy: unchanged" in again.output
    assert client_snapshot(app) == before
    assert login(http, OAuthClient("legacy", SECRET)).status_code == 200
    # The file still holds the Sha512() hash; our digest is newer and stays.
    rehashed = client_snapshot(app)
    after = run_import(runner, tmp_path, text)
    assert after.exit_code == 0, after.output
    assert "legacy: unchanged" in after.output
    assert client_snapshot(app) == rehashed
    assert stored_digest(app, ropc) == SECRET_SHA256_HEX


@pytest.mark.parametrize("length", [63, 65, 48, 1])
def test_a_hash_of_the_wrong_length_is_refused_with_its_path(
    runner: t.Any, tmp_path: t.Any, app: flask.Flask, length: int
) -> None:
    sha512 = (hashlib.sha512(SECRET.encode()).digest() * 2)[:length]
    bad = base64.b64encode(sha512).decode()
    text = appsettings(
        legacy(ClientId="fine"),
        legacy(ClientSecrets=[{"Type": "SharedSecret", "Value": bad}]),
    )
    before = client_snapshot(app)
    result = run_import(runner, tmp_path, text)
    assert result.exit_code == 1, result.output
    assert "IdentityServer:Clients:1:ClientSecrets:0:Value" in result.output
    assert f"decodes to {length} bytes" in result.output
    assert bad not in result.output
    assert client_snapshot(app) == before  # the valid first client neither


def test_of_several_secrets_the_first_is_kept_and_the_report_says_which(
    runner: t.Any, tmp_path: t.Any, app: flask.Flask, ropc: ROPC, http: t.Any
) -> None:
    other = base64.b64encode(hashlib.sha256(b"the-other-secret-of-20+").digest())
    secrets = [
        {"Value": SECRET_SHA512, "Type": "SharedSecret"},
        {"Value": other.decode(), "Type": "SharedSecret"},
    ]
    result = run_import(runner, tmp_path, appsettings(legacy(ClientSecrets=secrets)))
    assert result.exit_code == 0, result.output
    assert "ClientSecrets:0: carried (sha512, rehashed on first use)" in result.output
    assert (
        "2 secrets; Flask-ROPC keeps one per client: ClientSecrets:0 is imported, "
        "not ClientSecrets:1"
    ) in result.output
    assert hashing.is_carried(stored_digest(app, ropc))
    refused = login(http, OAuthClient("legacy", "the-other-secret-of-20+"))
    assert_oauth_error(refused, 401, "invalid_client")
    assert login(http, OAuthClient("legacy", SECRET)).status_code == 200


def test_require_dpop_becomes_dpop_required_and_back(
    runner: t.Any, tmp_path: t.Any, app: flask.Flask, ropc: ROPC, http: t.Any
) -> None:
    result = run_import(runner, tmp_path, appsettings(legacy(RequireDPoP=True)))
    assert result.exit_code == 0, result.output
    assert "  RequireDPoP true: dpop required" in result.output
    assert "RequireDPoP true cannot be honoured" not in result.output
    with app.app_context():
        assert ropc.clients.require("legacy").dpop == "required"
    # A request without a DPoP proof fails, whatever the secret.
    refused = login(http, OAuthClient("legacy", SECRET))
    assert_oauth_error(refused, 400, "invalid_dpop_proof")
    same = run_import(runner, tmp_path, appsettings(legacy(RequireDPoP=True)))
    assert "legacy: unchanged" in same.output
    dropped = run_import(runner, tmp_path, appsettings(legacy()))
    assert "legacy: updated (dpop)" in dropped.output
    with app.app_context():
        assert ropc.clients.require("legacy").dpop == "allowed"
    assert login(http, OAuthClient("legacy", SECRET)).status_code == 200


def _digest_calls(stored: str | None) -> collections.Counter[str]:
    profile = cProfile.Profile()
    profile.enable()
    try:
        hashing.verify_secret("a-wrong-secret-of-some-length", stored)
    finally:
        profile.disable()
    counts: collections.Counter[str] = collections.Counter()
    for (path, _, name), (_, calls, *_) in pstats.Stats(profile).stats.items():
        if path == "~" and ("openssl_sha" in name or "compare_digest" in name):
            counts[name] += calls
    return counts


def test_every_kind_of_stored_digest_costs_the_same_checks() -> None:
    """Both candidate digests are computed and compared whatever is stored,
    so timing does not tell a carried client from ours or a public one."""
    carried = hashing.carried_sha512(hashlib.sha512(b"x").digest())
    ours = _digest_calls(hashing.digest("x"))
    assert ours == _digest_calls(carried) == _digest_calls(None)
    assert sum(v for k, v in ours.items() if "sha256" in k) == 1
    assert sum(v for k, v in ours.items() if "sha512" in k) == 1
    assert sum(v for k, v in ours.items() if "compare_digest" in k) == 2
