"""The security tests reuse the API tests' dataset and clients, and add a second researcher and a no-role user."""

from __future__ import annotations

import pytest

from tests.api.conftest import _isolated, api, feedback  # noqa: F401 (fixtures)
from tests.conftest import _make_user


@pytest.fixture
def researcher2(db, django_user_model):
    return _make_user(django_user_model, "res2", "researcher")


@pytest.fixture
def nobody(db, django_user_model):
    """A logged-in account with no role (what a fresh sign-up looks like before an admin acts)."""
    return django_user_model.objects.create_user(username="nobody", password="pw-nobody-1")
