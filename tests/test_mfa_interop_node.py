"""Auth0's own Node SDK, ``@auth0/auth0-auth-js``, through our MFA grant, live.

The SDK builds every URL as ``https://`` plus its ``domain`` option and
starts with OpenID discovery, whose ``issuer`` it compares with that URL; it
has no option for plain http. So the test serves the app over real TLS on
127.0.0.1 with a self-signed certificate made here, hands the certificate to
Node as ``NODE_EXTRA_CA_CERTS``, and gives the SDK ``domain="127.0.0.1:PORT"``.
Nothing in the SDK is patched and no ``customFetch`` rewrites requests. The
test runs twice: with the issuer taken from the request (no ``ROPC_ISSUER``),
and with ``ROPC_ISSUER`` set as a deployment sets it. Either way our issuer
is ``https://127.0.0.1:PORT`` without a trailing slash, and the SDK's check
accepts it: it compares parsed URLs, and Auth0's ``https://domain/`` is the
same URL.

tests/interop_node/auth0_mfa_flow.mjs runs ``getTokenByPassword`` (an
MFA-required error carrying ``mfa_token``), ``mfa.verify`` with the OTP this
test computes from the user's secret, ``/api/me``, ``getTokenByRefreshToken``,
the spent ``mfa_token`` again, then a second login with a wrong OTP and
``mfa.verify`` with a recovery code.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import pathlib
import shutil
import ssl
import subprocess
import threading
import typing as t
from collections.abc import Iterator

import flask
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from test_interop import NODE_DIR
from werkzeug.serving import make_server

from conftest import USERS
from conftest import LiveServer
from conftest import ropc_of
from mfa_helpers import MFA_GRANTS
from mfa_helpers import enable_mfa
from mfa_helpers import otp_now

pytestmark = pytest.mark.live

NODE_FLOW = NODE_DIR / "auth0_mfa_flow.mjs"
SDK = NODE_DIR / "node_modules" / "@auth0" / "auth0-auth-js"


def self_signed_certificate(directory: pathlib.Path) -> tuple[str, str]:
    """A certificate for the IP address 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture
def certificate(tmp_path: pathlib.Path) -> tuple[str, str]:
    """The TLS server's certificate and key files."""
    return self_signed_certificate(tmp_path)


@pytest.fixture(params=["request", "configured"])
def issuer(request: pytest.FixtureRequest) -> str:
    """Where the issuer comes from: the request's base URL, or ``ROPC_ISSUER``."""
    return str(request.param)


@pytest.fixture
def tls_server(
    app: flask.Flask,
    make_app: t.Callable[..., flask.Flask],
    certificate: tuple[str, str],
    issuer: str,
) -> Iterator[LiveServer]:
    """Serve an app over real HTTPS on a free loopback port.

    With ``issuer == "configured"`` it is a second app on the same database
    whose ``ROPC_ISSUER`` is the server's URL written as Auth0 writes its
    issuers (``https://domain/``), as a deployment sets it. That app can
    only be built once the port is known, so the server dispatches to
    whichever app is current.
    """
    served = {"app": app}

    def dispatch(environ: t.Any, start_response: t.Any) -> t.Any:
        return served["app"](environ, start_response)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = make_server("127.0.0.1", 0, dispatch, threaded=True, ssl_context=context)
    url = f"https://127.0.0.1:{server.server_port}"
    if issuer == "configured":
        served["app"] = make_app(ROPC_ISSUER=url + "/")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveServer(url, served["app"])
    finally:
        server.shutdown()
        thread.join(timeout=10)


def a_wrong_code(app: flask.Flask) -> str:
    """A six-digit code that no step of the accepted window (±1) produces."""
    window = {otp_now(app, offset_steps=offset) for offset in (-1, 0, 1)}
    return next(
        code for code in ("000000", "111111", "222222", "333333") if code not in window
    )


def test_auth0_auth_js_password_mfa_otp_refresh_and_recovery_code(
    tls_server: LiveServer, certificate: tuple[str, str]
) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not SDK.is_dir():
        pytest.skip(
            "@auth0/auth0-auth-js is not installed: run scripts/install-node-client"
        )
    app = tls_server.app
    verifier = enable_mfa(app)
    # The SDK authenticates with client_secret_post (openid-client's
    # ClientSecretPost); the server accepts only the registered method.
    with app.app_context():
        client, secret = ropc_of(app).clients.create(
            "Auth0 SDK app",
            auth_method="client_secret_post",
            grant_types=MFA_GRANTS,
            scopes=["api"],
        )
    env = dict(
        os.environ,
        NODE_EXTRA_CA_CERTS=certificate[0],
        ROPC_DOMAIN=tls_server.url.removeprefix("https://"),
        ROPC_CLIENT_ID=client.client_id,
        ROPC_CLIENT_SECRET=secret,
        ROPC_USERNAME="ann",
        ROPC_PASSWORD=USERS["ann"][0],
        # Now, just before the SDK sends it; the verifier accepts one step
        # either side, so a step boundary in between does not matter.
        ROPC_OTP=otp_now(app),
        ROPC_WRONG_OTP=a_wrong_code(app),
        ROPC_RECOVERY_CODE="RC-user-1",
    )
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
    context = json.dumps(results, indent=1)
    assert "crash" not in results, context
    assert results["library"] == {"name": "@auth0/auth0-auth-js", "version": "1.16.0"}
    # Discovery passed the SDK's issuer check; ours has no trailing slash.
    assert results["discovered"] == {
        "issuer": tls_server.url,
        "token_endpoint": f"{tls_server.url}/oauth/token",
    }, context

    # The password step: the SDK recognises our answer as Auth0's MFA error.
    password = results["password"]
    assert password["mfa_required"] is True, context
    assert (password["status"], password["error"]) == (403, "mfa_required"), context
    assert password["mfa_requirements"] == {
        "challenge": [{"type": "otp"}, {"type": "recovery-code"}]
    }, context

    # mfa.verify with the OTP: tokens, usable at the API, refreshable.
    login = results["verify_otp"]
    assert login["ok"] is True, context
    assert login["token_type"].lower() == "bearer" and login["jwt"], context
    assert login["refresh_token"] and login["expires_in_future"], context
    assert set(login["scope"].split()) == {"api", "offline_access"}, context
    assert results["api"] == {"status": 200, "sub": "user-1"}, context
    assert results["refresh"]["ok"] is True, context
    assert results["refresh"]["refresh_token"], context
    assert results["api_after_refresh"] == {"status": 200, "sub": "user-1"}, context

    # The spent mfa_token, through the SDK's MfaVerifyError.
    again = results["verify_again"]
    assert again["ok"] is False and again["name"] == "MfaVerifyError", context
    assert (again["status"], again["error"]) == (400, "invalid_grant"), context

    # A second login: a wrong OTP is refused, then a recovery code logs in
    # and the SDK hands on the new recovery code.
    assert results["second_password"]["mfa_required"] is True, context
    wrong = results["verify_wrong_otp"]
    assert (wrong["ok"], wrong["error"]) == (False, "invalid_grant"), context
    assert wrong["error_description"] == "Invalid otp_code.", context
    recovery = results["verify_recovery_code"]
    assert recovery["ok"] is True and recovery["recovery_code"] is True, context
    assert [call.factor for call in verifier.calls] == ["otp", "otp", "recovery-code"]
