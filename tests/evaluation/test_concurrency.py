"""Many judges asking for a pair at the same moment: the quota per pair holds under real row locks."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from annotations import roles
from evaluation import services
from evaluation.models import PairwiseJudgement, PairwiseTask

pytestmark = pytest.mark.django_db(transaction=True)


def test_simultaneous_leases_never_exceed_the_quota(versions, make_campaign, django_user_model):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL (set DATABASE_URL)")
    campaign = make_campaign(versions, prompt_count=2, per_pair=2)  # 2 prompts × 3 pairs × 2 = 12 slots
    judges = []
    for index in range(20):
        judge = django_user_model.objects.create_user(username=f"judge{index}")
        roles.assign_role(judge, roles.ANNOTATOR)
        judges.append(judge)
    barrier = threading.Barrier(len(judges))
    results: list = [None] * len(judges)

    def run(index):
        try:
            barrier.wait(timeout=30)
            results[index] = services.judgement_next(campaign=campaign, judge=judges[index])
        except Exception as exc:  # reported through results
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(judges))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(isinstance(result, Exception) for result in results), results
    leased = [result for result in results if result is not None]
    assert len(leased) == 12  # every slot taken, none twice; the other 8 judges get nothing
    per_task = Counter(PairwiseJudgement.objects.values_list("task_id", flat=True))
    assert set(per_task.values()) == {2} and len(per_task) == PairwiseTask.objects.count() == 6
