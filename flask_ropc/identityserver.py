"""Reading IdentityServer client definitions into Flask-ROPC client settings.

Accepts what Duende IdentityServer / IdentityServer4 users keep: an
``appsettings.json`` with an ``IdentityServer:Clients`` section, an object
with ``Clients``, or a JSON array of ``Client`` objects. Property names match
in any case and enums by name (any case) or number, as .NET configuration
binding does. Every setting we cannot honour becomes a finding; invalid input
raises :class:`InvalidClientFile` naming the path of the bad field. A leaf:
imports only :mod:`~flask_ropc.identityserver_json`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import time
import typing as t

from .identityserver_json import InvalidClientFile
from .identityserver_json import read_bool
from .identityserver_json import read_enum
from .identityserver_json import read_int
from .identityserver_json import read_lower
from .identityserver_json import read_str
from .identityserver_json import read_strings
from .identityserver_json import read_time

_TOKEN_USAGE = {"ReUse": 0, "OneTimeOnly": 1}
_TOKEN_EXPIRATION = {"Sliding": 0, "Absolute": 1}
_ACCESS_TOKEN_TYPE = {"Jwt": 0, "Reference": 1}

# Client properties we read; everything else is reported unless it holds
# IdentityServer's default or nothing at all (a full export lists them all).
_READ = {
    "clientid", "clientname", "enabled", "clientsecrets", "requireclientsecret",
    "allowedgranttypes", "allowedscopes", "allowofflineaccess",
    "accesstokenlifetime", "accesstokentype", "refreshtokenusage",
    "refreshtokenexpiration", "slidingrefreshtokenlifetime",
    "absoluterefreshtokenlifetime", "updateaccesstokenclaimsonrefresh",
    "claims", "requiredpop",
}  # fmt: skip
_DEFAULTS: dict[str, t.Any] = {
    "protocoltype": "oidc", "requirepkce": True, "includejwtid": True,
    "clientclaimsprefix": "client_", "alwayssendclientclaims": False,
    "requireconsent": False, "allowrememberconsent": True,
    "identitytokenlifetime": 300, "authorizationcodelifetime": 300,
    "dpopvalidationmode": "Iat", "dpopclockskew": "00:05:00",
    "enablelocallogin": True, "frontchannellogoutsessionrequired": True,
    "backchannellogoutsessionrequired": True, "alwaysincludeuserclaimsinidtoken": False,
    "allowplaintextpkce": False, "allowaccesstokensviabrowser": False,
    "consentlifetime": None, "userssolifetime": None, "devicecodelifetime": 300,
    "pairwisesubjectsalt": None, "coordinatelifetimewithusersession": None,
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class ImportedClient:
    """One IdentityServer client as Flask-ROPC settings, with its findings."""

    client_id: str
    name: str
    enabled: bool
    #: ``RequireClientSecret: false``.
    public: bool
    #: Hex SHA-256 of the secret carried over, or ``None``.
    secret_digest: str | None
    scopes: tuple[str, ...]
    grant_types: tuple[str, ...]
    access_token_lifetime: int
    access_token_format: str
    refresh_token_sliding_lifetime: int | None
    refresh_token_absolute_lifetime: int | None
    #: "setting X cannot be honoured because ..." lines.
    findings: tuple[str, ...]


def parse(text: str) -> list[ImportedClient]:
    """Read the clients in ``text`` (JSON).

    :raises InvalidClientFile: not JSON, wrong types, an unknown enum value,
        a missing or duplicate ``ClientId``.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidClientFile(
            "", f"not JSON (line {error.lineno}, column {error.colno})"
        ) from None
    path, clients = _clients_of(document)
    result: list[ImportedClient] = []
    seen: dict[str, str] = {}
    for index, raw in enumerate(clients):
        item_path = f"{path}:{index}" if path else str(index)
        client = _client(item_path, raw)
        if client.client_id in seen:
            raise InvalidClientFile(
                f"{item_path}:ClientId",
                f"duplicate client id {client.client_id!r}"
                f" (also at {seen[client.client_id]})",
            )
        seen[client.client_id] = item_path
        result.append(client)
    return result


def _clients_of(document: t.Any) -> tuple[str, list[t.Any]]:
    if isinstance(document, list):
        return "", document
    top = read_lower("", document)
    path = ""
    if "identityserver" in top:
        top = read_lower("IdentityServer", top["identityserver"])
        path = "IdentityServer:"
    if "clients" not in top:
        raise InvalidClientFile(path + "Clients", "missing (no clients to import)")
    clients = top["clients"]
    if not isinstance(clients, list):
        raise InvalidClientFile(path + "Clients", "must be an array")
    return path + "Clients", clients


class _Reader:
    """One client object: typed reads by property name, with findings."""

    def __init__(self, path: str, raw: t.Any) -> None:
        self.path = path
        self.raw = read_lower(path, raw)
        self.names = {key.lower(): key for key in raw}
        self.findings: list[str] = []

    def at(self, key: str) -> str:
        return f"{self.path}:{self.names.get(key, key)}"

    def get(
        self, key: str, read: t.Callable[[str, t.Any], t.Any], default: t.Any
    ) -> t.Any:
        value = self.raw.get(key)
        return default if value is None else read(self.at(key), value)

    def cannot(self, setting: str, why: str) -> None:
        self.findings.append(f"{setting} cannot be honoured: {why}")


def _client(path: str, raw: t.Any) -> ImportedClient:
    r = _Reader(path, raw)
    if r.raw.get("clientid") is None:
        raise InvalidClientFile(f"{path}:ClientId", "missing")
    client_id = read_str(r.at("clientid"), r.raw["clientid"])
    if not client_id.strip():
        raise InvalidClientFile(r.at("clientid"), "empty")
    name = r.get("clientname", read_str, "") or client_id
    enabled = r.get("enabled", read_bool, True)
    public = not r.get("requireclientsecret", read_bool, True)
    offline = r.get("allowofflineaccess", read_bool, False)
    grants: list[str] = []
    for grant in r.get("allowedgranttypes", read_strings, []):
        if grant == "password":
            grants.append("password")
        else:
            r.cannot(
                f"AllowedGrantTypes {grant!r}",
                "Flask-ROPC only serves the password grant (and refresh tokens)",
            )
    if offline:
        grants.append("refresh_token")
    scopes = r.get("allowedscopes", read_strings, [])
    lifetime = r.get("accesstokenlifetime", read_int, 3600)
    if lifetime <= 0:
        raise InvalidClientFile(r.at("accesstokenlifetime"), "must be positive")
    token_type = r.get(
        "accesstokentype", lambda p, v: read_enum(p, v, _ACCESS_TOKEN_TYPE), 0
    )
    usage = r.get("refreshtokenusage", lambda p, v: read_enum(p, v, _TOKEN_USAGE), 1)
    expiration = r.get(
        "refreshtokenexpiration", lambda p, v: read_enum(p, v, _TOKEN_EXPIRATION), 1
    )
    sliding_in = r.get("slidingrefreshtokenlifetime", read_int, 1296000)
    absolute_in = r.get("absoluterefreshtokenlifetime", read_int, 2592000)
    for key, value in (
        ("slidingrefreshtokenlifetime", sliding_in),
        ("absoluterefreshtokenlifetime", absolute_in),
    ):
        if value < 0:
            raise InvalidClientFile(r.at(key), "must not be negative")
    sliding, absolute = _refresh_lifetimes(
        r, offline, expiration, sliding_in, absolute_in
    )
    if usage == 0 and offline:
        r.cannot(
            "RefreshTokenUsage ReUse",
            "Flask-ROPC rotates refresh tokens on every use (OneTimeOnly)",
        )
    if r.get("updateaccesstokenclaimsonrefresh", read_bool, False):
        r.cannot(
            "UpdateAccessTokenClaimsOnRefresh true",
            "app-wide here: register @ropc.refresh_claims",
        )
    claims = r.raw.get("claims")
    if claims:
        if not isinstance(claims, list):
            raise InvalidClientFile(r.at("claims"), "must be an array")
        r.cannot(
            "Claims",
            f"{len(claims)} static client claim(s) not imported; Flask-ROPC "
            "has no per-client claims (add them in the app's claims hook)",
        )
    if r.get("requiredpop", read_bool, False):
        r.cannot(
            "RequireDPoP true", "DPoP is not supported yet; tokens are Bearer tokens"
        )
    digest = _secrets(r, public)
    for key, value in r.raw.items():
        if (
            key in _READ
            or value in (None, [], {}, "")
            or _DEFAULTS.get(key, object()) == value
        ):
            continue
        r.findings.append(
            f"{r.names[key]} cannot be honoured: "
            "not a setting Flask-ROPC has (not imported)"
        )
    return ImportedClient(
        client_id=client_id,
        name=name,
        enabled=enabled,
        public=public,
        secret_digest=digest,
        scopes=tuple(scopes),
        grant_types=tuple(dict.fromkeys(grants)),
        access_token_lifetime=lifetime,
        access_token_format="reference" if token_type else "jwt",
        refresh_token_sliding_lifetime=sliding,
        refresh_token_absolute_lifetime=absolute,
        findings=tuple(r.findings),
    )


def _refresh_lifetimes(
    r: _Reader, offline: bool, expiration: int, sliding: int, absolute: int
) -> tuple[int | None, int | None]:
    if not offline:
        return None, None
    if expiration == 1:  # Absolute: every token of the login ends at the cap.
        if absolute == 0:
            raise InvalidClientFile(
                r.at("absoluterefreshtokenlifetime"),
                "must be positive with Absolute expiration",
            )
        return absolute, absolute
    if sliding == 0:
        raise InvalidClientFile(
            r.at("slidingrefreshtokenlifetime"),
            "must be positive with Sliding expiration",
        )
    if absolute == 0:
        r.cannot(
            "AbsoluteRefreshTokenLifetime 0 (no cap)",
            "Flask-ROPC always caps a login's refresh tokens; the app's "
            "absolute refresh token lifetime applies",
        )
        return sliding, None
    return min(sliding, absolute), absolute


def _secrets(r: _Reader, public: bool) -> str | None:
    raw = r.raw.get("clientsecrets")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise InvalidClientFile(r.at("clientsecrets"), "must be an array")
    digests: list[str] = []
    for index, item in enumerate(raw):
        s = _Reader(f"{r.at('clientsecrets')}:{index}", item)
        kind = s.get("type", read_str, "SharedSecret")
        value = s.get("value", read_str, "")
        label = f"ClientSecrets:{index}"
        if public:
            r.cannot(
                label,
                "RequireClientSecret is false: a public client has no secret",
            )
            continue
        if kind != "SharedSecret":
            r.cannot(label, f"type {kind!r}; only SharedSecret hashes are imported")
            continue
        expires = s.get("expiration", read_time, None)
        if expires is not None and expires <= time.time():
            r.cannot(label, "expired (its Expiration has passed); not imported")
            continue
        if expires is not None:
            r.cannot(
                f"{label}:Expiration",
                "Flask-ROPC secrets do not expire; rotate the secret when it is due",
            )
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) == 32:
            digests.append(decoded.hex())
        elif len(decoded) == 64:
            r.cannot(
                label,
                "a Sha512() hash; only Sha256() hashes carry over "
                "(rotate this client's secret)",
            )
        else:
            r.cannot(label, "not a Sha256() hash (a plaintext secret?); not imported")
    if len(digests) > 1:
        r.cannot(
            "ClientSecrets",
            f"{len(digests)} secrets; Flask-ROPC keeps one per client, "
            "the first is imported",
        )
    if not public and not digests:
        r.findings.append(
            "ClientSecrets: no secret carried over; "
            "run 'flask ropc rotate-secret' for this client"
        )
    return digests[0] if digests else None
