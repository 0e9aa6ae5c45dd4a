"""API keys for the OpenAI-compatible endpoint, and what a key may use (web-safe: no torch here).

A key is ``t2g-`` + 43 url-safe characters (256 random bits). Only its sha256 is stored; the key itself
is returned once by :func:`api_key_create` and never again. A key belongs to a user (researchers and
admins: the people who may download versions), names the projects it may use, and carries a rate limit.

What a key may use (:func:`api_key_models`):

- every version trained by a round of one of its projects, and every version no round made (the base);
- ``project/<slug>`` for each of its projects: an alias of the active version, so an application keeps
  the same model name while admins promote and roll back.

The endpoint process (``training/worker/endpoint.py``) calls :func:`api_key_authenticate`,
:func:`api_key_models` / :func:`api_key_resolve` and :func:`api_key_record_use`; the page
(``training/views/api_keys.py``) calls create and revoke. Creating, revoking and every refused or served
request are audited.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import slugify

from annotations import roles
from annotations.models import Project
from audit.services import audit_record

from ..models import ApiKey, ModelVersion

KEY_PREFIX = "t2g-"
STUDIO_TOKEN_PREFIX = "t2g-studio:"  # the playground's short-lived signed token (never stored)
STUDIO_TOKEN_SALT = "training.playground.endpoint"
STUDIO_TOKEN_MAX_AGE_S = 120
SHOWN_PREFIX_CHARS = 12  # "t2g-" and 8 random characters: enough to tell keys apart in a list
ALIAS_PREFIX = "project/"
MAX_RATE_LIMIT = 10_000


def can_use_keys(user) -> bool:
    """Researchers and admins: the people who may download the versions the endpoint serves."""
    return roles.is_researcher(user)


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def project_alias(project: Project) -> str:
    """The model name under which the endpoint serves the active version to this project's keys."""
    return ALIAS_PREFIX + (slugify(project.name) or str(project.pk))


@transaction.atomic
def api_key_create(
    *, user, name: str, projects: list[Project], rate_limit_per_minute: int | None = None
) -> tuple[ApiKey, str]:
    """A new key for ``user``; returns the row and the key itself (shown once, stored only hashed)."""
    if not can_use_keys(user):
        raise PermissionDenied("API keys are for researchers and admins.")
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the key a name (what it is for)."})
    if not projects:
        raise ValidationError({"projects": "Choose at least one project the key may use."})
    limit = settings.T2G_ENDPOINT_RATE_LIMIT if rate_limit_per_minute is None else rate_limit_per_minute
    if not 1 <= limit <= MAX_RATE_LIMIT:
        raise ValidationError({"rate_limit_per_minute": f"Between 1 and {MAX_RATE_LIMIT} requests a minute."})
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        user=user,
        name=name[:100],
        prefix=secret[:SHOWN_PREFIX_CHARS],
        key_hash=key_hash(secret),
        rate_limit_per_minute=limit,
    )
    key.projects.set(projects)
    audit_record(
        action="api_key.create",
        actor=user,
        obj=key,
        details={"prefix": key.prefix, "name": key.name, "projects": sorted(p.pk for p in projects)},
    )
    return key, secret


@transaction.atomic
def api_key_revoke(*, key: ApiKey, user) -> ApiKey:
    """Revoke a key (its owner, or an admin). Idempotent: revoking twice keeps the first time."""
    if key.user_id != user.pk and not roles.is_admin(user):
        raise PermissionDenied("Only the key's owner or an admin can revoke it.")
    updated = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    key.refresh_from_db()
    if updated:
        audit_record(action="api_key.revoke", actor=user, obj=key, details={"prefix": key.prefix})
    return key


def api_keys_for(user):
    return ApiKey.objects.filter(user=user, in_studio=False).prefetch_related("projects")


def studio_token_for(user) -> str:
    """A token the web process sends the endpoint on ``user``'s behalf (the playground): signed with the
    deployment's SECRET_KEY, valid for two minutes, never stored."""
    if not can_use_keys(user):
        raise PermissionDenied("The playground is for researchers and admins.")
    return STUDIO_TOKEN_PREFIX + signing.dumps(user.pk, salt=STUDIO_TOKEN_SALT)


@transaction.atomic
def studio_key_from_token(token: str) -> ApiKey | None:
    """The user's playground key for a valid studio token (made on first use; scoped to every open
    project, as researchers and admins see them all), else None. Counted and audited like any key."""
    try:
        user_id = signing.loads(
            token.removeprefix(STUDIO_TOKEN_PREFIX), salt=STUDIO_TOKEN_SALT, max_age=STUDIO_TOKEN_MAX_AGE_S
        )
    except signing.BadSignature:
        return None
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None or not can_use_keys(user):
        return None
    key = ApiKey.objects.filter(user=user, in_studio=True, revoked_at__isnull=True).first()
    if key is None:
        secret = secrets.token_hex(32)  # thrown away: this key is reached only through studio tokens
        key = ApiKey.objects.create(
            user=user,
            name="Playground",
            prefix="studio",
            key_hash=key_hash(secret),
            in_studio=True,
            rate_limit_per_minute=settings.T2G_ENDPOINT_RATE_LIMIT,
        )
    key.projects.set(Project.objects.filter(is_archived=False))
    return key


def api_key_authenticate(secret: str) -> ApiKey | None:
    """The live key with this secret (not revoked, its user active and still allowed keys), else None."""
    if not secret or not secret.startswith(KEY_PREFIX):
        return None
    if secret.startswith(STUDIO_TOKEN_PREFIX):
        return studio_key_from_token(secret)
    key = (
        ApiKey.objects.select_related("user")
        .filter(key_hash=key_hash(secret), revoked_at__isnull=True, user__is_active=True, in_studio=False)
        .first()
    )
    if key is None or not can_use_keys(key.user):
        return None
    return key


def rate_limit_admit(key: ApiKey, *, now: float | None = None) -> int:
    """Count one request in the key's current minute; returns seconds to wait (0: admitted).

    A fixed one-minute window in the shared cache, so every endpoint process counts against one limit."""
    now = timezone.now().timestamp() if now is None else now
    window = int(now // 60)
    name = f"t2g:endpoint:rate:{key.pk}:{window}"
    cache.add(name, 0, timeout=120)
    try:
        used = cache.incr(name)
    except ValueError:  # expired between add and incr
        cache.set(name, 1, timeout=120)
        used = 1
    if used > key.rate_limit_per_minute:
        return max(1, int(60 - now % 60))
    return 0


@dataclass(frozen=True)
class ServedModel:
    """One model name a key may ask for, and the version behind it."""

    id: str
    version: ModelVersion
    owned_by: str


def api_key_models(key: ApiKey) -> list[ServedModel]:
    """The model names this key may use: its projects' aliases (when a version is active), then versions."""
    projects = list(key.projects.filter(is_archived=False).order_by("name"))
    served: list[ServedModel] = []
    active = ModelVersion.objects.filter(is_active=True).first()
    if active is not None:
        served.extend(ServedModel(project_alias(p), active, f"project:{p.pk}") for p in projects)
    versions = ModelVersion.objects.filter(
        Q(created_by_round__isnull=True) | Q(created_by_round__project__in=projects)
    ).order_by("-created_at", "-id")
    served.extend(ServedModel(v.name, v, "text2grad-studio") for v in versions)
    return served


def api_key_resolve(key: ApiKey, model: str) -> ServedModel | None:
    """The model a name stands for, if this key may use it (None: unknown, or another project's)."""
    return next((m for m in api_key_models(key) if m.id == model), None)


def api_key_record_use(
    *, key: ApiKey, endpoint: str, model: str, prompt_tokens: int, completion_tokens: int, ip: str | None
) -> None:
    """Count a served request on the key and append its audit entry."""
    with transaction.atomic():
        ApiKey.objects.filter(pk=key.pk).update(
            requests=F("requests") + 1,
            prompt_tokens=F("prompt_tokens") + prompt_tokens,
            completion_tokens=F("completion_tokens") + completion_tokens,
            last_used_at=timezone.now(),
        )
        audit_record(
            action="endpoint.completion",
            actor=key.user,
            obj=key,
            ip=ip,
            details={
                "endpoint": endpoint,
                "model": model,
                "prefix": key.prefix,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
            },
        )


def api_key_record_refusal(*, key: ApiKey | None, reason: str, detail: str, ip: str | None) -> None:
    """Audit a refused request (bad key, a model the key may not use, over the rate limit)."""
    audit_record(
        action=f"endpoint.refused.{reason}"[:64],
        actor=key.user if key is not None else None,
        obj=key,
        object_type="" if key is not None else "training.apikey",
        ip=ip,
        details={"detail": detail[:500], "prefix": key.prefix if key is not None else ""},
    )
