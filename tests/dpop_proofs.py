"""DPoP proofs for tests (RFC 9449 §4.2), made with joserfc: a key pair and
proofs by it, each field overridable to make a bad one."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import typing as t

from joserfc import jws
from joserfc.jwk import ECKey
from joserfc.jwk import OKPKey
from joserfc.jwk import RSAKey
from joserfc.jws import JWSRegistry

from conftest import basic_auth
from conftest import password_form


class _QuietEdDSA(type(JWSRegistry.algorithms["EdDSA"])):  # type: ignore[misc]
    security_warning = None


class _Registry(JWSRegistry):
    algorithms = {**JWSRegistry.algorithms, "EdDSA": _QuietEdDSA()}
    max_header_length = 4096


def _generate(alg: str) -> t.Any:
    if alg == "ES256":
        return ECKey.generate_key("P-256")
    if alg in ("RS256", "PS256"):
        return RSAKey.generate_key(2048)
    return OKPKey.generate_key("Ed25519")


def ath(token: str) -> str:
    """base64url SHA-256 of an access token."""
    digest = hashlib.sha256(token.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class DPoPKey:
    """A client's DPoP key pair."""

    def __init__(self, alg: str = "ES256") -> None:
        self.alg = alg
        self.key = _generate(alg)

    @property
    def public_jwk(self) -> dict[str, t.Any]:
        return dict(self.key.as_dict(private=False))

    @property
    def jkt(self) -> str:
        return str(self.key.thumbprint())

    def proof(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        nonce: str | None = None,
        iat: int | None = None,
        jti: str | None = None,
        header: dict[str, t.Any] | None = None,
        claims: dict[str, t.Any] | None = None,
        sign_with: t.Any = None,
    ) -> str:
        """A proof for ``method`` ``url``; ``header``/``claims`` override."""
        head: dict[str, t.Any] = {
            "typ": "dpop+jwt",
            "alg": self.alg,
            "jwk": self.public_jwk,
        }
        head.update(header or {})
        head = {k: v for k, v in head.items() if v is not None}
        body: dict[str, t.Any] = {
            "jti": jti or secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time()) if iat is None else iat,
        }
        if token is not None:
            body["ath"] = ath(token)
        if nonce is not None:
            body["nonce"] = nonce
        body.update(claims or {})
        body = {k: v for k, v in body.items() if v is not None}
        payload = json.dumps(body).encode()
        key = sign_with if sign_with is not None else self.key
        return jws.serialize_compact(
            head,
            payload,
            key,
            registry=_Registry(algorithms=[head["alg"]], strict_check_header=False),
        )


def unsigned(header: dict[str, t.Any], claims: dict[str, t.Any]) -> str:
    """A JWS with an empty signature (``alg: none`` and other forgeries)."""
    return ".".join(
        (b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), "")
    )


ISSUER = "https://auth.example"
TOKEN_URL = ISSUER + "/oauth/token"


def token_request(
    http: t.Any,
    client: t.Any,
    proofs: str | list[str] | None,
    data: dict[str, str] | None = None,
    base_url: str = "http://localhost",
    **headers: str,
) -> t.Any:
    """A password grant (or ``data``) as ``client`` with these DPoP headers."""
    data = data or password_form()
    values = [proofs] if isinstance(proofs, str) else proofs or []
    extra = [("DPoP", value) for value in values] + list(headers.items())
    if client.secret is None:
        return http.post(
            "/oauth/token",
            data={"client_id": client.client_id, **data},
            headers=extra,
            base_url=base_url,
        )
    headers_list = [*basic_auth(*client).items(), *extra]
    return http.post("/oauth/token", data=data, headers=headers_list, base_url=base_url)
