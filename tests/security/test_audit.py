"""The audit log: what is recorded (logins, failures, roles, imports, exports, downloads, rounds,
promotions, project settings), that it cannot be changed, and the admins' page with filters and CSV."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, connection, transaction

from audit.models import AppendOnly, AuditEvent

pytestmark = pytest.mark.django_db
API = "/api/v1"


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def test_logins_failures_and_role_changes_are_recorded(client, django_user_model):
    from annotations import roles

    user = django_user_model.objects.create_user(username="newbie", password="a long password 1")
    assert AuditEvent.objects.get(action="account.create").details["username"] == "newbie"
    roles.assign_role(user, roles.RESEARCHER)
    change = AuditEvent.objects.get(action="role.change")
    assert change.object_id == str(user.pk) and change.details == {"change": "add", "groups": ["researcher"]}
    user.is_staff = True
    user.save()
    staff = AuditEvent.objects.filter(action="role.change").latest("id")
    assert staff.details == {"flags": {"is_staff": [False, True]}}
    user.is_staff = False
    user.save(update_fields=["is_staff"])
    user.last_login = None
    user.save()  # no flag changed: nothing recorded
    assert AuditEvent.objects.filter(action="role.change").count() == 3
    client.post("/accounts/login/", {"username": "newbie", "password": "wrong"})
    failed = AuditEvent.objects.get(action="login.failed")
    assert failed.details == {"username": "newbie"} and failed.ip == "127.0.0.1" and failed.actor_id is None
    client.post("/accounts/login/", {"username": "newbie", "password": "a long password 1"})
    login = AuditEvent.objects.get(action="login")
    assert login.actor_id == user.pk and login.actor_username == "newbie" and login.ip == "127.0.0.1"


def test_imports_exports_downloads_and_settings_are_recorded(api, feedback, admin_user, researcher):
    from annotations.exports import jobs as export_jobs

    admin = api(admin_user)
    upload = SimpleUploadedFile("p.jsonl", b'{"prompt": "A brand new prompt"}\n')
    assert (
        admin.post(
            f"{API}/projects/{feedback.project.pk}/import/", {"file": upload}, format="multipart"
        ).status_code
        == 201
    )
    event = AuditEvent.objects.get(action="prompts.import")
    assert event.actor_username == "boss" and event.details["created_prompts"] == 1
    assert event.object_type == "annotations.project" and event.object_id == str(feedback.project.pk)

    scheme = {"good": 2.0, "poor": -1.0}
    assert (
        admin.patch(
            f"{API}/projects/{feedback.project.pk}/", {"reward_scheme": scheme}, format="json"
        ).status_code
        == 200
    )
    update = AuditEvent.objects.filter(action="project.update").latest("id")
    assert update.actor_username == "boss" and update.details["reward_scheme"] == scheme

    created = (
        api(researcher).post(f"{API}/exports/", {"kind": "spans", "format": "csv"}, format="json").json()
    )
    export_jobs.export_run(export_id=created["id"])
    assert api(researcher).get(f"{API}/exports/{created['id']}/download/").status_code == 200
    export_events = AuditEvent.objects.filter(object_type="annotations.datasetexport").order_by("id")
    assert [(e.action, e.actor_username) for e in export_events] == [
        ("export.create", "res1"),
        ("export.download", "res1"),
    ]
    assert export_events[1].details["content_hash"]


def test_rounds_and_promotions_are_recorded(client, feedback, admin_user):
    from training import services
    from training.models import TrainingRound

    client.force_login(admin_user)
    training_round = services.round_launch(
        selection={"project_id": feedback.project.pk}, created_by=admin_user
    )
    response = client.post(f"/training/rounds/{training_round.pk}/cancel/")
    assert response.status_code in (200, 302)
    assert TrainingRound.objects.get(pk=training_round.pk).status == "cancelled"
    # Without evaluation evidence promotion asks first; the admin confirms.
    client.post(f"/training/versions/{feedback.v1.pk}/activate/", {"confirm": "yes"})
    events = {e.action: e for e in AuditEvent.objects.all()}
    assert events["round.launch"].actor_username == "boss"
    assert events["round.launch"].details["snapshot_size"] == training_round.snapshot_size
    assert events["round.cancel"].actor_username == "boss"  # from the request, not passed in
    assert events["version.activate"].details == {"name": "v1", "previous": "v0-base"}


def test_events_cannot_be_changed_or_deleted(feedback, admin_user):
    from audit.services import audit_record

    event = audit_record(action="test.event", actor=admin_user, details={"n": 1})
    event.action = "rewritten"
    with pytest.raises(AppendOnly):
        event.save()
    with pytest.raises(AppendOnly):
        event.delete()
    with pytest.raises(AppendOnly):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(AppendOnly):
        AuditEvent.objects.filter(pk=event.pk).delete()
    for sql in ("UPDATE audit_auditevent SET action = 'x'", "DELETE FROM audit_auditevent"):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    assert AuditEvent.objects.get(pk=event.pk).action == "test.event"


def test_the_admin_site_is_read_only(client, admin_user):
    from audit.services import audit_record

    event = audit_record(action="test.event", actor=admin_user)
    client.force_login(admin_user)
    assert client.get("/admin/audit/auditevent/").status_code == 200
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    assert client.post(f"/admin/audit/auditevent/{event.pk}/change/", {"action": "x"}).status_code == 403
    assert client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).action == "test.event"


def test_the_audit_page_filters_and_downloads_csv(client, admin_user, researcher):
    from audit.services import audit_record

    audit_record(
        action="export.create", actor=researcher, object_type="annotations.datasetexport", object_id=7
    )
    audit_record(action="round.launch", actor=admin_user, details={"note": "=HYPERLINK(1)"})
    client.force_login(researcher)
    assert client.get("/audit/").status_code == 403
    client.force_login(admin_user)
    page = client.get("/audit/", {"action": "export"}).content.decode()
    assert "export.create" in page and "round.launch" not in page
    page = client.get("/audit/", {"actor": "boss"}).content.decode()
    assert "round.launch" in page and "export.create" not in page
    assert client.get("/audit/", {"since": "not a date"}).status_code == 400
    response = client.get("/audit/", {"download": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {row["action"] for row in rows} >= {"export.create", "round.launch"}
    launch = next(row for row in rows if row["action"] == "round.launch")
    assert launch["actor_username"] == "boss" and not launch["details"].startswith("=")
