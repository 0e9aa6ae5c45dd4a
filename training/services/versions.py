"""Model versions: the base version on a fresh install, and which version generation uses (promote and
roll back are one pointer move)."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from evaluation import selectors as evaluation_selectors

from ..models import ModelVersion

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


@transaction.atomic
def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    """Make ``version`` the one generation uses. Promote and roll back are both this pointer move."""
    previous = ModelVersion.objects.filter(is_active=True).values_list("name", flat=True).first()
    audit_record(action="version.activate", obj=version, details={"name": version.name, "previous": previous})
    ModelVersion.objects.select_for_update().filter(is_active=True).exclude(pk=version.pk).update(
        is_active=False
    )
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True, activated_at=timezone.now())
    version.refresh_from_db()
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
