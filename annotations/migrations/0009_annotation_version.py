from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotations", "0008_export_is_a_job"),
    ]

    operations = [
        migrations.AddField(
            model_name="annotation",
            name="version",
            field=models.PositiveIntegerField(default=0),
        ),
    ]
