"""Machine critics as drafts for people (issue 27, item 3): admins configure a project's critics, a run
writes origin=machine annotations with the critic's identity (in this process, and through a real worker
on the critics lane), the drafts enter the review queue and are accepted or rejected like anyone's, the
agreement page compares them with people, rounds select by origin, and exports carry it."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError

from annotations import selectors
from annotations import services as annotation_services
from annotations.models import Annotation, MachineCriticConfig, MachineCriticJob, Span
from annotations.services import machine as machine_services
from text2grad.machine_critics import CriticRecord, CriticResult, Evidence, SpanCritique
from training import services as training_services

ABS_TESTS = "def check(candidate):\n    assert candidate(3) == 3\n    assert candidate(-4) == 4\n    assert candidate(0) == 0\n"
BUGGY = "def absolute(x):\n    if x > 100:\n        return -x\n    return x\n"
CORRECT = "def absolute(x):\n    if x < 0:\n        return -x\n    return x\n"
TEXT = "It was invented in 1999 by aliens. The cat sat on the mat."


@pytest.fixture
def code_item(code_project, make_generation):
    """A code output that fails the negative-input test, with the item's tests on its prompt."""
    generation = make_generation(code_project, BUGGY, prompt_text="Write absolute(x).")
    prompt = generation.prompt
    prompt.metadata = {"test": ABS_TESTS, "entry_point": "absolute", "stub": ""}
    prompt.save()
    return generation


def _draft(generation, phrase: str, label: str = "poor", critic: str = "reference") -> Annotation:
    """A machine draft written by the worker's own writer (``annotation_write``) from a critic result."""
    from annotations.machine import annotation_write

    start = generation.text.index(phrase)
    result = CriticResult(
        critic=CriticRecord(critic, "1", "{}"),
        critique="The reference disagrees.",
        rating=2,
        spans=(
            SpanCritique(start, start + len(phrase), label, "major", "Not in the reference.",
                         Evidence("reference-fact", "The reference says 2001.")),
        ),
    )  # fmt: skip
    config, _ = MachineCriticConfig.objects.get_or_create(project=generation.prompt.project, name=critic)
    job = MachineCriticJob.objects.create(project=config.project, config=config, critic={"name": critic})
    annotation = annotation_write(
        generation=generation, result=result, user=machine_services.machine_annotator(critic), job=job
    )
    annotation.refresh_from_db()
    return annotation


# --- configuration ---------------------------------------------------------------------------------
def test_only_admins_configure_critics_and_bad_configuration_is_a_clear_400(
    client, login, admin_user, annotator, code_project
):
    login(annotator)
    url = f"/projects/{code_project.pk}/machine-critics/"
    assert client.get(url).status_code == 403
    assert client.post(url + "configure/", {"name": "unit-tests"}).status_code == 403
    login(admin_user)
    assert client.get(url).status_code == 200
    response = client.post(url + "configure/", {"name": "oracle", "critic_settings": "{}", "enabled": "on"})
    assert response.status_code == 400 and "oracle" in response.content.decode()
    response = client.post(url + "configure/", {"name": "unit-tests", "critic_settings": "[1, 2]"})
    assert response.status_code == 400 and "JSON object" in response.content.decode()
    response = client.post(url + "configure/", {"name": "unit-tests", "critic_settings": "{not json"})
    assert response.status_code == 400
    assert not MachineCriticConfig.objects.exists()
    response = client.post(
        url + "configure/", {"name": "unit-tests", "critic_settings": '{"mark_good": false}', "enabled": "on"}
    )
    assert response.status_code == 302
    config = MachineCriticConfig.objects.get()
    assert (config.name, config.critic_settings, config.enabled) == ("unit-tests", {"mark_good": False}, True)
    assert "unit-tests" in client.get(url).content.decode()
    assert 'hx-trigger="every 2s"' not in client.get(url).content.decode()  # no run: nothing to follow
    # No outputs yet: starting a run is refused with the reason.
    response = client.post(f"/machine-critics/{config.pk}/run/")
    assert response.status_code == 400 and "no outputs" in response.content.decode()


# --- the run, in this process ------------------------------------------------------------------------
@pytest.mark.heavy  # runs the output in the sandbox
def test_unit_test_critic_run_writes_a_machine_draft_with_the_critics_identity(code_item, admin_user):
    from annotations.machine import machine_critic_run

    config = machine_services.machine_critic_configure(
        project=code_item.prompt.project,
        name="unit-tests",
        critic_settings={"mark_good": False},
        user=admin_user,
    )
    job = machine_services.machine_critic_run_start(config=config, user=admin_user)
    assert (job.status, job.progress_total, job.generation_ids) == ("queued", 1, [code_item.pk])
    machine_critic_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert job.report == {"written": 1, "skipped": 0, "failed": 0, "problems": []}
    # The run records the critic as it ran: version and every setting, defaults filled in.
    assert job.critic["name"] == "unit-tests" and job.critic["version"] == "1"
    assert job.critic["settings"]["mark_good"] is False and job.critic["settings"]["per_test_seconds"] == 3.0
    draft = Annotation.objects.get(generation=code_item)
    assert (
        draft.origin == "machine"
        and draft.status == "submitted"
        and draft.annotator.username == "machine-unit-tests"
    )
    assert not draft.annotator.is_active and not draft.annotator.has_usable_password()
    assert draft.critic["name"] == "unit-tests" and draft.critic["job"] == job.pk and draft.rating == 3
    [span] = draft.spans.all()
    assert (span.text, span.label, span.polarity, span.origin) == ("return x", "poor", -1, "machine")
    assert span.start == BUGGY.index("    return x") + 4
    assert span.critique.startswith("For input absolute(-4) the test expects 4, but the function returns -4.")
    assert "Evidence (failing-test)" in span.critique
    code_item.refresh_from_db()
    assert code_item.annotation_count == 0  # a draft takes no person's slot
    # A second run skips the output the critic already annotated.
    again = machine_services.machine_critic_run_start(config=config, user=admin_user)
    machine_critic_run(job_id=again.pk)
    again.refresh_from_db()
    assert again.status == "succeeded" and again.report["skipped"] == 1 and again.report["written"] == 0
    assert Annotation.objects.filter(generation=code_item).count() == 1


def test_unknown_setting_fails_the_run_naming_the_known_keys(code_item, admin_user):
    from annotations.machine import machine_critic_run

    config = machine_services.machine_critic_configure(
        project=code_item.prompt.project, name="unit-tests", critic_settings={"timeout": 3}, user=admin_user
    )
    job = machine_services.machine_critic_run_start(config=config, user=admin_user)
    machine_critic_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed"
    assert "unknown settings ['timeout']" in job.error and "per_test_seconds" in job.error
    assert not Annotation.objects.exists()
    # A redelivered message for a finished job does nothing.
    assert machine_critic_run(job_id=job.pk) is None


def test_a_critic_without_what_it_needs_is_reported_not_written_and_cancel_stops_a_queued_run(
    code_project, make_generation, admin_user, annotator, login
):
    from annotations.machine import machine_critic_run

    make_generation(code_project, CORRECT)  # no tests on its prompt
    config = machine_services.machine_critic_configure(
        project=code_project, name="unit-tests", user=admin_user
    )
    job = machine_services.machine_critic_run_start(config=config, user=admin_user)
    machine_critic_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded" and job.report["failed"] == 1 and job.report["written"] == 0
    assert "missing metadata: test / entry_point" in job.report["problems"][0]["problem"]
    assert not Annotation.objects.exists()
    queued = machine_services.machine_critic_run_start(config=config, user=admin_user)
    page = login(admin_user).get(f"/projects/{code_project.pk}/machine-critics/").content.decode()
    assert f'data-job="{queued.pk}"' in page and 'hx-trigger="every 2s"' in page  # follows the queued run
    with pytest.raises(Exception, match="Only admins"):
        machine_services.machine_critic_run_cancel(job=queued, user=annotator)
    assert machine_services.machine_critic_run_cancel(job=queued, user=admin_user)
    queued.refresh_from_db()
    assert queued.status == "cancelled"
    assert machine_critic_run(job_id=queued.pk) is None
    config.enabled = False
    config.save()
    with pytest.raises(ValidationError, match="disabled"):
        machine_services.machine_critic_run_start(config=config, user=admin_user)


# --- through a real worker on the critics lane ------------------------------------------------------
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_machine_critic_job_through_the_worker_writes_a_draft_with_token_rewards(
    celery_worker_process, code_project, make_generation, admin_user
):
    from tests.conftest import wait_for
    from training.models import TokenReward

    generation = make_generation(code_project, BUGGY, prompt_text="Write absolute(x).")
    generation.prompt.metadata = {"test": ABS_TESTS, "entry_point": "absolute", "stub": ""}
    generation.prompt.save()
    config = machine_services.machine_critic_configure(
        project=code_project, name="unit-tests", user=admin_user
    )
    job = machine_services.machine_critic_run_start(config=config, user=admin_user)
    wait_for(
        lambda: MachineCriticJob.objects.get(pk=job.pk).is_finished, timeout=120, message="the critic job"
    )
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert job.owner == "" and job.attempts == 1 and job.percent == 100
    draft = Annotation.objects.get(generation=generation, origin="machine")
    poor = draft.spans.get(label="poor")
    assert poor.text == "return x"
    assert set(draft.spans.values_list("label", flat=True)) == {"poor", "good"}  # mark_good by default
    # Its submission asked for token rewards like anyone's: the worker computed them with the tiny
    # model's tokenizer, negative on the failing line's tokens.
    reward = wait_for(lambda: TokenReward.objects.filter(annotation=draft).first(), timeout=60,
                      message="token rewards of the machine draft")  # fmt: skip
    on_poor = [
        r for r, (s, e) in zip(reward.rewards, reward.offsets, strict=True) if s < poor.end and e > poor.start
    ]
    assert on_poor and max(on_poor) < 0


# --- review ---------------------------------------------------------------------------------------
def test_machine_drafts_enter_the_review_queue_and_are_accepted_or_rejected_with_the_same_flow(
    client, login, project, make_generation, reviewer
):
    first = make_generation(project, TEXT)
    second = make_generation(project, "Cheese is blue. Water boils at 100 C.")
    accepted = _draft(first, "invented in 1999")
    rejected = _draft(second, "Cheese is blue")
    # Nobody has annotated these outputs (quota 2), yet the drafts wait for review.
    assert list(selectors.review_queue(project)) == [first, second]
    login(reviewer)
    page = client.get(f"/review/outputs/{first.pk}/").content.decode()
    assert "machine · reference v1" in page and 'data-origin="machine"' in page
    assert "The reference says 2001." in page
    response = client.post(f"/review/annotations/{accepted.pk}/", {"verdict": "accepted", "comment": ""})
    assert response.status_code in (200, 302)
    response = client.post(
        f"/review/annotations/{rejected.pk}/", {"verdict": "rejected", "comment": "the cheese is fine"}
    )
    assert response.status_code in (200, 302)
    assert accepted.__class__.objects.get(pk=accepted.pk).review.verdict == "accepted"
    assert Annotation.objects.get(pk=rejected.pk).review.verdict == "rejected"
    assert list(selectors.review_queue(project)) == []
    # Editing is the gold flow: take the draft's spans, change them, save.
    spans = annotation_services.gold_spans_from(accepted)
    assert spans and spans[0]["label"] == "poor"
    spans[0]["critique"] = "A person's edit."
    gold = annotation_services.gold_save(generation=first, reviewer=reviewer, spans=spans)
    assert gold.origin == "people" and gold.spans.get().critique == "A person's edit."


def test_agreement_page_compares_machine_with_people_and_leaves_drafts_out_of_peoples_alpha(
    client, login, project, make_generation, annotator, annotator2, researcher, submit
):
    generation = make_generation(project, TEXT)
    submit(annotator, generation, [("invented in 1999 by aliens", "poor", "false")])
    submit(annotator2, generation, [("invented in 1999 by aliens", "poor", "false")])
    people_alpha = generation.__class__.objects.get(pk=generation.pk).agreement.alpha
    draft = _draft(generation, "The cat sat on the mat", label="good")  # disagrees with both
    annotation_services.agreement_refresh(generation_ids=[generation.pk])
    agreement = generation.__class__.objects.get(pk=generation.pk).agreement
    assert agreement.annotators == 2 and agreement.alpha == people_alpha == 1.0
    [row] = selectors.machine_agreement(project)
    assert (row.critic, row.drafts, row.outputs, row.pairs, row.waiting) == ("reference", 1, 1, 2, 1)
    assert row.span_f1 == 0.0 and row.alpha is not None and row.alpha < 0
    login(researcher)
    page = client.get(f"/projects/{project.pk}/agreement/").content.decode()
    assert 'id="ag-machine"' in page and 'data-critic="reference"' in page
    assert f'<td class="machine-alpha">{row.alpha:.3f}</td>' in page
    assert draft.annotator_id not in {p["a"] for p in agreement.pairs} | {p["b"] for p in agreement.pairs}
    body = client.get(f"/api/v1/projects/{project.pk}/agreement/").json()
    assert body["machine"] == [
        {"critic": "reference", "drafts": 1, "outputs": 1, "pairs": 2, "alpha": row.alpha, "span_f1": 0.0,
         "accepted": 0, "rejected": 0, "waiting": 1}
    ]  # fmt: skip


# --- rounds and critic training select by origin --------------------------------------------------
def test_rounds_select_by_origin_and_record_it(project, make_generation, annotator, reviewer, submit):
    generation = make_generation(project, TEXT)
    other = make_generation(project, "Cheese is blue. Water boils at 100 C.")
    person = submit(annotator, generation, [("invented in 1999 by aliens", "poor", "false")])
    accepted = _draft(generation, "invented in 1999")
    waiting = _draft(other, "Cheese is blue")
    annotation_services.review_set(annotation=accepted, reviewer=reviewer, verdict="accepted")

    def snap(**selection):
        return training_services.round_snapshot(selection={"project_id": project.pk, **selection})

    assert snap() == [person.pk]  # people only by default
    assert snap(origin="people") == [person.pk]
    assert snap(origin="machine-accepted") == sorted([person.pk, accepted.pk])
    assert snap(origin="all") == sorted([person.pk, accepted.pk, waiting.pk])
    assert snap(origin="all", review="accepted") == [accepted.pk]
    with pytest.raises(ValueError, match="origin must be one of"):
        snap(origin="robots")
    assert training_services.selection_clean({})["origin"] == "people"  # always recorded
    from training.services.critic import critic_selection

    assert critic_selection(project=project, selection={"origin": "all"})["origin"] == "all"


def test_launch_form_records_the_origin(
    client, login, admin_user, project, make_generation, annotator, submit
):
    from training.models import TrainingRound

    generation = make_generation(project, TEXT)
    person = submit(annotator, generation, [("invented in 1999 by aliens", "poor", "false")])
    draft = _draft(generation, "The cat sat")
    login(admin_user)
    assert 'name="origin"' in client.get("/training/").content.decode()
    response = client.post("/training/rounds/", {"mode": "token", "project": project.pk, "origin": "all"})
    assert response.status_code == 302, response.content.decode()[:2000]
    training_round = TrainingRound.objects.get()
    assert training_round.selection["origin"] == "all"
    assert training_round.snapshot == sorted([person.pk, draft.pk])
    page = client.get(f"/training/rounds/{training_round.pk}/").content.decode()
    assert '<span id="round-origin">all</span>' in page
    assert client.post("/training/rounds/", {"mode": "token", "origin": "robots"}).status_code == 400


# --- exports and the API carry the origin ----------------------------------------------------------
def test_exports_and_the_api_carry_origin_and_critic(
    client, login, researcher, project, make_generation, annotator, submit
):
    from annotations.exports import formats
    from annotations.exports.query import ExportQuery, ExportQueryError, annotations_for
    from annotations.exports.spans import spans_rows
    from annotations.exports.spans_sql import spans_jsonl_chunks

    generation = make_generation(project, TEXT)
    person = submit(annotator, generation, [("invented in 1999 by aliens", "poor", "false")])
    draft = _draft(generation, "The cat sat")
    query = ExportQuery(project=project.pk)
    rows = {row["annotation_id"]: row for row in spans_rows(query)}
    assert (rows[person.pk]["origin"], rows[person.pk]["critic"]) == ("people", None)
    assert (rows[draft.pk]["origin"], rows[draft.pk]["critic"]) == ("machine", "reference")
    assert rows[draft.pk]["spans"][0]["origin"] == "machine"
    # PostgreSQL's fast path writes the same bytes as the generic one.
    fast = b"".join(chunk for chunk, _ in spans_jsonl_chunks(query))
    generic = b"".join(chunk for chunk, _ in formats.jsonl_chunks(spans_rows(query)))
    assert fast == generic
    assert [json.loads(line)["origin"] for line in fast.splitlines()] == ["people", "machine"]
    assert {"origin", "critic"} <= set(formats.columns_for("token-rewards"))
    # The query can choose by origin (kto and dpo average ratings over an output's annotations).
    people_only = ExportQuery.from_dict({"project": project.pk, "origin": "people"}, kind="spans")
    assert [row["annotation_id"] for row in spans_rows(people_only)] == [person.pk]
    machine_only = ExportQuery.from_dict({"project": project.pk, "origin": "machine"}, kind="kto")
    assert list(annotations_for(machine_only).values_list("pk", flat=True)) == [draft.pk]
    with pytest.raises(ExportQueryError, match="origin"):
        ExportQuery.from_dict({"origin": "robots"}, kind="spans")
    login(researcher)
    body = client.get(f"/api/v1/annotations/{draft.pk}/").json()
    assert body["origin"] == "machine" and body["critic"]["name"] == "reference"
    assert Span.objects.filter(annotation=draft, origin="machine").count() == 1


def test_command_configures_and_runs_a_critic_and_says_why_when_it_cannot(
    code_project, make_generation, capsys
):
    from django.core.management import CommandError, call_command

    make_generation(code_project, CORRECT)  # no tests on its prompt: reported, not written
    call_command("run_machine_critic", "--project", code_project.name, "--critic", "unit-tests",
                 "--critic-settings", '{"mark_good": false}', "--now")  # fmt: skip
    assert "succeeded: 0 written, 0 skipped, 1 failed" in capsys.readouterr().out
    assert MachineCriticConfig.objects.get().critic_settings == {"mark_good": False}
    call_command("run_machine_critic", "--project", str(code_project.pk), "--critic", "unit-tests")
    assert "Queued machine critic job" in capsys.readouterr().out
    assert MachineCriticJob.objects.filter(status="queued").count() == 1
    with pytest.raises(CommandError, match="Unknown critic 'oracle'"):
        call_command("run_machine_critic", "--project", code_project.name, "--critic", "oracle")
    with pytest.raises(CommandError, match="unknown settings"):
        call_command("run_machine_critic", "--project", code_project.name, "--critic", "unit-tests",
                     "--critic-settings", '{"colour": "red"}', "--now")  # fmt: skip
