"""`import_prompts`: good files import, bad lines are reported by number, nothing half-imported."""

import json

import pytest
from django.core.management import CommandError, call_command

from annotations.models import Generation, Prompt

pytestmark = pytest.mark.django_db


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_import_with_outputs_and_duplicates(tmp_path, project, capsys):
    lines = [
        {"prompt": "Summarize: cats sleep a lot.", "id": "p1"},
        {"prompt": "Summarize: dogs bark.", "output": "Dogs bark.", "source_model": "gpt-x"},
        {"prompt": "Summarize: cats sleep a lot."},  # duplicate of line 1
    ]
    path = _write(tmp_path, "p.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    call_command("import_prompts", str(path), "--project", project.name)
    assert Prompt.objects.filter(project=project).count() == 2
    assert Prompt.objects.get(external_id="p1").text == "Summarize: cats sleep a lot."
    assert Generation.objects.get(prompt__project=project).source_model == "gpt-x"
    out = capsys.readouterr().out
    assert "Imported 2 prompt(s) and 1 output(s)" in out
    assert "skipped 1 duplicate(s)" in out


def test_malformed_lines_are_reported_and_nothing_is_imported(tmp_path, project, capsys):
    text = "\n".join(
        [
            json.dumps({"prompt": "fine one"}),
            "{not json",
            json.dumps(["a", "list"]),
            json.dumps({"prompt": ""}),
            json.dumps({"prompt": "has output", "output": "x"}),
        ]
    )
    path = _write(tmp_path, "bad.jsonl", text)
    with pytest.raises(CommandError, match="4 bad line"):
        call_command("import_prompts", str(path), "--project", project.name)
    err = capsys.readouterr().err
    assert "bad.jsonl:2: not valid JSON" in err
    assert "bad.jsonl:3: each line must be a JSON object" in err
    assert "bad.jsonl:4: missing 'prompt'" in err
    assert "bad.jsonl:5: an 'output' needs its 'source_model'" in err
    assert Prompt.objects.filter(project=project).count() == 0


def test_allow_partial_imports_the_good_lines(tmp_path, project):
    path = _write(tmp_path, "bad.jsonl", json.dumps({"prompt": "good"}) + "\n{oops\n")
    call_command("import_prompts", str(path), "--project", project.name, "--allow-partial")
    assert list(Prompt.objects.filter(project=project).values_list("text", flat=True)) == ["good"]


def test_csv_import_reports_line_numbers(tmp_path, project, capsys):
    text = 'prompt,id,metadata\n"Line one, with comma",a,\n"multi\nline prompt",b,"{""k"": 1}"\nbad,c,{nope\n'
    path = _write(tmp_path, "p.csv", text)
    with pytest.raises(CommandError):
        call_command("import_prompts", str(path), "--project", project.name)
    assert "p.csv:5: metadata is not valid JSON" in capsys.readouterr().err
    call_command("import_prompts", str(path), "--project", project.name, "--allow-partial")
    texts = sorted(Prompt.objects.filter(project=project).values_list("text", flat=True))
    assert texts == ["Line one, with comma", "multi\nline prompt"]
    assert Prompt.objects.get(external_id="b").metadata == {"k": 1}


def test_unknown_project_and_format_are_clear_errors(tmp_path, project):
    path = _write(tmp_path, "p.txt", "hello")
    with pytest.raises(CommandError, match="unknown format"):
        call_command("import_prompts", str(path), "--project", project.name)
    with pytest.raises(CommandError, match="No project named"):
        call_command("import_prompts", str(path), "--project", "nope")


def test_not_utf8_is_refused(tmp_path, project):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"prompt": "caf\xe9"}\n')
    with pytest.raises(CommandError, match="not UTF-8"):
        call_command("import_prompts", str(path), "--project", project.name)


def test_size_limit(tmp_path, project, settings):
    settings.T2G_IMPORT_MAX_BYTES = 100
    path = _write(tmp_path, "p.jsonl", json.dumps({"prompt": "x" * 200}))
    with pytest.raises(CommandError, match="the limit is 100 bytes"):
        call_command("import_prompts", str(path), "--project", project.name)


@pytest.mark.heavy
def test_seed_demo_is_idempotent(capsys, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", "--no-generate", "--code-limit", "5")
    first = capsys.readouterr().out
    assert "annotator1" in first and "researcher" in first and "reviewer" in first
    call_command("seed_demo", "--no-generate", "--code-limit", "5")
    assert "exist already" in capsys.readouterr().out
    assert Prompt.objects.filter(project__name="HumanEval code").count() == 5
    assert Prompt.objects.filter(project__name="News summaries").count() == 16
    assert Prompt.objects.get(external_id="HumanEval/0").metadata["entry_point"] == "has_close_elements"
