"""Reading IdentityServer client definitions into Flask-ROPC client settings.

Accepts what Duende IdentityServer / IdentityServer4 users keep: an
``appsettings.json`` with an ``IdentityServer:Clients`` section, an object
with ``Clients``, or a JSON array of ``Client`` objects. Property names match
in any case and enums by name (any case) or number, as .NET configuration
binding does. Every setting we cannot honour becomes a finding; invalid input
raises :class:`InvalidClientFile` naming the path of the bad field. A leaf:
imports only :mod:`~flask_ropc.identityserver_json` and
:mod:`~flask_ropc.identityserver_secrets`.
"""

from __future__ import annotations

import dataclasses
import json
import typing as t

from .identityserver_json import InvalidClientFile
from .identityserver_json import Reader
from .identityserver_json import read_bool
from .identityserver_json import read_enum
from .identityserver_json import read_int
from .identityserver_json import read_lower
from .identityserver_json import read_str
from .identityserver_json import read_strings
from .identityserver_secrets import read_secrets

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
    #: The secret digest carried over, or ``None``: our hex SHA-256 (from a
    #: ``Sha256()`` hash) or a carried ``Sha512()`` one
    #: (:func:`~flask_ropc.hashing.carried_sha512`). Never printed.
    secret_digest: str | None
    scopes: tuple[str, ...]
    grant_types: tuple[str, ...]
    access_token_lifetime: int
    access_token_format: str
    refresh_token_sliding_lifetime: int | None
    refresh_token_absolute_lifetime: int | None
    #: "setting X cannot be honoured because ..." lines.
    findings: tuple[str, ...]
    #: ``RequireDPoP: true``: our ``dpop=required``.
    dpop_required: bool = False
    #: "setting X: how it was carried over" lines, for what was imported in
    #: a way worth knowing (a ``Sha512()`` secret, ``RequireDPoP``).
    notes: tuple[str, ...] = ()


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


def _client(path: str, raw: t.Any) -> ImportedClient:
    r = Reader(path, raw)
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
    dpop_required = r.get("requiredpop", read_bool, False)
    if dpop_required:
        r.notes.append(
            "RequireDPoP true: dpop required (a token request without a DPoP "
            "proof fails)"
        )
    digest = read_secrets(r, public)
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
        dpop_required=dpop_required,
        notes=tuple(r.notes),
    )


def _refresh_lifetimes(
    r: Reader, offline: bool, expiration: int, sliding: int, absolute: int
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
