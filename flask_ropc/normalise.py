"""The forms under which usernames and IP addresses are counted and reported.

Throttling keys its budgets on these forms and audit events carry them, so
that changing case, adding spaces or moving within one IPv6 subscriber's
network does not buy an attacker a fresh budget. A leaf: imports nothing.
"""

from __future__ import annotations

import ipaddress
import unicodedata


def normalise_username(username: str) -> str:
    """The form usernames are counted under: NFKC, trimmed and case-folded.

    ``" Ann "``, ``"ann"`` and the full-width ``"ａｎｎ"`` share one budget,
    so changing case, adding spaces or using look-alike compatibility
    characters does not buy an attacker more guesses.
    """
    return unicodedata.normalize("NFKC", username).strip().casefold()


def ip_bucket(address: str) -> str:
    """The unit an IP address is counted under: itself, or its /64 for IPv6.

    One IPv6 subscriber usually holds a whole /64, so counting single
    addresses would hand an attacker 2**64 fresh budgets.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
