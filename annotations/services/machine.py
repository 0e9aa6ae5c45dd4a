"""Machine critics as drafts for people: a project's critic configuration, and the jobs that run a critic.

Admins choose which registered critics (``text2grad.machine_critics``) a project uses and with which
settings (``machine_critic_configure``), and start a run over the project's outputs
(``machine_critic_run_start``): a ``MachineCriticJob`` on the ``critics`` lane, whose worker
(``annotations.machine.machine_critic_run``) writes one annotation per output by the critic's machine
annotator, with ``origin=machine`` and the critic's identity. Those enter the review queue like any
submitted annotation (accept, edit into gold, reject); rounds and critic training take them only when their
selection's ``origin`` asks for them.

The web process never imports the critics (the LLM critic's aligner reaches torch): names are checked
against ``settings.T2G_MACHINE_CRITICS`` here, the settings by the critic itself when the worker builds it
(a bad key fails the job at once, saying which keys the critic knows).
"""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q

from audit.services import audit_record
from jobs import dispatch, lifecycle

from .. import roles
from ..models import (
    EVALUATION_PURPOSE,
    Annotation,
    Generation,
    MachineCriticConfig,
    MachineCriticJob,
    Project,
)

MACHINE_USER_PREFIX = "machine-"
MAX_SETTINGS_CHARS = 20_000
RUN_TASK = "annotations.machine_critic_run"


def machine_critic_names() -> list[str]:
    return list(settings.T2G_MACHINE_CRITICS)


def _admin_only(user, what: str) -> None:
    if user is not None and not roles.is_admin(user):
        raise PermissionDenied(f"Only admins {what}.")


def _clean_settings(value) -> dict:
    if isinstance(value, str):
        try:
            value = json.loads(value or "{}")
        except json.JSONDecodeError as exc:
            raise ValidationError(f"The critic's settings must be a JSON object: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ValidationError("The critic's settings must be a JSON object (names to values).")
    if len(json.dumps(value)) > MAX_SETTINGS_CHARS:
        raise ValidationError(f"The critic's settings are over {MAX_SETTINGS_CHARS:,} characters.")
    return value


def machine_critic_configure(
    *, project: Project, name: str, critic_settings=None, enabled: bool = True, user=None
) -> MachineCriticConfig:
    """Add or change one of the project's machine critics (admins). Raises ValidationError for a name
    the deployment does not offer or settings that are not a JSON object."""
    _admin_only(user, "configure machine critics")
    if name not in machine_critic_names():
        raise ValidationError(
            f"Unknown critic {name!r}; the critics are {', '.join(machine_critic_names())}."
        )
    cleaned = _clean_settings(critic_settings if critic_settings is not None else {})
    with transaction.atomic():
        config, created = MachineCriticConfig.objects.update_or_create(
            project=project,
            name=name,
            defaults={"critic_settings": cleaned, "enabled": bool(enabled)},
            create_defaults={"critic_settings": cleaned, "enabled": bool(enabled), "created_by": user},
        )
        audit_record(
            action="machine_critic.configure",
            actor=user,
            obj=project,
            details={"critic": name, "settings": cleaned, "enabled": bool(enabled), "created": created},
        )
    return config


def machine_annotator(name: str):
    """The user a critic writes as (one per critic, so one output can carry several critics' drafts):
    inactive, with no usable password, so nobody logs in as it."""
    users = get_user_model()
    user, created = users.objects.get_or_create(
        username=f"{MACHINE_USER_PREFIX}{name}"[:150], defaults={"is_active": False}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def machine_critic_outputs(project: Project) -> list[int]:
    """The outputs a run critiques: the project's, less those sampled only to compare versions."""
    return list(
        Generation.objects.filter(prompt__project=project)
        .filter(Q(sampling_params__purpose__isnull=True) | ~Q(sampling_params__purpose=EVALUATION_PURPOSE))
        .order_by("id")
        .values_list("id", flat=True)
    )


def machine_critic_run_start(
    *, config: MachineCriticConfig, user=None, generation_ids: list[int] | None = None
) -> MachineCriticJob:
    """Queue a run of this critic over the project's outputs (or the given ones of the project) on the
    critics lane (admins). Outputs the critic already annotated are skipped by the run."""
    _admin_only(user, "run machine critics")
    project = config.project
    if not config.enabled:
        raise ValidationError(f"The critic {config.name!r} is disabled on this project.")
    if project.is_archived:
        raise ValidationError(f"Project {project.name!r} is archived.")
    ids = machine_critic_outputs(project)
    if generation_ids is not None:
        wanted = {int(pk) for pk in generation_ids}
        if not wanted <= set(ids):
            raise ValidationError("Every output must be one of the project's (evaluation outputs are not).")
        ids = [pk for pk in ids if pk in wanted]
    if not ids:
        raise ValidationError("The project has no outputs to critique.")
    with transaction.atomic():
        job = MachineCriticJob.objects.create(
            project=project,
            config=config,
            critic={"name": config.name, "settings": config.critic_settings},
            generation_ids=ids,
            progress_total=len(ids),
            created_by=user,
        )
        audit_record(
            action="machine_critic.run",
            actor=user,
            obj=project,
            details={"critic": config.name, "job": job.pk, "outputs": len(ids)},
        )
        dispatch.enqueue(RUN_TASK, job.pk)
    return job


def machine_critic_run_cancel(*, job: MachineCriticJob, user=None) -> bool:
    """A queued run ends at once; a running one stops before its next output (the annotations it wrote
    stay, as drafts for review). False if it had finished."""
    _admin_only(user, "cancel machine critic runs")
    return lifecycle.request_cancel(
        MachineCriticJob, job.pk, "Cancelled before it started; no output was critiqued."
    )


def is_machine(annotation: Annotation) -> bool:
    return annotation.origin == Annotation.Origin.MACHINE
