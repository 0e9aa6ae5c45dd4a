"""``{% load job_standing %}{{ job|standing }}``: where a queued or running job stands, in words."""

from django import template

from jobs.standing import standing as _standing

register = template.Library()


@register.filter
def standing(job) -> str:
    if job is None or job.is_finished:
        return ""
    try:
        return _standing(job).text
    except KeyError:  # a kind nobody registered
        return job.status
