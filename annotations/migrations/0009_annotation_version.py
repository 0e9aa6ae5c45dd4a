from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotations", "0005_tokenreward_token_strings"),
    ]

    operations = [
        migrations.AddField(
            model_name="annotation",
            name="version",
            field=models.PositiveIntegerField(default=0),
        ),
    ]
