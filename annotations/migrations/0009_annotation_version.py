from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotations", "0007_review_and_agreement"),
    ]

    operations = [
        migrations.AddField(
            model_name="annotation",
            name="version",
            field=models.PositiveIntegerField(default=0),
        ),
    ]
