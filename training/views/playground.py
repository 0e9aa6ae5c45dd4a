"""HTML for the playground: ask one or two versions the same prompt and seed (through the endpoint), and
send an answer to a project's annotation queue. Researchers and admins; writes through
``training.services.playground``."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from annotations.models import Project

from ..forms import PlaygroundForm, PlaygroundSendForm
from ..services import api_keys, playground


def _require_player(request: HttpRequest) -> None:
    if not api_keys.can_use_keys(request.user):
        raise PermissionDenied("The playground is for researchers and admins.")


@require_http_methods(["GET", "POST"])
@login_required
def playground_page(request: HttpRequest) -> HttpResponse:
    _require_player(request)
    form = PlaygroundForm(request.POST or None)
    answers = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        versions = [data["version_a"]] + ([data["version_b"]] if data["version_b"] else [])
        answers = playground.playground_ask(
            user=request.user,
            versions=versions,
            prompt=data["prompt"],
            seed=data["seed"],
            temperature=data["temperature"],
            max_tokens=data["max_tokens"],
        )
    context = {
        "form": form,
        "answers": answers,
        "projects": Project.objects.filter(is_archived=False).order_by("name"),
    }
    status = 400 if request.method == "POST" and not form.is_valid() else 200
    return render(request, "training/playground.html", context, status=status)


@require_POST
@login_required
def playground_send(request: HttpRequest) -> HttpResponse:
    _require_player(request)
    form = PlaygroundSendForm(request.POST)
    if not form.is_valid():
        messages.error(
            request,
            "That answer could not be sent: "
            + "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()),
        )
        return redirect("playground")
    data = form.cleaned_data
    try:
        generation = playground.playground_output_send(
            user=request.user,
            project=data["project"],
            version=data["version"],
            prompt=data["prompt"],
            text=data["text"],
            seed=data["seed"],
            temperature=data["temperature"],
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("playground")
    messages.success(
        request,
        f"Sent to {data['project'].name}'s annotation queue as output #{generation.pk} of {data['version'].name}.",
    )
    return redirect("playground")
