from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _cache_table(**_kwargs) -> None:
    """The database cache's table (CACHE_URL=db, the default), made by every migrate; a no-op otherwise."""
    from django.core.management import call_command

    call_command("createcachetable", verbosity=0)


class JobsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "jobs"
    verbose_name = "Background jobs"

    def ready(self) -> None:
        post_migrate.connect(_cache_table, sender=self, dispatch_uid="jobs-cache-table")
