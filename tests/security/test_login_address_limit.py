"""Failed logins counted per client address too (password spraying: one address, many accounts, each
tried once, never trips the per-account lockout). Through the real middleware stack, the database cache
and the real auth backends."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from annotations import roles

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple 9"
SPRAYER, OTHER = "203.0.113.7", "203.0.113.8"


@pytest.fixture
def accounts(django_user_model, settings):
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 3
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
    users = []
    for n in range(5):
        user = django_user_model.objects.create_user(username=f"user{n}", password=PASSWORD)
        roles.assign_role(user, roles.ANNOTATOR)
        users.append(user)
    return users


def _page(client, username, password, ip):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def _token(client, username, password, ip):
    return client.post("/api/v1/auth/token/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_one_address_spraying_many_accounts_is_stopped(client, accounts):
    # One wrong password on each of three accounts: no account is near its own limit (5) ...
    for n in range(3):
        response = _page(client, f"user{n}", "Summer2026!", SPRAYER)
        assert response.status_code == 200 and "match" in response.content.decode()
    # ... but the address is: even the right password of a fourth account is refused, before it is checked.
    refused = _page(client, "user3", PASSWORD, SPRAYER)
    assert refused.status_code == 429 and "from your address" in refused.content.decode()
    assert int(refused["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session
    api = _token(client, "user3", PASSWORD, SPRAYER)
    assert api.status_code == 429 and "this address" in api.json()["detail"]
    admin = client.post("/admin/login/", {"username": "user3", "password": PASSWORD}, REMOTE_ADDR=SPRAYER)
    assert admin.status_code == 429
    # Another address is not affected, and none of the sprayed accounts is locked.
    assert _page(client, "user0", PASSWORD, OTHER).status_code == 302
    client.logout()
    assert _token(client, "user1", PASSWORD, OTHER).status_code == 200


def test_the_api_counts_too_and_a_success_does_not_reset_the_count(client, accounts):
    assert _token(client, "user0", "guess", SPRAYER).status_code == 400
    assert _page(client, "user1", "guess", SPRAYER).status_code == 200
    assert _page(client, "user4", PASSWORD, SPRAYER).status_code == 302  # the sprayer's own account
    client.logout()
    assert _token(client, "user2", "guess", SPRAYER).status_code == 400  # the third failure
    assert _page(client, "user4", PASSWORD, SPRAYER).status_code == 429
    # Reading the login page is never refused: only attempts are.
    assert client.get("/accounts/login/", REMOTE_ADDR=SPRAYER).status_code == 200


@pytest.mark.heavy  # waits out the window on the wall clock
def test_the_block_ends_when_the_window_passes_without_a_failure(client, accounts, settings):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=2)
    for n in range(3):
        _page(client, f"user{n}", "guess", SPRAYER)
    assert _page(client, "user3", PASSWORD, SPRAYER).status_code == 429
    time.sleep(2.5)
    assert _page(client, "user3", PASSWORD, SPRAYER).status_code == 302
