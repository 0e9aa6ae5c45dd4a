"""Training's sections on pages of the annotations app: the project page shows the active model version
and the project's latest generation jobs. Registered with ``annotations.panels.register_project_section``
when the app starts (``TrainingConfig.ready``): ``annotations`` never imports ``training``.
"""

from __future__ import annotations

from django.http import HttpRequest

from annotations.models import Project

from . import selectors


def project_generation_section(request: HttpRequest, project: Project) -> tuple[str, dict]:
    return (
        "training/_project_generation.html",
        {
            "project": project,
            "jobs": selectors.generation_jobs_for_project(project.pk)[:5],
            "active_version": selectors.active_version(),
        },
    )
