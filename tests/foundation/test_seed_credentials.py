"""`make run` shows the demo logins once: seed_demo writes them to a file that run.sh prints."""

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


@pytest.mark.heavy
def test_credentials_go_to_the_file_only_when_asked(capsys, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", "--no-generate", "--code-limit", "1", "--credentials-to-file-only")
    out = capsys.readouterr().out
    saved = (tmp_path / "demo-credentials.txt").read_text()
    assert "annotator1" in saved and "researcher" in saved and "shown once" not in saved
    assert "annotator1" not in out and "demo-credentials.txt" in out
    assert (tmp_path / "demo-credentials.txt").stat().st_mode & 0o777 == 0o600
