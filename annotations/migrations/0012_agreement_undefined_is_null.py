"""An output whose alpha is undefined (two or more annotators, no variation) no longer scores 1: its
score is NULL, like its alpha; rows written before are corrected here."""

from django.db import migrations, models


def undefined_to_null(apps, schema_editor):
    OutputAgreement = apps.get_model("annotations", "OutputAgreement")
    OutputAgreement.objects.filter(alpha__isnull=True).exclude(score__isnull=True).update(score=None)


class Migration(migrations.Migration):
    dependencies = [
        ("annotations", "0011_span_origin_critic"),
    ]

    operations = [
        migrations.AlterField(
            model_name="outputagreement",
            name="score",
            field=models.FloatField(
                blank=True,
                help_text="What queues sort by: alpha with two or more annotators; null where it cannot be "
                "measured (one annotation) or is undefined (no variation: every annotator gave every unit "
                "the same value).",
                null=True,
            ),
        ),
        # Reversing leaves the NULLs: an undefined alpha is not a score of 1.
        migrations.RunPython(undefined_to_null, migrations.RunPython.noop),
    ]
