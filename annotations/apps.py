from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AnnotationsConfig(AppConfig):
    name = "annotations"
    verbose_name = "Annotations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .roles import roles_sync
        from .services.agreement import refresh_on_submit
        from .signals import annotation_submitted

        # After a migrate (no sender: it acts on the last app's signal, when the training app's permissions exist).
        post_migrate.connect(roles_sync, dispatch_uid="t2g_roles_sync")
        # Agreement follows every submission (and gold save) of an output, in the same process.
        annotation_submitted.connect(refresh_on_submit, dispatch_uid="t2g_agreement_on_submit")

        from django.db.models.signals import post_save

        from .models import Project
        from .receivers import project_saved

        post_save.connect(project_saved, sender=Project, dispatch_uid="t2g_audit_project")

        from django.contrib.auth.signals import user_login_failed

        from .login_guard import record_failure

        user_login_failed.connect(record_failure, dispatch_uid="t2g_login_address_failures")
        _register_jobs()


def _register_jobs() -> None:
    from jobs.registry import JobKind, register, register_sweep

    from .exports.jobs import export_partials_delete
    from .imports.jobs import import_uploads_sweep
    from .models import DatasetExport, MachineCriticJob, PromptImport

    register(
        JobKind(
            DatasetExport,
            "export",
            "annotations.export_run",
            on_lost="resume",
            resume_note="the file is written again from the start (the partial one was deleted).",
            max_requeues=2,
            cleanup=export_partials_delete,
            typical_s=0.01,  # per row
        )
    )
    register(
        JobKind(
            PromptImport,
            "prompt import",
            "annotations.import_run",
            on_lost="resume",
            resume_note="it continues after the rows it committed.",
            max_requeues=2,
            typical_s=0.005,  # per row
        )
    )
    register(
        JobKind(
            MachineCriticJob,
            "machine critic run",
            "annotations.machine_critic_run",
            on_lost="resume",
            resume_note="it continues after the outputs it critiqued.",
            max_requeues=2,
            typical_s=2.0,  # per output (a sandboxed test run)
        )
    )
    register_sweep("import uploads", import_uploads_sweep)
