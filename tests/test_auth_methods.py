"""Which token endpoint auth methods a confidential client accepts: both
secret methods by default (the request IdentityServer documents works on a
client made by the README's quickstart), restricted with ``--auth-method``,
changed with ``update-client``; a refused method is logged, never the secret."""

from __future__ import annotations

import json
import logging
import typing as t

import pytest

from flask_ropc import ROPC

from conftest import basic_auth
from conftest import password_form

TOKEN_URL = "/oauth/token"


def _create(runner: t.Any, *args: str) -> dict[str, t.Any]:
    result = runner.invoke(args=["ropc", "create-client", *args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert isinstance(data, dict)
    return data


def _body(http: t.Any, client_id: str, secret: str) -> t.Any:
    form = password_form(client_id=client_id, client_secret=secret)
    return http.post(TOKEN_URL, data=form)


def _basic(http: t.Any, client_id: str, secret: str) -> t.Any:
    return http.post(
        TOKEN_URL, data=password_form(), headers=basic_auth(client_id, secret)
    )


def test_identityserver_body_request_works_on_a_quickstart_client(
    runner: t.Any, http: t.Any
) -> None:
    """README: flask ropc create-client "Mobile app" --scope api; then the
    body form of IdentityServer's guide, and the Basic form, both get tokens."""
    data = _create(runner, "Mobile app", "--scope", "api")
    assert data["token_endpoint_auth_methods"] == [
        "client_secret_basic",
        "client_secret_post",
    ]
    response = _body(http, data["client_id"], data["client_secret"])
    assert response.status_code == 200, response.json
    assert response.json["token_type"] == "Bearer"
    response = _basic(http, data["client_id"], data["client_secret"])
    assert response.status_code == 200, response.json


@pytest.mark.parametrize(
    ("method", "allowed", "refused"),
    [("client_secret_post", _body, _basic), ("client_secret_basic", _basic, _body)],
)
def test_auth_method_restricts_a_client(
    runner: t.Any,
    http: t.Any,
    method: str,
    allowed: t.Callable[..., t.Any],
    refused: t.Callable[..., t.Any],
) -> None:
    data = _create(runner, "Restricted", "--scope", "api", "--auth-method", method)
    assert data["token_endpoint_auth_methods"] == [method]
    cid, secret = data["client_id"], data["client_secret"]
    assert allowed(http, cid, secret).status_code == 200
    response = refused(http, cid, secret)
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"


def test_update_client_changes_the_methods_and_keeps_the_client(
    runner: t.Any, http: t.Any, ropc: ROPC, app: t.Any
) -> None:
    data = _create(runner, "Mobile app", "--scope", "api")
    cid, secret = data["client_id"], data["client_secret"]
    result = runner.invoke(
        args=["ropc", "update-client", cid, "--auth-method", "client_secret_basic"]
    )
    assert result.exit_code == 0, result.output
    assert "client_secret_basic" in result.output
    assert _body(http, cid, secret).status_code == 401
    assert _basic(http, cid, secret).status_code == 200
    both = [
        "ropc",
        "update-client",
        cid,
        "--auth-method",
        "client_secret_post",
        "--auth-method",
        "client_secret_basic",
    ]
    assert runner.invoke(args=both).exit_code == 0
    assert _body(http, cid, secret).status_code == 200
    with app.app_context():
        client = ropc.clients.require(cid)
    assert client.token_endpoint_auth_methods == (
        "client_secret_basic",
        "client_secret_post",
    )
    assert client.token_endpoint_auth_method == "client_secret_basic"


def test_admin_api_takes_and_changes_auth_methods(ropc: ROPC, app: t.Any) -> None:
    with app.app_context():
        client, _ = ropc.clients.create("Post", auth_methods=["client_secret_post"])
        assert client.token_endpoint_auth_methods == ("client_secret_post",)
        assert client.token_endpoint_auth_method == "client_secret_post"
        assert client.to_dict()["token_endpoint_auth_methods"] == ["client_secret_post"]
        changed = ropc.clients.update(
            client.client_id, auth_methods=["client_secret_basic"]
        )
        assert changed.token_endpoint_auth_methods == ("client_secret_basic",)
        with pytest.raises(ValueError, match="at least one"):
            ropc.clients.update(client.client_id, auth_methods=[])
        with pytest.raises(ValueError, match="public"):
            ropc.clients.update(client.client_id, auth_methods=["none"])
        public, _ = ropc.clients.create("Public", auth_methods=["none"])
        assert public.is_public
        with pytest.raises(ValueError, match="public"):
            ropc.clients.update(public.client_id, auth_methods=["client_secret_post"])
        unchanged = ropc.clients.require(client.client_id)
    assert unchanged.token_endpoint_auth_methods == ("client_secret_basic",)


def test_a_refused_method_is_logged_at_info_without_the_secret(
    runner: t.Any, http: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    data = _create(
        runner, "Basic only", "--scope", "api", "--auth-method", "client_secret_basic"
    )
    cid, secret = data["client_id"], data["client_secret"]
    with caplog.at_level(logging.INFO, logger="flask_ropc"):
        response = _body(http, cid, secret)
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"
    assert "client_secret_post" not in json.dumps(response.json)
    lines = [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.INFO and cid in record.getMessage()
    ]
    assert len(lines) == 1, caplog.text
    assert "client_secret_post" in lines[0] and "client_secret_basic" in lines[0]
    assert secret not in caplog.text
