"""The cache shares the broker's Redis as deployed (docker-compose.yml), so a broker outage took the API
down with it: every 500 of an outage run came from DRF's throttles writing to the cache. With Redis
stopped or frozen, requests are served (throttles and login limits fail open, with a log line), and
they apply again once it answers."""

from __future__ import annotations

import logging
import re
import time

import pytest
import requests
from rest_framework.authtoken.models import Token

from tests.conftest import PASSWORD, _make_user, wait_for

from .conftest import timed

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fault_env(fault_env, own_redis):
    """As compose has it: one Redis, the broker on db 0, the cache on db 1."""
    return {**fault_env, "CACHE_URL": own_redis.url.replace("/0", "/1")}


def _login_form(url: str) -> requests.Response:
    """The login page as a browser posts it (CSRF cookie and token), with a wrong password."""
    session = requests.Session()
    page = session.get(f"{url}/accounts/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return session.post(
        f"{url}/accounts/login/",
        data={"username": "cache-res", "password": "nope", "csrfmiddlewaretoken": token},
        headers={"Referer": f"{url}/accounts/login/"},
        timeout=30,
    )


def _requests(web_server, token: str) -> list[tuple[str, requests.Response, float]]:
    url = web_server.url
    calls = {
        "api list": lambda: requests.get(f"{url}/api/v1/projects/", headers={"Authorization": f"Token {token}"},
                                         timeout=30),
        "token": lambda: requests.post(f"{url}/api/v1/auth/token/",
                                       json={"username": "cache-res", "password": PASSWORD}, timeout=30),
        "login page, wrong password": lambda: _login_form(url),
    }  # fmt: skip
    return [(name, *timed(call)) for name, call in calls.items()]


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
def test_requests_are_served_while_the_cache_is_away(outage, django_user_model, own_redis, web_server):
    researcher = _make_user(django_user_model, "cache-res", "researcher")
    token = Token.objects.create(user=researcher).key
    for name, response, _took in _requests(web_server, token):  # the cache answers: the usual answers
        assert response.status_code in (200, 201), (name, response.status_code)
    own_redis.stop() if outage == "stopped" else own_redis.freeze()
    try:
        for _ in range(3):
            for name, response, took in _requests(web_server, token):
                assert response.status_code in (200, 201), (name, response.status_code, response.text[:300])
                assert took < 3.0, (name, took)  # a frozen cache costs a short socket timeout, not a hang
    finally:
        own_redis.thaw() if outage == "frozen" else own_redis.start()
    log = web_server.log.read_text()
    assert "Cache unavailable" in log and "throttles and login limits are not enforced" in log
    assert log.count("Cache unavailable") == 1  # once per outage (one web process), not per request or thread
    # Once it answers, the limits apply again: the token endpoint's 20/min per address ends in 429.
    wait_for(lambda: own_redis.answers(), timeout=10, message="redis back")
    time.sleep(6)  # the cache's retry delay
    codes = [
        requests.post(f"{web_server.url}/api/v1/auth/token/", json={"username": "cache-res", "password": PASSWORD},
                      timeout=30).status_code
        for _ in range(25)
    ]  # fmt: skip
    assert 429 in codes, codes


def test_the_cache_fails_open_and_recovers(own_redis, caplog):
    from text2grad_web.cache import FailOpenRedisCache

    cache = FailOpenRedisCache(own_redis.url.replace("/0", "/2"), {"OPTIONS": {"BREAK_S": 0.5}})
    cache.set("k", 1)
    assert cache.get("k") == 1
    own_redis.freeze()
    try:
        with caplog.at_level(logging.WARNING, logger="text2grad_web.cache"):
            started = time.monotonic()
            assert cache.get("k", "default") == "default"
            cache.set("k", 2)  # no error
            assert cache.get_many(["k"]) == {}
            assert time.monotonic() - started < 2.0
    finally:
        own_redis.thaw()
    assert sum("Cache unavailable" in r.message for r in caplog.records) == 1
    time.sleep(0.6)
    assert cache.get("k") == 1  # the write during the outage was dropped, the earlier one is there
    assert any("answers again" in r.message for r in caplog.records)
