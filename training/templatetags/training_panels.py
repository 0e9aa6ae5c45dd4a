"""Training's panels on pages of the annotations app (the project page shows its generation jobs).

A template tag rather than a view import: ``annotations`` never imports ``training``; its templates name
this library, and Django loads it by name.
"""

from django import template

from training import selectors

register = template.Library()


@register.inclusion_tag("training/_project_generation.html", takes_context=True)
def project_generation_panel(context, project):
    return {
        "project": project,
        "jobs": selectors.generation_jobs_for_project(project.pk)[:5],
        "active_version": selectors.active_version(),
        "is_t2g_admin": context.get("is_t2g_admin", False),
        "csrf_token": context.get("csrf_token"),
        "request": context.get("request"),
    }
