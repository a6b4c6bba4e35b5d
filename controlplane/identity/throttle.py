"""The auth-failure throttle's two halves: who a request comes from, and how often that source failed.

- **The client address.** `REMOTE_ADDR` is the peer that opened the connection. Only when that peer is
  one of `CONTROLPLANE_TRUSTED_PROXIES` (CIDRs) is `X-Forwarded-For` read, right to left, skipping hops
  that are themselves trusted proxies: the first untrusted hop is the client. A forwarded header from an
  untrusted peer is never read (anyone can write one), so an attacker cannot pick the address their
  failures are counted against, nor lock out someone else's.
- **The failure counts** live in the shared cache (Redis), so every web process sees the same count.
  When the cache is unreachable the count degrades to this process's memory (`_local`): the limit then
  holds per process instead of per installation, and nothing fails because Redis is down. Entries
  written while the cache was down are kept until their window ends.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

try:  # the cache server's errors (Redis); OSError covers refused and reset connections
    from redis import RedisError

    CACHE_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)
except ImportError:  # pragma: no cover - redis is a dependency
    CACHE_ERRORS = (OSError,)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# --- the client address -------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def trusted_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """The parsed `CONTROLPLANE_TRUSTED_PROXIES` (settings validates them at start-up)."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _is_trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: tuple[Network, ...]
) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def client_address(meta: dict) -> str:
    """The address a request's failures are counted against (see the module docstring)."""
    peer_text = str(meta.get("REMOTE_ADDR") or "")
    peer = _address(peer_text)
    networks = trusted_networks(tuple(settings.CONTROLPLANE_TRUSTED_PROXIES))
    if peer is None:
        return peer_text or "unknown"
    if not networks or not _is_trusted(peer, networks):
        return str(peer)
    hops = [hop for hop in str(meta.get("HTTP_X_FORWARDED_FOR") or "").split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:  # a malformed hop: the last trusted proxy is as far as we can believe
            break
        client = address
        if not _is_trusted(address, networks):
            break
    return str(client)


# --- the failure counts -------------------------------------------------------------------------------


class _LocalCounts:
    """Per-process failure counts, used while the cache server is unreachable."""

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (failures, expires at, monotonic)

    def get(self, key: str) -> int:
        found = self._counts.get(key)
        if found is None or found[1] <= time.monotonic():
            return 0
        return found[0]

    def incr(self, key: str, window: float) -> int:
        now = time.monotonic()
        with self._lock:
            if len(self._counts) >= self.MAX_ENTRIES:
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            count, expires = self._counts.get(key, (0, now + window))
            if expires <= now:
                count, expires = 0, now + window
            self._counts[key] = (count + 1, expires)
            return count + 1

    def delete(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


_local = _LocalCounts()


def _key(source: str) -> str:
    return f"auth-failures:{source}"


def _cache_down(operation: str, exc: BaseException) -> None:
    logger.warning("auth throttle: cache unreachable on %s (%s); counting in this process", operation, exc)


def failures_count(*, source: str) -> int:
    """How often `source` failed within the window: the shared count, or this process's if the cache is
    down (the larger of the two, so failures counted during an outage still count after it)."""
    key = _key(source)
    try:
        shared = int(cache.get(key) or 0)
    except CACHE_ERRORS as exc:
        _cache_down("get", exc)
        shared = 0
    return max(shared, _local.get(key))


def failures_increment(*, source: str) -> int:
    """Count one more failure of `source`; the count within the window, after this one."""
    key = _key(source)
    window = settings.CONTROLPLANE_AUTH_FAILURE_WINDOW_SECONDS
    try:
        cache.add(key, 0, timeout=window)
        try:
            shared = int(cache.incr(key))
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=window)
            shared = 1
    except CACHE_ERRORS as exc:
        _cache_down("incr", exc)
        return _local.incr(key, window)
    return max(shared, _local.get(key))


def failures_clear(*, source: str) -> None:
    """Forget the failures of `source` (it signed in)."""
    key = _key(source)
    _local.delete(key)
    try:
        cache.delete(key)
    except CACHE_ERRORS as exc:
        _cache_down("delete", exc)
