from . import roles


def role_flags(request) -> dict:
    user = request.user
    return {
        "is_t2g_admin": roles.is_admin(user),
        "is_t2g_researcher": roles.is_researcher(user),
        "is_t2g_annotator": roles.is_annotator(user),
        "is_t2g_reviewer": roles.is_reviewer(user),
    }
