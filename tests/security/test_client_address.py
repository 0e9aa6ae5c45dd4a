"""One rule for the client's address (login limits, DRF throttles, the audit log): the TCP peer, or behind
NUM_PROXIES trusted proxies the X-Forwarded-For entry the outermost one appended, counted from the right.
A client that writes a new X-Forwarded-For each time is still one address, checked behind a real reverse
proxy in front of a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import requests
from django.core.cache import cache
from django.test import RequestFactory

from annotations import roles
from annotations.throttling import AnonThrottle
from audit.context import client_ip
from tests.conftest import REPO
from tests.security.reverse_proxy import ReverseProxy

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple 9"
TLS_PROXY = ("HTTP_X_FORWARDED_PROTO", "https")


@pytest.mark.parametrize(
    "proxies,forwarded,expected",
    [
        (0, "203.0.113.9", "192.0.2.1"),  # no trusted proxy: the header is ignored entirely
        (0, None, "192.0.2.1"),
        (1, "203.0.113.9", "203.0.113.9"),  # what the one proxy appended
        (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # a client-written first entry is never read
        (1, "6.6.6.6,7.7.7.7 , 203.0.113.9", "203.0.113.9"),
        (2, "6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9"),  # two proxies: the outer one's entry
        (2, "203.0.113.9", "203.0.113.9"),
        (1, "not-an-address", "192.0.2.1"),  # malformed: the peer
        (1, "", "192.0.2.1"),
        (1, None, "192.0.2.1"),  # no header (not through the proxy): the peer
        (1, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_address_rule(settings, proxies, forwarded, expected):
    settings.NUM_PROXIES = proxies
    extra = {"REMOTE_ADDR": "192.0.2.1"}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    request = RequestFactory().get("/", **extra)
    assert client_ip(request) == expected
    assert AnonThrottle().get_ident(request) == expected  # DRF's throttles use the same rule


SHOW_PROXIES = (
    "import django; django.setup(); from django.conf import settings as s;"
    "print(s.NUM_PROXIES, s.REST_FRAMEWORK['NUM_PROXIES'], s.AXES_CLIENT_IP_CALLABLE)"
)


@pytest.mark.heavy  # a Django subprocess per case
@pytest.mark.parametrize(
    "env,expected",
    [
        ({}, "0 0 audit.context.client_ip"),
        ({"BEHIND_TLS_PROXY": "1"}, "1 1 audit.context.client_ip"),
        ({"BEHIND_TLS_PROXY": "1", "NUM_PROXIES": "2"}, "2 2 audit.context.client_ip"),
    ],
)
def test_settings_trust_one_proxy_behind_tls_and_none_otherwise(env, expected, tmp_path):
    base = {k: v for k, v in os.environ.items() if k not in ("BEHIND_TLS_PROXY", "NUM_PROXIES")}
    result = subprocess.run(
        [sys.executable, "-c", SHOW_PROXIES], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**base, "DJANGO_SETTINGS_MODULE": "text2grad_web.settings", "T2G_VAR_DIR": str(tmp_path), **env},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == expected


@pytest.fixture
def behind_proxy(live_server, settings, django_user_model):
    """The live server configured as BEHIND_TLS_PROXY=1 sets it up, with a reverse proxy in front."""
    settings.NUM_PROXIES = 1
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    settings.SECURE_PROXY_SSL_HEADER = TLS_PROXY
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
    for name in ("user0", "user1", "user2", "user3"):
        roles.assign_role(
            django_user_model.objects.create_user(username=name, password=PASSWORD), "annotator"
        )
    cache.clear()  # the throttles' and limits' counts from earlier tests (the cache table is not flushed)
    with ReverseProxy(live_server.url) as proxy:
        yield proxy.url
    cache.clear()


def _login_page(base: str, username: str, password: str, forged: str) -> requests.Response:
    session = requests.Session()
    headers = {"X-Forwarded-For": forged, "Referer": f"https://{base.split('://')[1]}/accounts/login/"}
    page = session.get(f"{base}/accounts/login/", headers=headers, timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return session.post(
        f"{base}/accounts/login/",
        {"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers=headers,
        allow_redirects=False,
        timeout=30,
    )


@pytest.mark.django_db(transaction=True)
def test_a_forged_forwarded_for_does_not_escape_the_login_limit(behind_proxy, settings):
    from audit.models import AuditEvent

    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 3
    for n in range(3):
        wrong = _login_page(behind_proxy, f"user{n}", "guess", forged=f"10.9.{n}.1")
        assert wrong.status_code == 200 and "match" in wrong.text
    # A fourth forged first entry, the right password of a fourth account: the address is paused.
    refused = _login_page(behind_proxy, "user3", PASSWORD, forged="10.9.3.1")
    assert refused.status_code == 429 and "from your address" in refused.text
    api = requests.post(
        f"{behind_proxy}/api/v1/auth/token/", {"username": "user3", "password": PASSWORD},
        headers={"X-Forwarded-For": "10.9.4.1"}, timeout=30,
    )  # fmt: skip
    assert api.status_code == 429 and "this address" in api.json()["detail"]
    # The audit log names the address the proxy saw, never the forged ones.
    failed = AuditEvent.objects.filter(action="login.failed")
    assert failed.count() == 3 and set(failed.values_list("ip", flat=True)) == {"127.0.0.1"}


@pytest.mark.django_db(transaction=True)
def test_a_forged_forwarded_for_does_not_escape_the_token_throttle(behind_proxy, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "login": "6/min"},
    }
    codes = [
        requests.post(
            f"{behind_proxy}/api/v1/auth/token/", {"username": f"nobody{n}", "password": "x"},
            headers={"X-Forwarded-For": f"10.8.{n}.1"}, timeout=30,
        ).status_code
        for n in range(10)
    ]  # fmt: skip
    assert codes == [400] * 6 + [429] * 4
