"""DPoP (RFC 9449) at our endpoints: which requests need a proof, what it
binds, and the answers when it fails.

* Token endpoint (:func:`token_request_proof`): per client, ``required`` (no
  proof: ``invalid_dpop_proof``, §5.2's ``dpop_bound_access_tokens``),
  ``allowed`` (the default: a proof, if sent, is checked and binds) or
  ``off`` (a proof is ignored and tokens are Bearer tokens). Errors are 400.
* Refresh (:func:`require_bound_key`): a public client's refresh token is
  bound to its key, and a refresh must prove that key (``invalid_grant``);
  a confidential client authenticates anyway and may bind a new key.
* Protected views (:func:`check_presentation`): ``Authorization: DPoP``
  needs a proof with ``ath`` by the token's key; a bound token sent as
  ``Bearer`` is refused (§7.2). Errors are 401 with a ``DPoP`` challenge.

Nonces (§8) are required per client (``dpop_nonce``: ``required`` or
``off``), else as ``ROPC_DPOP_NONCE`` says (:func:`nonces_for`); at a view,
the token's client decides.

Our URL for a request (``htu``) is ``ROPC_ISSUER`` plus the request's path
when the issuer is configured: a spoofed ``Host`` or ``X-Forwarded-Host``
then changes nothing. Without it, the URL Werkzeug sees (after
``ProxyFix``), as for the issuer itself. A proof's ``jti`` is recorded,
shared by every instance, only after every other check has passed.

Imports ``state``, ``store`` (through ``state``) and leaves.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import typing as t

import flask

from . import dpop
from .dpop import Proof
from .dpop_nonce import NonceSource
from .errors import ConfigurationError
from .errors import DPoPError
from .errors import InvalidGrantError
from .errors import OAuth2Error
from .errors import ServerError
from .errors import TemporarilyUnavailableError
from .models import Client
from .state import State
from .store import DatabaseError
from .tokens import AccessToken

log = logging.getLogger("flask_ropc")

#: ``algs`` of our ``DPoP`` challenges.
ALGS = " ".join(dpop.ALGORITHMS)
NONCE_HEADER = "DPoP-Nonce"


def setup(state: State) -> None:
    """Give ``state`` its replay cache and its nonces (run by ``init_app``).

    The nonces are made whenever there is a secret for them, even with
    ``ROPC_DPOP_NONCE`` off: a client's own ``dpop_nonce = required`` needs
    them too.

    :raises ConfigurationError: nonces are on without a secret to make them.
    """
    settings = state.settings
    state.dpop_replay = state.store.dpop_replay(
        settings.ratelimit_storage_uri, settings.ratelimit_storage_options
    )
    secret = settings.dpop_nonce_secret or next(iter(settings.secret_keys), None)
    if secret is not None:
        state.dpop_nonces = NonceSource(secret)
    elif settings.dpop_nonce:
        raise ConfigurationError(
            "ROPC_DPOP_NONCE needs ROPC_DPOP_NONCE_SECRET or a SECRET_KEY of at "
            "least 32 characters, the same on every instance"
        )


def nonces_for(state: State, client: Client | None) -> NonceSource | None:
    """The nonces ``client``'s proofs must carry, or ``None`` if none.

    The client's ``dpop_nonce`` decides (``required`` or ``off``); its
    ``default`` (and an unknown client) follows ``ROPC_DPOP_NONCE``.

    :raises ServerError: the client requires nonces but the app has no
        secret to make them (logged): failing closed, not silently
        accepting proofs without a nonce.
    """
    setting = "default" if client is None else client.dpop_nonce
    if setting == "default":
        wanted = state.settings.dpop_nonce
    else:
        wanted = setting == "required"
    if not wanted:
        return None
    if state.dpop_nonces is None:
        # Only a client's own setting gets here: setup() refused the global one.
        log.error(
            "Client %s requires DPoP nonces, but neither ROPC_DPOP_NONCE_SECRET "
            "nor a SECRET_KEY of at least 32 characters is set",
            client.client_id if client is not None else "-",
        )
        raise ServerError()
    return state.dpop_nonces


def request_url(state: State, request: flask.Request) -> str:
    """Our URL for ``request``, without query: what its ``htu`` must be."""
    # base_url minus root_url is the path as sent (percent-encoded), below
    # the app's mount point.
    path = request.base_url[len(request.root_url.rstrip("/")) :]
    if state.settings.issuer is not None:
        return state.settings.issuer + path
    return request.base_url


def token_request_proof(
    state: State, client: Client, request: flask.Request
) -> Proof | None:
    """The checked proof of a token request, or ``None`` (an unbound grant).

    :raises DPoPError: 400 ``invalid_dpop_proof`` or ``use_dpop_nonce``.
    """
    if client.dpop == "off":
        return None
    if "DPoP" not in request.headers:
        if client.dpop == "required":
            raise _error(state, dpop.INVALID, "This client must send a DPoP proof.")
        return None
    return _verify(state, request, nonces_for(state, client))


def require_bound_key(bound_jkt: str | None, proof: Proof | None, what: str) -> None:
    """Refuse a grant bound to a DPoP key unless ``proof`` is by that key.

    For a public client's refresh token (``what`` names it in the error);
    also the seam for any grant continued from a bound step (the MFA token
    of a password step made with a proof).

    :raises InvalidGrantError: no proof, or one by another key.
    """
    if bound_jkt is not None and (proof is None or proof.jkt != bound_jkt):
        raise InvalidGrantError(f"The {what} is bound to another DPoP key.")


def check_refresh(client: Client, row: t.Any, proof: Proof | None) -> None:
    """A public client's bound refresh token needs a proof by its key."""
    if client.is_public:
        require_bound_key(row.dpop_jkt, proof, "refresh token")


def jkt(proof: Proof | None) -> str | None:
    """The key thumbprint a grant binds to, if it had a proof."""
    return None if proof is None else proof.jkt


def check_presentation(
    state: State, request: flask.Request, scheme: str, value: str, token: AccessToken
) -> None:
    """Check how a live access token was presented at a protected view.

    :raises DPoPError: 401 ``invalid_token`` (a bound token as ``Bearer``,
        an unbound one as ``DPoP``), ``invalid_dpop_proof`` or
        ``use_dpop_nonce``.
    """
    if scheme == "bearer":
        if token.dpop_jkt is not None:
            raise _error(
                state, "invalid_token", "This token is DPoP-bound: use DPoP.", True
            )
        return
    if token.dpop_jkt is None:
        raise _error(state, "invalid_token", "This token is not DPoP-bound.", True)
    if "DPoP" not in request.headers:
        raise _error(state, dpop.INVALID, "Send a DPoP proof with the token.", True)
    # The token's client decides about nonces (a deleted one: the default).
    nonces = nonces_for(state, state.store.clients.get(token.client_id))
    _verify(state, request, nonces, access_token=value, bound_jkt=token.dpop_jkt)


def invalid_token(state: State, description: str) -> DPoPError:
    """401 ``invalid_token`` with the ``DPoP`` challenge."""
    return _error(state, "invalid_token", description, True)


def extra_challenges(error: OAuth2Error) -> list[tuple[str, str]]:
    """The other scheme's challenge for a protected view's error: both
    schemes are accepted there."""
    if isinstance(error, DPoPError):
        return [("WWW-Authenticate", "Bearer")]
    return [("WWW-Authenticate", f'DPoP algs="{ALGS}"')]


def _verify(
    state: State,
    request: flask.Request,
    nonces: NonceSource | None,
    *,
    access_token: str | None = None,
    bound_jkt: str | None = None,
) -> Proof:
    """Every check of the proof (a nonce from ``nonces``, if given), then
    the replay check (which records it)."""
    settings = state.settings
    at_resource = access_token is not None
    now = state.store.now()
    try:
        proof = dpop.verify_proof(
            request.headers.getlist("DPoP"),
            method=request.method,
            url=request_url(state, request),
            now=now,
            lifetime=settings.dpop_proof_lifetime,
            skew=settings.dpop_clock_skew,
            access_token=access_token,
            nonce_valid=(
                None if nonces is None else functools.partial(nonces.is_valid, now=now)
            ),
        )
    except dpop.ProofError as problem:
        raise _error(
            state, problem.error, problem.description, at_resource, nonces
        ) from None
    if bound_jkt is not None and proof.jkt != bound_jkt:
        raise _error(
            state, dpop.INVALID, "The DPoP proof is not by the token's key.", True
        )
    # A JSON jti may hold a lone surrogate ("\ud800"): still a distinct
    # string, so keep it distinct in the key rather than fail with a 500.
    seen = f"{proof.htu}\0{proof.jti}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(seen).hexdigest()
    key = f"{settings.ratelimit_key_prefix}:dpop:{digest}"
    ttl = settings.dpop_proof_lifetime + 2 * settings.dpop_clock_skew
    assert state.dpop_replay is not None
    try:
        first = state.dpop_replay.first_use(key, now, ttl)
    except DatabaseError:
        raise
    except Exception:
        # Redis is down: without the replay check a proof is replayable, so
        # fail closed, as throttling does by default.
        log.exception("DPoP replay cache unavailable")
        raise TemporarilyUnavailableError() from None
    if not first:
        raise _error(
            state, dpop.INVALID, "The DPoP proof was used before.", at_resource
        )
    if nonces is not None and proof.nonce != nonces.current(now):
        fresh = _nonce_headers(nonces, now)
        # §8.2: hand the client the current nonce on the success response too.
        flask.after_this_request(functools.partial(_add_headers, headers=fresh))
    return proof


def _nonce_headers(nonces: NonceSource, now: int) -> list[tuple[str, str]]:
    # Browser clients can read the header only when it is exposed (CORS).
    return [
        (NONCE_HEADER, nonces.current(now)),
        ("Access-Control-Expose-Headers", NONCE_HEADER),
    ]


def _add_headers(
    response: flask.Response, headers: list[tuple[str, str]]
) -> flask.Response:
    for name, value in headers:
        response.headers.add(name, value)
    return response


def _error(
    state: State,
    error: str,
    description: str,
    at_resource: bool = False,
    nonces: NonceSource | None = None,
) -> DPoPError:
    """The answer for a DPoP failure at the token endpoint (400) or at a
    protected view (401 with a ``DPoP`` challenge); with a nonce to use."""
    headers: list[tuple[str, str]] = []
    if error == dpop.USE_NONCE and nonces is not None:
        headers.extend(_nonce_headers(nonces, state.store.now()))
    if not at_resource:
        return DPoPError(error, description, 400, headers)
    challenge = f'DPoP error="{error}", error_description="{description}"'
    headers.append(("WWW-Authenticate", f'{challenge}, algs="{ALGS}"'))
    return DPoPError(error, description, 401, headers)
