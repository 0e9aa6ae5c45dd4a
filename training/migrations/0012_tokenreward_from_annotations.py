"""TokenReward moves from annotations to training, which computes and shows it (issue 23).

State only: the table keeps its name (``annotations_tokenreward``), so no row moves. The content type is
relabelled, so permissions granted on it and admin log entries follow the model.
"""

from django.db import migrations, models


def _relabel(apps, schema_editor, old: str, new: str) -> None:
    content_type = apps.get_model("contenttypes", "ContentType")
    rows = content_type.objects.using(schema_editor.connection.alias)
    if not rows.filter(app_label=new, model="tokenreward").exists():
        rows.filter(app_label=old, model="tokenreward").update(app_label=new)


def forwards(apps, schema_editor):
    _relabel(apps, schema_editor, "annotations", "training")


def backwards(apps, schema_editor):
    _relabel(apps, schema_editor, "training", "annotations")


class Migration(migrations.Migration):

    dependencies = [
        ("annotations", "0014_tokenreward_to_training"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("training", "0011_critic_job_selection"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="TokenReward",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("tokenizer_fingerprint", models.CharField(max_length=64)),
                        (
                            "prompt_token_ids",
                            models.JSONField(default=list, help_text="The chat-templated prompt (no rewards)."),
                        ),
                        ("token_ids", models.JSONField(help_text="Response token ids, one per reward.")),
                        (
                            "offsets",
                            models.JSONField(
                                default=list, help_text="Code-point [start, end) of each token in the text."
                            ),
                        ),
                        ("rewards", models.JSONField()),
                        (
                            "token_strings",
                            models.JSONField(
                                blank=True,
                                default=list,
                                help_text="Each token as its tokenizer spells it (the heatmap's hover text).",
                            ),
                        ),
                        ("scheme", models.JSONField(default=dict)),
                        ("computed_at", models.DateTimeField(auto_now=True)),
                        (
                            "annotation",
                            models.ForeignKey(
                                on_delete=models.deletion.CASCADE,
                                related_name="token_rewards",
                                to="annotations.annotation",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "annotations_tokenreward",
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("annotation", "tokenizer_fingerprint"),
                                name="token_reward_once_per_tokenizer",
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forwards, backwards),
    ]
