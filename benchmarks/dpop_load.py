"""DPoP proofs for the load generator (scenarios ``ropc-password-dpop`` and
``ropc-require-token-dpop``).

wrk's Lua cannot sign ES256, and every proof is single-use, so proofs are
signed here before each run (one per request wrk may send) and the wrk
script sends them in order. Signing is the client's cost, not the server's:
it happens before the measurement starts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import typing as t
from pathlib import Path

from harness import lua_string
from joserfc import jws
from joserfc.jwk import ECKey


class ProofMaker:
    """One client key (ES256, as requests-oauth2client defaults to)."""

    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256")
        self.header = {
            "typ": "dpop+jwt",
            "alg": "ES256",
            "jwk": self.key.as_dict(private=False),
        }

    def proof(self, method: str, url: str, token: str | None = None) -> str:
        """One fresh proof; with ``token``, its ``ath``."""
        claims: dict[str, t.Any] = {
            "jti": secrets.token_urlsafe(12),
            "htm": method,
            "htu": url,
            "iat": int(time.time()),
        }
        if token is not None:
            digest = hashlib.sha256(token.encode()).digest()
            claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        payload = json.dumps(claims).encode()
        return jws.serialize_compact(self.header, payload, self.key)

    def write(
        self, path: Path, method: str, url: str, count: int, token: str | None = None
    ) -> Path:
        """Sign ``count`` proofs for ``method url`` into ``path``, one a line."""
        with path.open("w") as out:
            for _ in range(count):
                out.write(self.proof(method, url, token) + "\n")
        path.chmod(0o600)
        return path


def proof_script(
    method: str,
    path: str,
    headers: t.Mapping[str, str],
    proofs: Path,
    body: str | None = None,
) -> str:
    """A wrk script (one thread) sending the proofs in ``proofs`` in order.

    Once they run out it sends the last one again: the server then answers
    400 (a replay), which the run reports as errors.
    """
    lines = [f"wrk.method = {lua_string(method)}", f"wrk.path = {lua_string(path)}"]
    lines += [
        f"wrk.headers[{lua_string(name)}] = {lua_string(value)}"
        for name, value in headers.items()
    ]
    if body is not None:
        lines.append(f"wrk.body = {lua_string(body)}")
    lines += [
        "local proofs, i = {}, 0",
        "function init(args)",
        f"  for line in io.lines({lua_string(str(proofs))}) do",
        "    proofs[#proofs + 1] = line",
        "  end",
        "end",
        "function request()",
        "  if i < #proofs then i = i + 1 end",
        '  wrk.headers["DPoP"] = proofs[i]',
        "  return wrk.format()",
        "end",
    ]
    return "\n".join(lines) + "\n"
