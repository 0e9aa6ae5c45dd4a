"""TokenReward now belongs to training (``training/migrations/0012_tokenreward_from_annotations`` takes it
over, after this one).

State only: the table ``annotations_tokenreward`` and its rows stay where they are.
"""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("annotations", "0013_prompt_held_out"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="TokenReward")],
            database_operations=[],
        ),
    ]
