"""The Pwned Passwords range API client behind :mod:`flask_ropc.breach`.

k-anonymity: only the first five hex characters of the password's SHA-1 are
sent (``GET {base}/range/{PREFIX}`` with ``Add-Padding: true``); the server
answers with every ``SUFFIX:COUNT`` of that prefix, padded with zero-count
decoys, and the match is made here. :class:`RangeLookup` owns the transport
and a per-prefix cache of those public answers; nothing here keeps the
password, its hash or its suffix beyond one call, and nothing logs them.

A leaf: imports only ``errors`` (and the standard library).
"""

from __future__ import annotations

import array
import collections
import hashlib
import hmac
import re
import threading
import time
import typing as t
import urllib.error
import urllib.request
from collections.abc import Callable
from collections.abc import Mapping

from .errors import BreachLookupError

#: Have I Been Pwned's Pwned Passwords API (no key needed).
DEFAULT_BASE_URL = "https://api.pwnedpasswords.com"

#: A padded range answer is about 1,000 lines of 40 bytes; anything much
#: larger is not a range answer.
MAX_BODY = 1 << 20

_LINE = re.compile(r"([0-9A-Fa-f]{35}):([0-9]{1,12})")

#: Hex characters of a suffix (SHA-1 is 40; the prefix takes 5).
SUFFIX_LENGTH = 35


class Entries(t.NamedTuple):
    """One prefix's range, padding removed, packed: about 40 KB, not 150.

    ``suffixes`` holds the upper-case suffixes back to back
    (:data:`SUFFIX_LENGTH` bytes each), ``counts`` their counts in order.
    """

    suffixes: bytes
    counts: array.array[int]

    def count(self, suffix: str) -> int:
        """The count of ``suffix`` (upper-case hex), 0 if absent.

        Every entry is compared, each in constant time, so the time taken
        does not say where (or whether) the suffix is in the range.
        """
        target = suffix.encode("ascii")
        total = 0
        for index, hits in enumerate(self.counts):
            start = index * SUFFIX_LENGTH
            candidate = self.suffixes[start : start + SUFFIX_LENGTH]
            total += hits * hmac.compare_digest(candidate, target)
        return total


class Transport(t.Protocol):
    """How a range is fetched: ``GET url`` with ``headers``, in ``timeout`` s.

    Return the body of a 200 answer as text; raise any exception for
    anything else (it becomes a :class:`~flask_ropc.errors.BreachLookupError`).
    Tests and air-gapped installs pass their own.
    """

    def __call__(
        self, url: str, headers: Mapping[str, str], timeout: float
    ) -> str: ...  # pragma: no cover


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure: it could move the lookup off HTTPS."""

    def redirect_request(self, *args: t.Any, **kwargs: t.Any) -> None:
        return None


# ProxyHandler stays (HTTPS_PROXY works); redirects do not.
_OPENER = urllib.request.build_opener(_NoRedirect)


def urllib_transport(url: str, headers: Mapping[str, str], timeout: float) -> str:
    """The default :class:`Transport`: the standard library's ``urllib``.

    ``timeout`` bounds the connection, each read and (checked between
    reads) the whole body. Name resolution is not covered by it: give an IP
    address or a local resolver with its own timeout where that matters.
    """
    deadline = time.monotonic() + timeout
    # The URL is the operator's base URL (http or https, checked by
    # BreachCheck), never user input.
    request = urllib.request.Request(url, headers=dict(headers))  # noqa: S310
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            chunks: list[bytes] = []
            size = 0
            while chunk := response.read(16384):
                size += len(chunk)
                if size > MAX_BODY:
                    raise BreachLookupError("the range answer is too large")
                if time.monotonic() > deadline:
                    raise BreachLookupError("the range answer took too long")
                chunks.append(chunk)
    except urllib.error.HTTPError as error:
        # HTTPError's text would repeat the server's reason phrase only.
        raise BreachLookupError(f"the range API answered HTTP {error.code}") from None
    return b"".join(chunks).decode("ascii")


def parse_range(text: str) -> Entries:
    """The ``SUFFIX:COUNT`` lines of a range answer, packed.

    Lines may end in CRLF; zero-count lines are padding and dropped.

    :raises BreachLookupError: a line is not ``SUFFIX:COUNT`` or there is
        no line at all (every real prefix has hundreds): a captive portal's
        page or a truncated body must not read as "not breached".
    """
    suffixes = bytearray()
    counts = array.array("Q")
    lines = 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise BreachLookupError("the range answer is not SUFFIX:COUNT lines")
        lines += 1
        count = int(match.group(2))
        if count:
            suffixes += match.group(1).upper().encode("ascii")
            counts.append(count)
    if not lines:
        raise BreachLookupError("the range answer is empty")
    return Entries(bytes(suffixes), counts)


class RangeCache:
    """Range answers by prefix, each for ``ttl`` seconds, at most ``size``.

    The least recently used prefix goes first. Holds public data only: the
    answers anyone gets for a prefix. Thread-safe.
    """

    def __init__(self, ttl: float, size: int, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._lock = threading.Lock()
        self._items: collections.OrderedDict[str, tuple[float, Entries]] = (
            collections.OrderedDict()
        )

    def get(self, prefix: str) -> Entries | None:
        """The cached answer for ``prefix``, or ``None`` (absent or expired)."""
        with self._lock:
            item = self._items.get(prefix)
            if item is None:
                return None
            if self._clock() >= item[0]:
                del self._items[prefix]
                return None
            self._items.move_to_end(prefix)
            return item[1]

    def put(self, prefix: str, entries: Entries) -> None:
        """Keep ``entries`` for ``prefix``, evicting the oldest if full."""
        if self._size <= 0 or self._ttl <= 0:
            return
        with self._lock:
            self._items[prefix] = (self._clock() + self._ttl, entries)
            self._items.move_to_end(prefix)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class RangeLookup:
    """Counts a password's appearances in a Pwned Passwords range API.

    Internal to :class:`flask_ropc.breach.BreachCheck`, which documents the
    parameters; the signature may change.
    """

    def __init__(
        self,
        *,
        base_url: str,
        timeout: float,
        transport: Transport,
        cache: RangeCache,
        user_agent: str,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._transport = transport
        self._cache = cache
        self._headers = {"Add-Padding": "true", "User-Agent": user_agent}

    def count(self, password: str) -> int:
        """How often ``password`` appears in the corpus (0: not at all).

        :raises BreachLookupError: the range could not be fetched or read.
        """
        # SHA-1 is what the API is keyed by, not a protection of ours; the
        # hash lives only in this frame.
        digest = hashlib.sha1(password.encode("utf-8"), usedforsecurity=False)
        hexdigest = digest.hexdigest().upper()
        prefix, suffix = hexdigest[:5], hexdigest[5:]
        entries = self._cache.get(prefix)
        if entries is None:
            entries = self._fetch(prefix)
            self._cache.put(prefix, entries)
        return entries.count(suffix)

    def _fetch(self, prefix: str) -> Entries:
        url = f"{self._base_url}/range/{prefix}"
        try:
            return parse_range(self._transport(url, self._headers, self._timeout))
        except BreachLookupError:
            raise
        except Exception as error:
            # Only the exception's type: a transport's message may repeat
            # the URL, and so the prefix.
            raise BreachLookupError(
                f"the range lookup failed ({type(error).__name__})"
            ) from None
