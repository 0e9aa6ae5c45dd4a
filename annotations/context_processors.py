from jobs import health

from . import roles


def role_flags(request) -> dict:
    user = request.user
    return {
        "is_t2g_admin": roles.is_admin(user),
        "is_t2g_researcher": roles.is_researcher(user),
        "is_t2g_annotator": roles.is_annotator(user),
        # Admins are told in the page header when a worker lane has no live worker.
        "lanes_down": health.lanes_down_cached() if roles.is_admin(user) else [],
    }
