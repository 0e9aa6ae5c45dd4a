"""Projects and prompt imports."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db import transaction

from ..models import Generation, Project, Prompt, content_hash

if TYPE_CHECKING:  # a type only: the parser's package imports these services
    from ..imports.parsing import ParseResult

logger = logging.getLogger(__name__)


@dataclass
class ImportReport:
    created_prompts: int = 0
    created_outputs: int = 0
    duplicates: list[int] = field(default_factory=list)  # line numbers skipped as duplicates
    errors: list[tuple[int, str]] = field(default_factory=list)
    committed: bool = False

    def as_dict(self) -> dict:
        return {
            "created_prompts": self.created_prompts,
            "created_outputs": self.created_outputs,
            "duplicate_lines": self.duplicates,
            "errors": [{"line": line, "message": message} for line, message in self.errors],
            "committed": self.committed,
        }


def project_create(*, name: str, kind: str = Project.Kind.GENERAL, created_by=None, **fields) -> Project:
    project = Project(name=name, kind=kind, created_by=created_by, **fields)
    project.full_clean()
    project.save()
    return project


class PromptWriter:
    """Writes parsed rows into one project, skipping duplicates by content hash: the same prompt text
    already in the project or earlier in the file, the same output of a prompt. An output is attached to
    the existing prompt when its prompt is a duplicate. The synchronous import writes every row in one
    transaction; a background import (``imports.prompt_import_run``) writes chunk by chunk."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.reload()

    def reload(self) -> None:
        """Read what the project holds (again: after another import won a race for a prompt)."""
        self.existing = dict(Prompt.objects.filter(project=self.project).values_list("content_hash", "pk"))
        self.existing_outputs = set(
            Generation.objects.filter(prompt__project=self.project).values_list("content_hash", flat=True)
        )

    def write(self, rows, report: ImportReport) -> None:
        """Write ``rows`` (call inside a transaction), counting into ``report``."""
        for row in rows:
            key = content_hash(row.text)
            prompt_id = self.existing.get(key)
            new_prompt = prompt_id is None
            if new_prompt:
                prompt = Prompt(
                    project=self.project,
                    text=row.text,
                    external_id=row.external_id,
                    reference=row.reference,
                    metadata=row.metadata,
                )
                prompt.save()
                self.existing[key] = prompt_id = prompt.pk
                report.created_prompts += 1
            if row.output:
                output_key = content_hash(row.text, row.output)
                if output_key in self.existing_outputs:
                    report.duplicates.append(row.line)
                    continue
                generation = Generation(prompt_id=prompt_id, text=row.output, source_model=row.source_model)
                generation.prompt = Prompt.objects.get(pk=prompt_id) if not new_prompt else prompt
                generation.save()
                self.existing_outputs.add(output_key)
                report.created_outputs += 1
            elif not new_prompt:
                report.duplicates.append(row.line)


def prompts_import(*, project: Project, parsed: ParseResult, allow_partial: bool = False) -> ImportReport:
    """Write parsed rows in one transaction. With errors and no ``allow_partial``, nothing is written.

    Duplicates (the same prompt text already in the project or earlier in the file) are skipped, not
    errors; an output is attached to the existing prompt when its prompt is a duplicate.
    """
    report = ImportReport(errors=list(parsed.errors))
    if report.errors and not allow_partial:
        return report
    with transaction.atomic():
        PromptWriter(project).write(parsed.rows, report)
        report.committed = True
    return report


# =====================================================================================================
# The annotation workspace: offsets, span validation, the queue, drafts, spans and submission.
# =====================================================================================================
