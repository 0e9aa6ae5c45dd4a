"""Model versions: the base version on a fresh install, and which version generation uses (promote and
roll back are one pointer move)."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from evaluation import selectors as evaluation_selectors

from ..models import ModelVersion
from .events import version_activated_emit

BASE_VERSION_NAME = "v0-base"


def base_model_reference() -> str:
    return settings.T2G_BASE_MODEL or "SmolLM2-135M-Instruct (embedded)"


@transaction.atomic
def model_version_bootstrap() -> ModelVersion:
    """Make sure a version exists and one is active: the bare base model, on a fresh install."""
    active = ModelVersion.objects.select_for_update().filter(is_active=True).first()
    if active:
        return active
    version, _ = ModelVersion.objects.get_or_create(
        name=BASE_VERSION_NAME, defaults={"base_model": base_model_reference(), "notes": "The base model."}
    )
    if not ModelVersion.objects.filter(is_active=True).exists():
        version.is_active = True
        version.activated_at = timezone.now()
        version.save(update_fields=["is_active", "activated_at"])
    return version


def version_is_rollback(version: ModelVersion, active: ModelVersion | None) -> bool:
    """Whether activating ``version`` goes back: to an ancestor of the active version (its parent, …, the
    base it was trained from)."""
    seen = set()
    node = active.parent if active is not None else None
    while node is not None and node.pk not in seen:
        if node.pk == version.pk:
            return True
        seen.add(node.pk)
        node = node.parent
    return False


@transaction.atomic
def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    """Make ``version`` the one generation uses. Promote and roll back are both this pointer move; the
    webhooks hear which it was (``version.promoted`` or ``version.rolled_back``) in the same transaction."""
    previous = ModelVersion.objects.select_for_update().filter(is_active=True).first()
    audit_record(
        action="version.activate",
        obj=version,
        details={"name": version.name, "previous": previous.name if previous else None},
    )
    ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True, activated_at=timezone.now())
    version.refresh_from_db()
    if previous is None or previous.pk != version.pk:
        version_activated_emit(
            version=version, previous=previous, rollback=version_is_rollback(version, previous)
        )
    return version


def model_version_auto_promote(*, version: ModelVersion) -> dict:
    """Promote ``version`` only through the gate manual promotion enforces (``promotion_evidence``: a
    judged campaign shows it significantly better than the active version); without that evidence it
    stays saved but not active. Returns ``{"promoted": bool, "reason": str}`` for the round's summary."""
    active = ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).first()
    evidence = evaluation_selectors.promotion_evidence(version, active)
    if evidence["significant"]:
        model_version_activate(version=version)
    return {"promoted": bool(evidence["significant"]), "reason": evidence["reason"]}
