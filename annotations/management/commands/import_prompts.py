"""Import prompts (and optionally existing outputs) from a JSONL or CSV file into a project."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from annotations.imports.parsing import ImportFileError, detect_format, parse_prompts
from annotations.models import Project
from annotations.services import project_create, prompts_import


class Command(BaseCommand):
    help = "Import prompts from FILE (.jsonl or .csv) into a project; bad lines are reported by number."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--project", required=True, help="Project name (created if --create is given)")
        parser.add_argument("--create", action="store_true", help="Create the project if it does not exist")
        parser.add_argument("--kind", default=Project.Kind.GENERAL, choices=Project.Kind.values)
        parser.add_argument("--format", choices=["jsonl", "csv"], help="Default: from the file name")
        parser.add_argument(
            "--allow-partial", action="store_true", help="Import the good lines even if some lines are bad"
        )

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        project = Project.objects.filter(name=options["project"]).first()
        if project is None:
            if not options["create"]:
                raise CommandError(f"No project named {options['project']!r} (add --create to make it)")
            project = project_create(name=options["project"], kind=options["kind"])
        try:
            fmt = options["format"] or detect_format(path.name)
            parsed = parse_prompts(path.read_bytes(), fmt, max_bytes=settings.T2G_IMPORT_MAX_BYTES)
        except ImportFileError as exc:
            raise CommandError(str(exc)) from exc
        report = prompts_import(project=project, parsed=parsed, allow_partial=options["allow_partial"])
        for line, message in report.errors:
            self.stderr.write(f"{path}:{line}: {message}")
        if report.errors and not report.committed:
            raise CommandError(
                f"{len(report.errors)} bad line(s); nothing was imported. Fix them or pass --allow-partial."
            )
        self.stdout.write(
            f"Imported {report.created_prompts} prompt(s) and {report.created_outputs} output(s) into "
            f"{project.name!r}; skipped {len(report.duplicates)} duplicate(s)"
            + (f" and {len(report.errors)} bad line(s)" if report.errors else "")
            + "."
        )
