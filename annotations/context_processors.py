from django.contrib.auth.models import AnonymousUser

from jobs import health

from . import roles


def role_flags(request) -> dict:
    # No user when a request is refused before the authentication middleware (a Host not allowed: 400).
    user = getattr(request, "user", None) or AnonymousUser()
    return {
        "is_t2g_admin": roles.is_admin(user),
        "is_t2g_researcher": roles.is_researcher(user),
        "is_t2g_annotator": roles.is_annotator(user),
        "is_t2g_reviewer": roles.is_reviewer(user),
        # Admins are told in the page header when a worker lane has no live worker.
        "lanes_down": health.lanes_down_cached() if roles.is_admin(user) else [],
        # ... and when a lane's worker died and came back (work it held was caught up late).
        "lane_restarts": health.restarts_cached() if roles.is_admin(user) else [],
    }
