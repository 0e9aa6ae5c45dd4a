"""The launch form reads cleanly: date pickers, consistent labels, every field labelled."""

import re

import pytest
from django.urls import reverse

from training.forms import RoundLaunchForm

pytestmark = pytest.mark.django_db


def test_launch_form_uses_date_pickers_and_labels_every_field(login, admin_user):
    page = login(admin_user).get(reverse("training_home")).content.decode()
    assert page.count('type="datetime-local"') == 2
    assert "Adaptive KL controller" in page and "Adaptive kl" not in page
    assert "Any version" in page
    for field_id in re.findall(r'<(?:input|select)[^>]* id="(id_[a-z_]+)"', page):
        assert f'for="{field_id}"' in page, field_id


def test_date_picker_values_parse():
    form = RoundLaunchForm({"mode": "token", "since": "2026-11-30T08:15", "until": "2026-12-01"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["since"].hour == 8 and form.cleaned_data["since"].minute == 15
    assert form.selection()["until"].startswith("2026-12-01T00:00")
