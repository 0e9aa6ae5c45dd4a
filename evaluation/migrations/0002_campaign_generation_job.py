"""Campaign generation becomes a job of the one framework (issue 29): each campaign's worker state moves
to a ``CampaignGeneration`` row (fenced claim, heartbeat, cancel, the one reaper), then leaves the campaign.
A job that was queued or running is left queued: the reaper dispatches queued jobs whose message is gone."""

import django.db.models.deletion
from django.db import migrations, models


def copy_worker_state(apps, schema_editor):
    Campaign = apps.get_model("evaluation", "EvaluationCampaign")
    Generation = apps.get_model("evaluation", "CampaignGeneration")
    for campaign in Campaign.objects.all().iterator():
        status = {"running": "queued"}.get(campaign.worker_status, campaign.worker_status)
        job = Generation.objects.create(
            campaign=campaign,
            status=status,
            progress_step=campaign.progress_step,
            progress_total=campaign.progress_total,
            error=campaign.error,
            heartbeat_at=campaign.heartbeat_at,
        )
        # auto_now_add stamped it now; its age is the campaign's (the reaper's redispatch looks at it).
        Generation.objects.filter(pk=job.pk).update(created_at=campaign.created_at)


def copy_worker_state_back(apps, schema_editor):
    Campaign = apps.get_model("evaluation", "EvaluationCampaign")
    Generation = apps.get_model("evaluation", "CampaignGeneration")
    for job in Generation.objects.order_by("campaign_id", "-id").distinct("campaign_id"):
        status = {"cancelled": "failed"}.get(job.status, job.status)
        Campaign.objects.filter(pk=job.campaign_id).update(
            worker_status=status, progress_step=job.progress_step, progress_total=job.progress_total,
            error=job.error, heartbeat_at=job.heartbeat_at,
        )  # fmt: skip


class Migration(migrations.Migration):
    dependencies = [
        ("evaluation", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="CampaignGeneration",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "Queued"),
                            ("running", "Running"),
                            ("succeeded", "Succeeded"),
                            ("failed", "Failed"),
                            ("cancelled", "Cancelled"),
                        ],
                        db_index=True,
                        default="queued",
                        max_length=10,
                    ),
                ),
                ("progress_step", models.PositiveIntegerField(default=0)),
                ("progress_total", models.PositiveIntegerField(default=0)),
                ("error", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("heartbeat_at", models.DateTimeField(blank=True, null=True)),
                ("attempts", models.PositiveSmallIntegerField(default=0)),
                ("requeues", models.PositiveSmallIntegerField(default=0)),
                (
                    "owner",
                    models.CharField(
                        blank=True, help_text="host:pid of the worker running it.", max_length=200
                    ),
                ),
                ("cancel_requested", models.BooleanField(default=False)),
                (
                    "campaign",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="generations",
                        to="evaluation.evaluationcampaign",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.RunPython(copy_worker_state, copy_worker_state_back),
        migrations.RemoveField(
            model_name="evaluationcampaign",
            name="error",
        ),
        migrations.RemoveField(
            model_name="evaluationcampaign",
            name="heartbeat_at",
        ),
        migrations.RemoveField(
            model_name="evaluationcampaign",
            name="progress_step",
        ),
        migrations.RemoveField(
            model_name="evaluationcampaign",
            name="progress_total",
        ),
        migrations.RemoveField(
            model_name="evaluationcampaign",
            name="worker_status",
        ),
    ]
