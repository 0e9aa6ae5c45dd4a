"""A Redis cache that fails open: when Redis is away (stopped, frozen, unreachable) a cache call answers
as a miss instead of raising, so a request never fails because of the cache.

What the cache holds here is advisory: DRF's request throttles, the login limits and short-lived page
counters. While Redis does not answer they are not enforced (a warning says so in the log, once per
outage) and every request is served; they apply again as soon as it answers. Deployments that share one
Redis between the broker and the cache (docker-compose.yml) thus keep serving the API through a broker
outage; the work it queues waits in the outbox.

After a failure the cache is left alone for ``OPTIONS["BREAK_S"]`` seconds (a circuit breaker), so a
frozen Redis costs one socket timeout per process per break, not one per request.
"""

from __future__ import annotations

import logging
import threading
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

FAILURES = (RedisError, OSError)


class _Breaker:
    """One per Redis location and process: Django makes a cache object per thread, but an outage (and
    its log line) is the process's."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.broken_until = 0.0
        self.outage = False  # logged once per outage, and once when it ends


_BREAKERS: dict[str, _Breaker] = {}
_BREAKERS_LOCK = threading.Lock()


def _breaker(location: str) -> _Breaker:
    with _BREAKERS_LOCK:
        return _BREAKERS.setdefault(location, _Breaker())


class FailOpenRedisCache(RedisCache):
    def __init__(self, server, params):
        params = dict(params)
        options = dict(params.get("OPTIONS") or {})
        self.break_s = float(options.pop("BREAK_S", 5.0))
        options.setdefault("socket_timeout", 0.5)
        options.setdefault("socket_connect_timeout", 0.5)
        params["OPTIONS"] = options
        super().__init__(server, params)
        self._breaker = _breaker(str(server))

    def _available(self) -> bool:
        return time.monotonic() >= self._breaker.broken_until

    def _failed(self, operation: str, exc: BaseException) -> None:
        breaker = self._breaker
        with breaker.lock:
            breaker.broken_until = time.monotonic() + self.break_s
            first = not breaker.outage
            breaker.outage = True
        if first:
            logger.warning(
                "Cache unavailable (%s: %s: %s); throttles and login limits are not enforced until it "
                "answers again (next try in %.0f s)",
                operation,
                type(exc).__name__,
                exc,
                self.break_s,
            )

    def _succeeded(self) -> None:
        breaker = self._breaker
        if breaker.outage:
            with breaker.lock:
                was, breaker.outage = breaker.outage, False
            if was:
                logger.warning("Cache answers again; throttles and login limits are enforced")

    def _call(self, operation: str, fallback, call):
        if not self._available():
            return fallback
        try:
            value = call()
        except FAILURES as exc:
            self._failed(operation, exc)
            return fallback
        self._succeeded()
        return value

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call(
            "add", False, lambda: super(FailOpenRedisCache, self).add(key, value, timeout, version)
        )

    def get(self, key, default=None, version=None):
        return self._call("get", default, lambda: super(FailOpenRedisCache, self).get(key, default, version))

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        self._call("set", None, lambda: super(FailOpenRedisCache, self).set(key, value, timeout, version))

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call(
            "touch", False, lambda: super(FailOpenRedisCache, self).touch(key, timeout, version)
        )

    def delete(self, key, version=None):
        return self._call("delete", False, lambda: super(FailOpenRedisCache, self).delete(key, version))

    def get_many(self, keys, version=None):
        return self._call("get_many", {}, lambda: super(FailOpenRedisCache, self).get_many(keys, version))

    def has_key(self, key, version=None):
        return self._call("has_key", False, lambda: super(FailOpenRedisCache, self).has_key(key, version))

    def incr(self, key, delta=1, version=None):
        # A missing key raises ValueError as in every backend; an outage counts as a first increment.
        return self._call("incr", delta, lambda: super(FailOpenRedisCache, self).incr(key, delta, version))

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call(
            "set_many", list(data), lambda: super(FailOpenRedisCache, self).set_many(data, timeout, version)
        )

    def delete_many(self, keys, version=None):
        self._call("delete_many", None, lambda: super(FailOpenRedisCache, self).delete_many(keys, version))

    def clear(self):
        return self._call("clear", False, lambda: super(FailOpenRedisCache, self).clear())
