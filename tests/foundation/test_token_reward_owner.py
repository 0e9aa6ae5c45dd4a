"""TokenReward moved from annotations to training (issue 23) by a state-only migration pair: a database
that had rows keeps them, under the same table, and its content type (so its permissions) follows."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from annotations.models import Annotation
from training.models import TokenReward

BEFORE = [("annotations", "0013_prompt_held_out"), ("training", "0011_critic_job_selection")]
AFTER = [("annotations", "0014_tokenreward_to_training"), ("training", "0012_tokenreward_from_annotations")]


@pytest.mark.heavy  # migrates the test database back and forth
@pytest.mark.django_db(transaction=True)
def test_migrating_a_database_with_token_rewards_keeps_them(annotator, project, make_generation):
    generation = make_generation(project, "The cat sat on the mat.")
    annotation = Annotation.objects.create(generation=generation, annotator=annotator, status="submitted")
    written = TokenReward.objects.create(
        annotation=annotation, tokenizer_fingerprint="f" * 64, prompt_token_ids=[7], token_ids=[1, 2],
        offsets=[[0, 3], [3, 7]], rewards=[0.0, -1.0], token_strings=["The", "Ġcat"], scheme={"good": 1.0},
    )  # fmt: skip
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(BEFORE)
        old_apps = executor.loader.project_state(BEFORE).apps
        old_model = old_apps.get_model("annotations", "TokenReward")
        assert list(old_model.objects.values_list("pk", "rewards")) == [(written.pk, [0.0, -1.0])]
        # Unapplied, the move gives the content type (and the permissions on it) back to annotations.
        old_type = ContentType.objects.get(model="tokenreward")
        assert old_type.app_label == "annotations"

        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        with pytest.raises(LookupError):
            executor.loader.project_state(AFTER).apps.get_model("annotations", "TokenReward")
    finally:
        MigrationExecutor(connection).migrate(leaves)
        ContentType.objects.clear_cache()

    row = TokenReward.objects.get()
    assert (row.pk, row.annotation_id, row.tokenizer_fingerprint) == (written.pk, annotation.pk, "f" * 64)
    assert (row.prompt_token_ids, row.token_ids, row.offsets, row.rewards, row.token_strings, row.scheme) == (
        [7], [1, 2], [[0, 3], [3, 7]], [0.0, -1.0], ["The", "Ġcat"], {"good": 1.0},
    )  # fmt: skip
    assert list(annotation.token_rewards.values_list("pk", flat=True)) == [written.pk]
    moved = ContentType.objects.get(pk=old_type.pk)
    assert (moved.app_label, moved.model) == ("training", "tokenreward")
    assert not ContentType.objects.filter(app_label="annotations", model="tokenreward").exists()
