"""The forms under which usernames and IP addresses are counted and reported.

Throttling keys its budgets on these forms and audit events carry them, so
that changing case, adding spaces or moving within one IPv6 subscriber's
network does not buy an attacker a fresh budget. A leaf: imports nothing.
"""

from __future__ import annotations

import functools
import ipaddress
import unicodedata


def normalise_username(username: str) -> str:
    """The form usernames are counted under: without format characters,
    NFKC-normalised, trimmed and case-folded.

    ``" Ann "``, ``"ann"``, the full-width ``"ａｎｎ"`` and ``"an\u200bn"``
    (a zero-width space, or any other Unicode format character, category
    Cf: invisible, and often ignored by the app's own lookup) share one
    budget, so changing case, adding spaces or invisible characters or using
    look-alike compatibility characters does not buy an attacker more
    guesses. The validator still gets the username exactly as sent.
    """
    visible = "".join(char for char in username if unicodedata.category(char) != "Cf")
    folded = unicodedata.normalize("NFKC", visible).casefold()
    # Case-folding can undo NFKC (and NFKC can make format characters).
    folded = unicodedata.normalize("NFKC", folded)
    return "".join(c for c in folded if unicodedata.category(c) != "Cf").strip()


def ip_bucket(address: str) -> str:
    """The unit an IP address is counted under: an IPv4 address, or an IPv6
    /64.

    One IPv6 subscriber usually holds a whole /64, so counting single
    addresses would hand an attacker 2**64 fresh budgets. An IPv6 address
    that carries an IPv4 one is counted as that IPv4 address: IPv4-mapped
    (``::ffff:a.b.c.d``, how a dual-stack socket sees every IPv4 client,
    which would otherwise all share ``::/64``), 6to4 (``2002:aabb:ccdd::/48``,
    whose /64s one IPv4 host can use by the thousand) and Teredo (the
    client's public IPv4 address).

    Remembered per process for strings as short as addresses (the last
    4096): parsing costs about as much as all the rest of an attempt's
    throttle keys. Longer input (a misconfigured proxy's header) is not
    kept.
    """
    if len(address) > _LONGEST_ADDRESS:
        return _ip_bucket(address)
    return _remembered_ip_bucket(address)


#: ``ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255``, with a short zone.
_LONGEST_ADDRESS = 64


def _ip_bucket(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        carried = ip.ipv4_mapped or ip.sixtofour or (ip.teredo or (None, None))[1]
        if carried is not None:
            return str(carried)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


_remembered_ip_bucket = functools.lru_cache(maxsize=4096)(_ip_bucket)
