"""Schemathesis against the OpenAPI schema, through the WSGI app: no server errors, responses as documented.

The admin's token reaches every operation (writes included); every other role (reviewers included) and an
account with no role must never get a server error either. A small dataset makes some generated ids real.
Bounded: a handful of examples per operation and role.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from text2grad_web.wsgi import application


def _load_schema():
    """The schema as /api/v1/schema/ serves it, generated here: answering that request would touch the
    database (the shared throttle cache), which collection may not."""
    from drf_spectacular.generators import SchemaGenerator

    raw = json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))
    loaded = schemathesis.openapi.from_dict(raw)
    loaded.app = application
    loaded.location = "/api/v1/schema/"
    return loaded


schema = _load_schema()
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture
def admin_token(feedback, admin_user):
    """The admin's token, with the WSGI app kept from closing the test's transaction-bound connection
    at the end of each request (what Django's own test client does too)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections
    from rest_framework.authtoken.models import Token

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield Token.objects.get_or_create(user=admin_user)[0].key
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.mark.heavy
@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_api_conforms_to_its_schema(case, admin_token):
    case.call_and_validate(headers={"Authorization": f"Token {admin_token}"}, checks=CHECKS)


@pytest.fixture(params=["annotator", "reviewer", "researcher", "nobody"])
def role_token(request, feedback):
    """Each other role's token (and an account with no role), the connection kept open as above."""
    from django.contrib.auth import get_user_model
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections
    from rest_framework.authtoken.models import Token

    if request.param == "nobody":
        user = get_user_model().objects.create_user(username="nobody", password="unused-password-1")
    else:
        user = request.getfixturevalue(request.param)
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield Token.objects.get_or_create(user=user)[0].key
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.mark.heavy
@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_api_has_no_server_errors_for_any_role(case, role_token):
    """Refusals are 4xx, never 5xx, whoever asks (fewer examples: most answers are refusals)."""
    case.call_and_validate(headers={"Authorization": f"Token {role_token}"}, checks=CHECKS)
