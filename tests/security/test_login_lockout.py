"""The account lockout is per (account, client address): a stranger's wrong passwords lock the account
from the stranger's address only, retries while locked do not restart the cool-off, and the per-address
limit over every account sits above it. Through the real middleware stack and the real auth backends."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from annotations import roles

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple 9"
ATTACKER, OWNER_HOME, OWNER_PHONE = "198.51.100.66", "203.0.113.20", "203.0.113.21"


@pytest.fixture
def victim(django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
    settings.AXES_FAILURE_LIMIT = 5
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 40
    user = django_user_model.objects.create_user(username="victim", password=PASSWORD)
    roles.assign_role(user, roles.ANNOTATOR)
    return user


def _page(client, password, ip, username="victim"):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def _token(client, password, ip, username="victim"):
    return client.post("/api/v1/auth/token/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_a_stranger_cannot_lock_the_owner_out(client, victim):
    for _ in range(5):
        assert _page(client, "guess", ATTACKER).status_code in (200, 429)
    locked = _page(client, PASSWORD, ATTACKER)
    assert locked.status_code == 429 and "from your address" in locked.content.decode()
    assert _token(client, PASSWORD, ATTACKER).status_code == 429
    # The owner, from an address with no failures, logs in on the page and on the token endpoint.
    assert _page(client, PASSWORD, OWNER_HOME).status_code == 302
    assert client.session["_auth_user_id"] == str(victim.pk)
    client.logout()
    assert _token(client, PASSWORD, OWNER_PHONE).status_code == 200


def test_the_owner_locked_from_their_own_address_can_use_another(client, victim):
    for _ in range(4):
        assert _token(client, "typo", OWNER_HOME).status_code == 400
    assert _token(client, "typo", OWNER_HOME).status_code == 429  # the fifth locks it here
    assert _token(client, PASSWORD, OWNER_HOME).status_code == 429
    assert _page(client, PASSWORD, OWNER_PHONE).status_code == 302


@pytest.mark.heavy  # waits out a 6-second lock on the wall clock
def test_retries_while_locked_do_not_restart_the_cool_off(client, victim, settings):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=6)
    for _ in range(5):
        _page(client, "guess", ATTACKER)
    locked_at = time.monotonic()
    # A wrong attempt every half second for the first 3 seconds of the 6-second lock (margin for a slow
    # machine): each refused. Had any of them restarted the cool-off, the lock would last past 9 s.
    while time.monotonic() - locked_at < 3.0:
        assert _page(client, "guess", ATTACKER).status_code == 429
        assert _token(client, "guess", ATTACKER).status_code == 429
        time.sleep(0.5)
    time.sleep(max(0.0, locked_at + 6.5 - time.monotonic()))
    assert _page(client, PASSWORD, ATTACKER).status_code == 302  # the lock ended on time


def test_refused_attempts_do_not_count_towards_the_address_limit(client, victim, settings):
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 7
    for _ in range(5):
        _page(client, "guess", ATTACKER)  # 5 counted failures: the account is locked from here
    for _ in range(5):
        assert _page(client, "guess", ATTACKER).status_code == 429  # refused, not counted
    # The address has 5 failures of its 7: another account can still be tried from it, twice.
    other = type(victim).objects.create_user(username="other", password=PASSWORD)
    roles.assign_role(other, roles.ANNOTATOR)
    assert _page(client, "guess", ATTACKER, username="other").status_code == 200
    assert _page(client, PASSWORD, ATTACKER, username="other").status_code == 302
