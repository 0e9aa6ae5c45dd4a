"""Many annotators pressing "Next" at the same moment, against real PostgreSQL row locks."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection, connections
from django.test import Client
from django.urls import reverse

from annotations import roles, services
from annotations.models import Annotation, Assignment

pytestmark = pytest.mark.django_db(transaction=True)


def _run_together(workers, count):
    """Start ``count`` threads at once (a barrier) and collect each one's result or exception."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(index):
        try:
            barrier.wait(timeout=30)
            results[index] = workers(index)
        except Exception as exc:  # reported by the test through results
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    return results


@pytest.fixture
def crowd(django_user_model):
    def _make(n):
        users = []
        for i in range(n):
            user = django_user_model.objects.create_user(username=f"crowd{i}", password="x")
            roles.assign_role(user, roles.ANNOTATOR)
            users.append(user)
        return users

    return _make


def test_simultaneous_next_requests_never_over_assign(project, make_generation, crowd):
    assert connection.vendor == "postgresql"
    generations = [make_generation(project, f"output {i}") for i in range(5)]  # quota 2 → 10 slots
    people = crowd(24)
    clients = []
    for person in people:
        client = Client()
        client.force_login(person)
        clients.append(client)

    def press_next(index):
        return clients[index].post(reverse("assignment_next", args=[project.pk])).status_code

    statuses = _run_together(press_next, len(people))
    assert statuses == [302] * len(people), statuses
    leases = Counter(Assignment.objects.filter(status="active").values_list("generation_id", flat=True))
    assert leases == {g.pk: 2 for g in generations}  # every slot filled, none twice
    assert Assignment.objects.count() == 10
    per_person = Counter(Assignment.objects.values_list("annotator_id", flat=True))
    assert max(per_person.values()) == 1
    assert Annotation.objects.count() == 10


def test_one_annotator_clicking_many_times_at_once_gets_one_lease(project, make_generation, annotator):
    for i in range(6):
        make_generation(project, f"output {i}")

    def press_next(_index):
        return services.assignment_next(project=project, annotator=annotator).pk

    results = _run_together(press_next, 8)
    assert len(set(results)) == 1, results
    assert Assignment.objects.filter(annotator=annotator).count() == 1


def test_simultaneous_submits_keep_the_count_exact(project, make_generation, crowd):
    generation = make_generation(project, "shared output")
    people = crowd(2)
    drafts = []
    for person in people:
        services.assignment_next(project=project, annotator=person)
        drafts.append(Annotation.objects.get(generation=generation, annotator=person))

    def submit(index):
        services.annotation_submit(annotation=drafts[index], overall_critique="done", user=people[index])
        return "ok"

    assert _run_together(submit, 2) == ["ok", "ok"]
    generation.refresh_from_db()
    assert generation.annotation_count == 2
    assert services.assignment_next(project=project, annotator=people[0]) is None
