"""A limit on failed logins per client address, above the per-(account, address) lockout.

django-axes locks an *account from one address* after LOGIN_FAILURE_LIMIT failures there (so nobody can
lock an account's owner out from elsewhere), so one address that tries a password or two on each of many
accounts (password spraying) never trips it. Failures are therefore also
counted per client address, in the shared cache (every gunicorn process sees one count): past
LOGIN_ADDRESS_FAILURE_LIMIT, that address's login attempts are answered 429 (the login page, the admin's
login and the API's token endpoint alike) until LOGIN_LOCKOUT_MINUTES pass without a counted failure.
Refused attempts (by this limit, or by the account's lockout) are not counted, so the block ends on
time. The client address is ``audit.context.client_ip``'s, the one rule for every limit. A successful login does not reset the count:
an attacker's own account must not clear it. Two failures at the same instant may count once.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from audit.context import client_ip

from . import safejson

MAX_PASSWORD_CHARS = 4096  # longer is no password anyone types; hashing it is work for nothing


def _key(request) -> str:
    return f"t2g:login-failures:{client_ip(request) or 'unknown'}"


def _window_s() -> int:
    return max(1, int(settings.AXES_COOLOFF_TIME.total_seconds()))


def address_failures(request) -> int:
    return int(cache.get(_key(request), 0))


def address_locked(request) -> bool:
    return address_failures(request) >= settings.LOGIN_ADDRESS_FAILURE_LIMIT


def record_failure(sender, credentials=None, request=None, **kwargs) -> None:
    """``user_login_failed``: one more failure for the request's address (the window starts again)."""
    if request is None:
        return
    if (
        getattr(request, "axes_locked_out", False)
        and getattr(request, "axes_failures_since_start", 0) is None
    ):
        return  # refused by the account's lockout before any password was checked: not a new failure
    key = _key(request)
    cache.set(key, int(cache.get(key, 0)) + 1, _window_s())


def credentials_problem(username: object, password: object) -> str | None:
    """Why a login's username or password cannot be checked at all (the same rule on every login path),
    or None. The username is stored with each counted failure, so what the database cannot hold (too
    long, a NUL, a lone surrogate) must never reach the authentication backends."""
    if username is None and password is None:
        return None  # nothing sent: the form or serializer says what is missing
    if not isinstance(username, str) or not isinstance(password, str | type(None)):
        return "The username and password must be text."
    limit = get_user_model()._meta.get_field(get_user_model().USERNAME_FIELD).max_length or 150
    if len(username) > limit:
        return f"A username has at most {limit} characters."
    if len(password or "") > MAX_PASSWORD_CHARS:
        return f"A password has at most {MAX_PASSWORD_CHARS} characters."
    for name, value in (("The username", username), ("The password", password or "")):
        problem = safejson.text_problem(value)
        if problem:
            return f"{name} {problem}."
    return None


def _posted_credentials(request: HttpRequest, *, api: bool) -> tuple[object, object] | str:
    """(username, password) from the login POST, or why the body cannot be read."""
    if api and request.content_type == "application/json":
        try:
            data = safejson.loads(request.body or b"{}", max_depth=safejson.MAX_BODY_DEPTH, name="the body")
        except (safejson.UnsafeJSON, ValueError) as exc:
            return f"JSON parse error - {exc}"
        if not isinstance(data, dict):
            return "The body must be a JSON object with a username and a password."
        return data.get("username"), data.get("password")
    return request.POST.get("username"), request.POST.get("password")


class LoginAddressLimitMiddleware:
    """Answers a login POST from a blocked address with 429 before any password is checked, and one
    whose credentials break the input rules (``credentials_problem``) with 400."""

    def __init__(self, get_response):
        self.get_response = get_response
        self._paths: dict[str, bool] | None = None

    def _login_paths(self) -> dict[str, bool]:
        """Path → whether it is the API's (JSON answer)."""
        if self._paths is None:
            self._paths = {reverse("login"): False, reverse("admin:login"): False, reverse("api-token"): True}
        return self._paths

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path in self._login_paths():
            api = self._login_paths()[request.path]
            if address_locked(request):
                return self._refuse(request, api=api)
            posted = _posted_credentials(request, api=api)
            problem = posted if isinstance(posted, str) else credentials_problem(*posted)
            if problem:
                return self._bad_input(request, problem, api=api)
        return self.get_response(request)

    def _bad_input(self, request: HttpRequest, problem: str, *, api: bool) -> HttpResponse:
        if api:
            return JsonResponse({"detail": problem}, status=400)
        return render(request, "registration/bad_login.html", {"problem": problem}, status=400)

    def _refuse(self, request: HttpRequest, *, api: bool) -> HttpResponse:
        wait = _window_s()
        detail = "Too many failed logins from this address. Try again later."
        if api:
            response = JsonResponse({"detail": detail}, status=429)
        else:
            context = {"by_address": True, "failure_limit": settings.LOGIN_ADDRESS_FAILURE_LIMIT,
                       "cooloff_timedelta": settings.AXES_COOLOFF_TIME}  # fmt: skip
            response = render(request, "registration/locked_out.html", context, status=429)
        response["Retry-After"] = str(wait)
        return response
