"""``flask ropc import identityserver``: IdentityServer clients and their
``Sha256()`` secret hashes carried over, through the real CLI and token
endpoint, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import json
import typing as t

import pytest

from flask_ropc.identityserver import parse
from flask_ropc.identityserver_json import InvalidClientFile

from conftest import OAuthClient
from conftest import client_snapshot
from conftest import login

#: ``"secret".Sha256()`` as IdentityServer stores it.
SECRET_SHA256 = "K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols="


def appsettings(*clients: dict[str, t.Any]) -> str:
    return json.dumps({"Logging": {}, "IdentityServer": {"Clients": list(clients)}})


def mobile(**extra: t.Any) -> dict[str, t.Any]:
    client = {
        "ClientId": "mobile",
        "ClientName": "Mobile app",
        "ClientSecrets": [{"Value": SECRET_SHA256, "Type": "SharedSecret"}],
        "AllowedGrantTypes": ["password"],
        "AllowedScopes": ["api1", "offline_access"],
        "AllowOfflineAccess": True,
        "AccessTokenLifetime": 600,
    }
    client.update(extra)
    return client


def run_import(runner: t.Any, tmp_path: t.Any, text: str, *args: str) -> t.Any:
    path = tmp_path / "appsettings.json"
    path.write_text(text, encoding="utf-8")
    return runner.invoke(args=["ropc", "import", "identityserver", str(path), *args])


def test_the_test_vector_is_sha256_of_secret() -> None:
    digest = base64.b64encode(hashlib.sha256(b"secret").digest()).decode()
    assert digest == SECRET_SHA256


def test_an_imported_client_gets_a_token_with_its_old_secret(
    runner: t.Any, tmp_path: t.Any, http: t.Any, ropc: t.Any, app: t.Any
) -> None:
    result = run_import(runner, tmp_path, appsettings(mobile()))
    assert result.exit_code == 0, result.output
    assert "mobile: created" in result.output
    with app.app_context():
        client = ropc.clients.require("mobile")
    assert client.name == "Mobile app"
    assert client.access_token_lifetime == 600
    assert set(client.grant_types) == {"password", "refresh_token"}
    assert client.secret_digest == hashlib.sha256(b"secret").hexdigest()
    response = login(http, OAuthClient("mobile", "secret"), scope="api1")
    assert response.status_code == 200, response.json
    assert response.json["expires_in"] == 600
    refused = login(http, OAuthClient("mobile", "secreT"), scope="api1")
    assert refused.status_code == 401
    # Neither IdentityServer's digest nor ours is ever printed.
    assert SECRET_SHA256 not in result.output
    assert client.secret_digest not in result.output


def test_re_import_is_unchanged_and_writes_nothing(
    runner: t.Any, tmp_path: t.Any, app: t.Any
) -> None:
    text = appsettings(mobile(), {"ClientId": "spa", "RequireClientSecret": False})
    assert run_import(runner, tmp_path, text).exit_code == 0
    before = client_snapshot(app)
    again = run_import(runner, tmp_path, text)
    assert again.exit_code == 0, again.output
    assert "mobile: unchanged" in again.output
    assert "spa: unchanged" in again.output
    assert client_snapshot(app) == before


def test_dry_run_writes_nothing_and_says_what_would_change(
    runner: t.Any, tmp_path: t.Any, app: t.Any, ropc: t.Any
) -> None:
    before = client_snapshot(app)
    result = run_import(runner, tmp_path, appsettings(mobile()), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "mobile: would create" in result.output
    assert client_snapshot(app) == before
    assert run_import(runner, tmp_path, appsettings(mobile())).exit_code == 0
    changed = appsettings(mobile(AccessTokenLifetime=900))
    before = client_snapshot(app)
    result = run_import(runner, tmp_path, changed, "--dry-run")
    assert "mobile: would update (access_token_lifetime)" in result.output
    assert client_snapshot(app) == before
    assert run_import(runner, tmp_path, changed).exit_code == 0
    with app.app_context():
        assert ropc.clients.require("mobile").access_token_lifetime == 900


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("{not json", "not JSON"),
        (
            appsettings(mobile(AccessTokenLifetime="long")),
            "Clients:0:AccessTokenLifetime",
        ),
        (appsettings(mobile(Enabled=1)), "IdentityServer:Clients:0:Enabled"),
        (appsettings(mobile(RefreshTokenUsage="Twice")), "Clients:0:RefreshTokenUsage"),
        (appsettings(mobile(AccessTokenType=7)), "Clients:0:AccessTokenType"),
        (
            appsettings(mobile(), {"ClientName": "x"}),
            "IdentityServer:Clients:1:ClientId",
        ),
        (appsettings(mobile(), mobile()), "IdentityServer:Clients:1:ClientId"),
        (appsettings(mobile(AllowedScopes="api1")), "Clients:0:AllowedScopes"),
        (json.dumps({"IdentityServer": {}}), "IdentityServer:Clients"),
    ],
)
def test_invalid_input_names_the_field_and_writes_nothing(
    runner: t.Any, tmp_path: t.Any, app: t.Any, text: str, path: str
) -> None:
    # All or nothing: the valid first client is not written either.
    before = client_snapshot(app)
    result = run_import(runner, tmp_path, text)
    assert result.exit_code != 0
    assert path in result.output
    assert client_snapshot(app) == before


def test_enums_by_name_in_any_case_or_by_number() -> None:
    by_name = parse(
        appsettings(
            mobile(
                RefreshTokenExpiration="sliding",
                RefreshTokenUsage="ONETIMEONLY",
                AccessTokenType="reference",
                SlidingRefreshTokenLifetime=100,
                AbsoluteRefreshTokenLifetime=1000,
            )
        )
    )[0]
    by_number = parse(
        appsettings(
            mobile(
                RefreshTokenExpiration=0,
                RefreshTokenUsage="1",
                AccessTokenType=1,
                SlidingRefreshTokenLifetime="100",
                AbsoluteRefreshTokenLifetime=1000,
            )
        )
    )[0]
    assert by_name == by_number
    assert by_name.access_token_format == "reference"
    assert by_name.refresh_token_sliding_lifetime == 100
    assert by_name.refresh_token_absolute_lifetime == 1000
    assert by_name.findings == ()
    absolute = parse(appsettings(mobile(RefreshTokenExpiration=1)))[0]
    assert absolute.refresh_token_sliding_lifetime == 2592000
    assert absolute.refresh_token_absolute_lifetime == 2592000


def test_property_names_match_in_any_case_and_arrays_are_read() -> None:
    lower = {key.lower(): value for key, value in mobile().items()}
    assert parse(json.dumps([lower]))[0] == parse(appsettings(mobile()))[0]
    assert parse(json.dumps({"clients": [mobile()]}))[0].client_id == "mobile"


def test_every_unsupported_setting_is_reported(runner: t.Any, tmp_path: t.Any) -> None:
    sha512 = base64.b64encode(hashlib.sha512(b"other").digest()).decode()
    client = mobile(
        AllowedGrantTypes=["password", "client_credentials"],
        RefreshTokenUsage="ReUse",
        UpdateAccessTokenClaimsOnRefresh=True,
        Claims=[{"Type": "tenant", "Value": "acme"}],
        RequireDPoP=True,
        RedirectUris=["https://app/cb"],
        RequirePkce=True,  # IdentityServer's default: nothing to report
        ClientSecrets=[
            {"Value": SECRET_SHA256, "Expiration": "2030-01-01T00:00:00Z"},
            {"Value": sha512},
            {"Value": "plain-text", "Type": "SharedSecret"},
            {"Value": "abc", "Type": "X509Thumbprint"},
            {"Value": SECRET_SHA256, "Expiration": "2020-01-01T00:00:00"},
        ],
    )
    imported = parse(appsettings(client))[0]
    text = "\n".join(imported.findings)
    for setting in (
        "'client_credentials'",
        "RefreshTokenUsage ReUse",
        "UpdateAccessTokenClaimsOnRefresh",
        "Claims",
        "RedirectUris",
        "ClientSecrets:0:Expiration",
        # Sha512() hashes carry over now (#18), but one secret is kept.
        "2 secrets; Flask-ROPC keeps one per client: ClientSecrets:0 is "
        "imported, not ClientSecrets:1",
        "ClientSecrets:2",
        "ClientSecrets:3",
        "ClientSecrets:4 cannot be honoured: expired",
    ):
        assert setting in text
    assert "RequirePkce" not in text
    # RequireDPoP is honoured now (per-client DPoP): a note, not a finding.
    assert "RequireDPoP" not in text
    assert imported.dpop_required
    assert imported.secret_digest == hashlib.sha256(b"secret").hexdigest()
    result = run_import(runner, tmp_path, appsettings(client))
    assert result.exit_code == 0, result.output
    assert "\n  RequireDPoP true: dpop required" in result.output
    assert sha512 not in result.output and SECRET_SHA256 not in result.output


def test_a_public_client_and_a_disabled_one(
    runner: t.Any, tmp_path: t.Any, http: t.Any, ropc: t.Any, app: t.Any
) -> None:
    text = appsettings(
        {
            "ClientId": "spa",
            "RequireClientSecret": False,
            "AllowedGrantTypes": ["password"],
        },
        mobile(ClientId="old", Enabled=False),
    )
    assert run_import(runner, tmp_path, text).exit_code == 0
    with app.app_context():
        assert ropc.clients.require("spa").is_public
        assert ropc.clients.require("old").enabled is False
    assert login(http, OAuthClient("spa", None)).status_code == 200
    assert login(http, OAuthClient("old", "secret")).status_code == 401


def test_the_parser_raises_with_the_path() -> None:
    with pytest.raises(InvalidClientFile) as raised:
        parse(json.dumps([{"ClientId": "a", "ClientSecrets": [{"Value": 5}]}]))
    assert raised.value.path == "0:ClientSecrets:0:Value"


def test_an_expired_secret_is_not_carried_over_and_a_bad_date_is_refused() -> None:
    expired = [{"Value": SECRET_SHA256, "Expiration": "2001-01-01T00:00:00Z"}]
    client = parse(appsettings(mobile(ClientSecrets=expired)))[0]
    assert client.secret_digest is None
    with pytest.raises(InvalidClientFile) as raised:
        parse(appsettings(mobile(ClientSecrets=[{"Value": "x", "Expiration": "soon"}])))
    assert raised.value.path == "IdentityServer:Clients:0:ClientSecrets:0:Expiration"


def test_json_output_is_the_plan_without_digests(
    runner: t.Any, tmp_path: t.Any, app: t.Any
) -> None:
    before = client_snapshot(app)
    text = appsettings(mobile(RequireDPoP=True))
    result = run_import(runner, tmp_path, text, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["dry_run"] is True
    [client] = data["clients"]
    assert client["client_id"] == "mobile" and client["action"] == "create"
    assert any("RequireDPoP" in note for note in client["notes"])
    assert not any("RequireDPoP" in finding for finding in client["findings"])
    assert SECRET_SHA256 not in result.output
    assert hashlib.sha256(b"secret").hexdigest() not in result.output
    assert client_snapshot(app) == before
