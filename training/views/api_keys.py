"""HTML for API keys of the OpenAI-compatible endpoint: list, create (the key is shown once), revoke.

Researchers and admins, each for their own keys (an admin may revoke anyone's through the service).
Every write goes through ``training.services.api_keys``.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from ..forms import ApiKeyForm
from ..models import ApiKey
from ..services import api_keys


def _require_key_user(request: HttpRequest) -> None:
    if not api_keys.can_use_keys(request.user):
        raise PermissionDenied("API keys are for researchers and admins.")


@never_cache  # the page that shows a new key must not be kept by any cache
@require_http_methods(["GET", "POST"])
@login_required
def api_key_list(request: HttpRequest) -> HttpResponse:
    _require_key_user(request)
    form = ApiKeyForm(request.POST or None)
    secret = None
    if request.method == "POST" and form.is_valid():
        try:
            key, secret = api_keys.api_key_create(
                user=request.user,
                name=form.cleaned_data["name"],
                projects=list(form.cleaned_data["projects"]),
                rate_limit_per_minute=form.cleaned_data["rate_limit_per_minute"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            form = ApiKeyForm()
    context = {
        "form": form,
        "secret": secret,
        "keys": api_keys.api_keys_for(request.user),
        "endpoint_port": settings.T2G_ENDPOINT_PORT,
        "status": 400 if request.method == "POST" and secret is None else 200,
    }
    return render(request, "training/api_keys.html", context, status=context["status"])


@require_POST
@login_required
def api_key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    _require_key_user(request)
    key = get_object_or_404(ApiKey, pk=pk, user=request.user)
    api_keys.api_key_revoke(key=key, user=request.user)
    messages.success(request, f"Key {key.prefix}… is revoked; requests with it now get 401.")
    return redirect("api_key_list")
