"""Interoperability: OAuth client libraries nobody here wrote, over real HTTP.

Every client runs the same flow against a live server on 127.0.0.1, once with
HTTP Basic client authentication (``client_secret_basic``) and once with the
credentials in the body (``client_secret_post``). The server only accepts a
client's registered method, so a passing run proves the library really used
the method asked for.

1. password grant asking for ``api offline_access``: a Bearer JWT, a refresh
   token, ``expires_in``, the granted scope and the validator's extra field;
2. ``GET /api/me`` with the access token: 200;
3. refresh: a new access token and a new refresh token; ``/api/me`` works
   with the new access token;
4. revoke the new access token (RFC 7009): 200 ``{}``; ``/api/me`` then
   answers 401 ``invalid_token``;
5. replay the first (used) refresh token: ``invalid_grant``; reuse detection
   has revoked the family, so the second refresh token is refused too;
6. a new login; revoke its refresh token with ``token_type_hint``: 200
   ``{}``; it cannot refresh any more, and its access token (same family) is
   401 at ``/api/me``.

Clients (versions that passed are printed by :func:`test_client_versions`):

* requests-oauthlib ``OAuth2Session`` + ``LegacyApplicationClient``
  (2.0.0 on oauthlib 4.0.1); it has no revocation helper, so revocation is a
  plain POST through the same session;
* Authlib's ``requests_client.OAuth2Session`` (Authlib 1.9.10, requests
  2.34.2);
* Authlib's ``httpx_client.AsyncOAuth2Client`` (Authlib 1.9.10 on httpx2
  2.16.2: Authlib 1.9.10 prefers ``httpx2`` and warns when it falls back to
  ``httpx``, which this suite's ``filterwarnings = error`` turns into an
  import error);
* Node.js ``simple-oauth2`` 5.1.0 (Node v20), in ``tests/interop_node``,
  installed by ``scripts/install-node-client``;
* the ``curl`` binary (7.88.1; ``%header{}`` in ``-w`` needs 7.84+).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import json
import os
import pathlib
import shutil
import subprocess
import typing as t

import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from oauthlib.oauth2 import LegacyApplicationClient
from oauthlib.oauth2 import OAuth2Error
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from conftest import USERS

pytestmark = pytest.mark.live

AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
SCOPE = ["api", "offline_access"]
USERNAME = "ann"
PASSWORD, SUBJECT = USERS[USERNAME]

NODE_DIR = pathlib.Path(__file__).parent / "interop_node"
NODE_FLOW = NODE_DIR / "flow.js"

PYTHON_DISTRIBUTIONS = [
    "requests-oauthlib",
    "oauthlib",
    "Authlib",
    "requests",
    "httpx2",
]


# -- the shared flow ---------------------------------------------------------


@dataclasses.dataclass
class Refused:
    """A token request the library reported as an OAuth error."""

    error: str | None
    status: int | None = None


class Flow(t.Protocol):
    """One client library's way of doing each step; tokens are its dicts."""

    def login(self) -> t.Mapping[str, t.Any]: ...

    def refresh(self, token: t.Mapping[str, t.Any]) -> t.Any: ...

    def revoke(self, token: t.Mapping[str, t.Any], hint: str) -> dict[str, t.Any]: ...

    def api(self, token: t.Mapping[str, t.Any]) -> dict[str, t.Any]: ...


def summary(token: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The token response fields the assertions look at."""
    return {
        name: token.get(name)
        for name in (
            "access_token",
            "refresh_token",
            "token_type",
            "expires_in",
            "scope",
            "display_name",
        )
    }


def refusal(outcome: t.Any) -> dict[str, t.Any]:
    if isinstance(outcome, Refused):
        return {"refused": True, "error": outcome.error, "status": outcome.status}
    return {"refused": False, "token": summary(outcome)}


def run_flow(flow: Flow) -> dict[str, t.Any]:
    """Steps 1-6 of the module docstring; the same shape as flow.js prints."""
    results: dict[str, t.Any] = {}
    first = flow.login()
    results["login"] = summary(first)
    results["api_before"] = flow.api(first)
    second = flow.refresh(first)
    assert not isinstance(second, Refused), f"refresh refused: {second}"
    results["refreshed"] = summary(second)
    results["api_after_refresh"] = flow.api(second)
    results["revoke_access"] = flow.revoke(second, "access_token")
    results["api_after_revoke"] = flow.api(second)
    results["replay_old_refresh"] = refusal(flow.refresh(first))
    results["refresh_after_reuse"] = refusal(flow.refresh(second))
    third = flow.login()
    results["second_login"] = summary(third)
    results["revoke_refresh"] = flow.revoke(third, "refresh_token")
    results["refresh_after_revoke"] = refusal(flow.refresh(third))
    results["api_after_refresh_revoke"] = flow.api(third)
    return results


def scopes_of(value: t.Any) -> set[str]:
    """A granted scope as a set: oauthlib parses it into a list, others don't."""
    if isinstance(value, str):
        return set(value.split())
    return set(value or ())


def assert_token(token: dict[str, t.Any]) -> None:
    assert "failed" not in token, token
    assert str(token["token_type"]).lower() == "bearer"
    assert token["expires_in"] == 3600
    assert scopes_of(token["scope"]) == set(SCOPE)
    # An RFC 9068 JWT: header.payload.signature.
    assert isinstance(token["access_token"], str)
    assert token["access_token"].count(".") == 2
    assert isinstance(token["refresh_token"], str) and token["refresh_token"]


def assert_flow(results: dict[str, t.Any], label: str) -> None:
    """Check every step of :func:`run_flow` (or flow.js) in order."""
    context = f"{label}: {json.dumps(results, indent=1, default=str)}"
    login, refreshed = results["login"], results.get("refreshed", {})
    assert_token(login)
    assert login["display_name"] == USERNAME.title(), context
    assert results["api_before"]["status"] == 200, context
    assert results["api_before"]["sub"] == SUBJECT, context

    assert_token(refreshed)
    assert refreshed["refresh_token"] != login["refresh_token"], context
    assert refreshed["access_token"] != login["access_token"], context
    assert results["api_after_refresh"]["status"] == 200, context
    assert results["api_after_refresh"]["sub"] == SUBJECT, context

    revoke = results["revoke_access"]
    assert revoke.get("ok") is True and revoke["body"] == {}, context
    after = results["api_after_revoke"]
    assert after["status"] == 401, context
    assert 'error="invalid_token"' in (after["www_authenticate"] or ""), context

    for step in ("replay_old_refresh", "refresh_after_reuse"):
        outcome = results[step]
        assert outcome["refused"] is True, f"{step} not refused; {context}"
        assert outcome["error"] == "invalid_grant", context
        assert outcome.get("status") in (400, None), context

    assert_token(results["second_login"])
    revoke = results["revoke_refresh"]
    assert revoke.get("ok") is True and revoke["body"] == {}, context
    outcome = results["refresh_after_revoke"]
    assert outcome["refused"] is True, context
    assert outcome["error"] == "invalid_grant", context
    assert results["api_after_refresh_revoke"]["status"] == 401, context


@pytest.fixture(params=AUTH_METHODS)
def auth_method(request: pytest.FixtureRequest) -> str:
    return t.cast(str, request.param)


@pytest.fixture
def client(make_client: t.Any, auth_method: str) -> t.Any:
    """A confidential client with offline access using ``auth_method``."""
    return make_client(
        "Interop client",
        auth_method=auth_method,
        grant_types=["password", "refresh_token"],
        scopes=["api"],
    )


def _json(response: t.Any) -> t.Any:
    try:
        return response.json()
    except ValueError:
        return None


def _api_result(response: t.Any) -> dict[str, t.Any]:
    body = _json(response)
    return {
        "status": response.status_code,
        "sub": body.get("sub") if isinstance(body, dict) else None,
        "www_authenticate": response.headers.get("WWW-Authenticate"),
    }


def _revoke_result(response: t.Any) -> dict[str, t.Any]:
    return {
        "ok": response.status_code == 200,
        "status": response.status_code,
        "body": _json(response),
    }


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PYTHON_DISTRIBUTIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    package = NODE_DIR / "node_modules" / "simple-oauth2" / "package.json"
    versions["simple-oauth2 (npm)"] = (
        json.loads(package.read_text())["version"] if package.exists() else None
    )
    tools = {"node": ["node", "--version"], "curl": ["curl", "--version"]}
    for tool, argv in tools.items():
        if shutil.which(tool) is None:
            versions[tool] = None
            continue
        out = subprocess.run(argv, capture_output=True, text=True, check=True)
        versions[tool] = out.stdout.splitlines()[0].strip()
    return versions


VERSIONS = _versions()


def test_client_versions(record_property: t.Any) -> None:
    """Record the versions under test (``pytest -rP`` or the JUnit XML)."""
    for name, version in VERSIONS.items():
        print(f"{name}: {version}")
        record_property(name, version)
    for name in PYTHON_DISTRIBUTIONS:
        assert VERSIONS[name], f"{name} is not installed"


# -- 1. requests-oauthlib ----------------------------------------------------


class RequestsOAuthlibFlow:
    """``OAuth2Session`` with ``LegacyApplicationClient`` (the password grant).

    Quirk: oauthlib refuses ``http://`` even to loopback; the test sets
    ``OAUTHLIB_INSECURE_TRANSPORT=1`` (our server allows loopback http).
    """

    def __init__(self, base: str, client: t.Any, auth_method: str) -> None:
        self.base = base
        self.client = client
        self.basic = auth_method == "client_secret_basic"
        self.session = OAuth2Session(
            client=LegacyApplicationClient(client_id=client.client_id), scope=SCOPE
        )

    def login(self) -> t.Mapping[str, t.Any]:
        # With client_secret and no include_client_id, fetch_token builds an
        # HTTPBasicAuth; include_client_id=True puts both in the body.
        # Quirk: the session's scope is only compared with the response; the
        # request's scope must be passed here (LegacyApplicationClient reads
        # its own scope, not the session's).
        token: t.Mapping[str, t.Any] = self.session.fetch_token(
            f"{self.base}/oauth/token",
            username=USERNAME,
            password=PASSWORD,
            scope=SCOPE,
            client_secret=self.client.secret,
            include_client_id=not self.basic,
        )
        return dict(token)

    def refresh(self, token: t.Mapping[str, t.Any]) -> t.Any:
        if self.basic:
            extra: dict[str, t.Any] = {
                "auth": HTTPBasicAuth(self.client.client_id, self.client.secret)
            }
        else:
            extra = {
                "client_id": self.client.client_id,
                "client_secret": self.client.secret,
            }
        try:
            new = self.session.refresh_token(
                f"{self.base}/oauth/token",
                refresh_token=token["refresh_token"],
                **extra,
            )
        except OAuth2Error as error:
            return Refused(error.error)
        return dict(new)

    def revoke(self, token: t.Mapping[str, t.Any], hint: str) -> dict[str, t.Any]:
        data = {"token": token[hint], "token_type_hint": hint}
        auth = None
        if self.basic:
            auth = HTTPBasicAuth(self.client.client_id, self.client.secret)
        else:
            data.update(
                client_id=self.client.client_id, client_secret=self.client.secret
            )
        response = self.session.post(
            f"{self.base}/oauth/revoke",
            data=data,
            auth=auth,
            withhold_token=True,
            timeout=30,
        )
        return _revoke_result(response)

    def api(self, token: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        self.session.token = dict(token)
        return _api_result(self.session.get(f"{self.base}/api/me", timeout=30))


def test_requests_oauthlib(
    live_server: t.Any,
    client: t.Any,
    auth_method: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    flow = RequestsOAuthlibFlow(live_server.url, client, auth_method)
    with flow.session:
        results = run_flow(flow)
    assert_flow(
        results,
        f"requests-oauthlib {VERSIONS['requests-oauthlib']} "
        f"(oauthlib {VERSIONS['oauthlib']}), {auth_method}",
    )


# -- 2. Authlib's requests client --------------------------------------------


class AuthlibRequestsFlow:
    """``authlib.integrations.requests_client.OAuth2Session``.

    Authlib allows plain http to loopback without any setting.
    """

    def __init__(self, base: str, client: t.Any, auth_method: str) -> None:
        self.base = base
        self.session = AuthlibSession(
            client_id=client.client_id,
            client_secret=client.secret,
            token_endpoint_auth_method=auth_method,
            revocation_endpoint_auth_method=auth_method,
            scope=" ".join(SCOPE),
        )

    def login(self) -> t.Mapping[str, t.Any]:
        token: t.Mapping[str, t.Any] = self.session.fetch_token(
            f"{self.base}/oauth/token",
            username=USERNAME,
            password=PASSWORD,
            grant_type="password",
        )
        return dict(token)

    def refresh(self, token: t.Mapping[str, t.Any]) -> t.Any:
        try:
            new = self.session.refresh_token(
                f"{self.base}/oauth/token", refresh_token=token["refresh_token"]
            )
        except OAuthError as error:
            return Refused(error.error)
        return dict(new)

    def revoke(self, token: t.Mapping[str, t.Any], hint: str) -> dict[str, t.Any]:
        response = self.session.revoke_token(
            f"{self.base}/oauth/revoke", token=token[hint], token_type_hint=hint
        )
        return _revoke_result(response)

    def api(self, token: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        self.session.token = dict(token)
        return _api_result(self.session.get(f"{self.base}/api/me", timeout=30))


def test_authlib_requests_client(
    live_server: t.Any, client: t.Any, auth_method: str
) -> None:
    flow = AuthlibRequestsFlow(live_server.url, client, auth_method)
    with flow.session:
        results = run_flow(flow)
    assert_flow(
        results, f"Authlib {VERSIONS['Authlib']} requests_client, {auth_method}"
    )


# -- 3. Authlib's httpx client (async) ---------------------------------------


class AuthlibAsyncFlow:
    """``authlib.integrations.httpx_client.AsyncOAuth2Client``.

    Each step is awaited on one event loop (``asyncio.Runner``), so the
    client's connection pool and refresh lock live on the loop they were
    made on.
    """

    def __init__(
        self, runner: asyncio.Runner, base: str, client: t.Any, auth_method: str
    ) -> None:
        self.runner = runner
        self.base = base

        async def make() -> AsyncOAuth2Client:
            return AsyncOAuth2Client(
                client_id=client.client_id,
                client_secret=client.secret,
                token_endpoint_auth_method=auth_method,
                revocation_endpoint_auth_method=auth_method,
                scope=" ".join(SCOPE),
                timeout=30,
            )

        self.client = runner.run(make())

    def login(self) -> t.Mapping[str, t.Any]:
        token: t.Mapping[str, t.Any] = self.runner.run(
            self.client.fetch_token(
                f"{self.base}/oauth/token",
                username=USERNAME,
                password=PASSWORD,
                grant_type="password",
            )
        )
        return dict(token)

    def refresh(self, token: t.Mapping[str, t.Any]) -> t.Any:
        try:
            new = self.runner.run(
                self.client.refresh_token(
                    f"{self.base}/oauth/token", refresh_token=token["refresh_token"]
                )
            )
        except OAuthError as error:
            return Refused(error.error)
        return dict(new)

    def revoke(self, token: t.Mapping[str, t.Any], hint: str) -> dict[str, t.Any]:
        response = self.runner.run(
            self.client.revoke_token(
                f"{self.base}/oauth/revoke", token=token[hint], token_type_hint=hint
            )
        )
        return _revoke_result(response)

    def api(self, token: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        self.client.token = dict(token)
        response = self.runner.run(self.client.get(f"{self.base}/api/me"))
        return _api_result(response)


def test_authlib_httpx_async_client(
    live_server: t.Any, client: t.Any, auth_method: str
) -> None:
    with asyncio.Runner() as runner:
        flow = AuthlibAsyncFlow(runner, live_server.url, client, auth_method)
        try:
            results = run_flow(flow)
        finally:
            runner.run(flow.client.aclose())
    assert_flow(
        results,
        f"Authlib {VERSIONS['Authlib']} AsyncOAuth2Client "
        f"(httpx2 {VERSIONS['httpx2']}), {auth_method}",
    )


# -- 4. Node.js simple-oauth2 ------------------------------------------------


def test_node_simple_oauth2(
    live_server: t.Any, client: t.Any, auth_method: str
) -> None:
    """tests/interop_node/flow.js runs the flow; its JSON has the same shape."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "simple-oauth2").is_dir():
        pytest.skip("simple-oauth2 is not installed: run scripts/install-node-client")
    env = {
        **os.environ,
        "ROPC_URL": live_server.url,
        "ROPC_CLIENT_ID": client.client_id,
        "ROPC_CLIENT_SECRET": client.secret,
        "ROPC_AUTH_METHOD": auth_method,
        "ROPC_USERNAME": USERNAME,
        "ROPC_PASSWORD": PASSWORD,
    }
    done = subprocess.run(
        ["node", str(NODE_FLOW)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert results["library"]["name"] == "simple-oauth2"
    assert results["auth_method"] == auth_method
    assert results["login"]["expires_at_set"] is True
    assert_flow(
        results,
        f"simple-oauth2 {results['library']['version']} on node "
        f"{results['node']}, {auth_method}",
    )


# -- 5. curl -----------------------------------------------------------------


@dataclasses.dataclass
class CurlResponse:
    status: int
    body: t.Any
    www_authenticate: str


def curl(*args: str) -> CurlResponse:
    """Run the real curl binary; the status and one header come from ``-w``."""
    done = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--max-time",
            "30",
            "--write-out",
            "\n%{http_code}\n%header{www-authenticate}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    text, status, challenge = done.stdout.rsplit("\n", 2)
    try:
        body = json.loads(text)
    except ValueError:
        body = text
    return CurlResponse(int(status), body, challenge)


class CurlFlow:
    """``curl -u id:secret`` (Basic) or ``--data-urlencode client_secret=…``."""

    def __init__(self, base: str, client: t.Any, auth_method: str) -> None:
        self.base = base
        if auth_method == "client_secret_basic":
            self.auth = ["--user", f"{client.client_id}:{client.secret}"]
        else:
            self.auth = [
                "--data-urlencode",
                f"client_id={client.client_id}",
                "--data-urlencode",
                f"client_secret={client.secret}",
            ]

    def post(self, path: str, **form: str) -> CurlResponse:
        fields = [
            part for k, v in form.items() for part in ("--data-urlencode", f"{k}={v}")
        ]
        return curl(*self.auth, *fields, f"{self.base}{path}")

    def login(self) -> t.Mapping[str, t.Any]:
        response = self.post(
            "/oauth/token",
            grant_type="password",
            username=USERNAME,
            password=PASSWORD,
            scope=" ".join(SCOPE),
        )
        assert response.status == 200, response
        return t.cast(dict[str, t.Any], response.body)

    def refresh(self, token: t.Mapping[str, t.Any]) -> t.Any:
        response = self.post(
            "/oauth/token",
            grant_type="refresh_token",
            refresh_token=token["refresh_token"],
        )
        if response.status != 200:
            error = (
                response.body.get("error") if isinstance(response.body, dict) else None
            )
            return Refused(error, response.status)
        return response.body

    def revoke(self, token: t.Mapping[str, t.Any], hint: str) -> dict[str, t.Any]:
        response = self.post("/oauth/revoke", token=token[hint], token_type_hint=hint)
        return {
            "ok": response.status == 200,
            "status": response.status,
            "body": response.body,
        }

    def api(self, token: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        response = curl(
            "--header",
            f"Authorization: Bearer {token['access_token']}",
            f"{self.base}/api/me",
        )
        body = response.body
        return {
            "status": response.status,
            "sub": body.get("sub") if isinstance(body, dict) else None,
            "www_authenticate": response.www_authenticate,
        }


@pytest.fixture
def curl_binary() -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")


@pytest.mark.usefixtures("curl_binary")
def test_curl(live_server: t.Any, client: t.Any, auth_method: str) -> None:
    results = run_flow(CurlFlow(live_server.url, client, auth_method))
    assert_flow(results, f"{VERSIONS['curl']}, {auth_method}")


@pytest.mark.usefixtures("curl_binary")
def test_curl_other_auth_method_is_refused(
    live_server: t.Any, client: t.Any, auth_method: str
) -> None:
    """The control for the runs above: the registered method is enforced,
    so a client that sent the other method would not have got a token."""
    other = next(m for m in AUTH_METHODS if m != auth_method)
    flow = CurlFlow(live_server.url, client, other)
    response = flow.post(
        "/oauth/token", grant_type="password", username=USERNAME, password=PASSWORD
    )
    assert response.status == 401, response
    assert response.body["error"] == "invalid_client"
