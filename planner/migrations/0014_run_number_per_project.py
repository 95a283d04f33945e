from django.db import migrations, models
from django.db.models import F, Window
from django.db.models.functions import RowNumber


def number_existing_runs(apps, schema_editor):
    ValidationRun = apps.get_model("planner", "ValidationRun")
    numbered = ValidationRun.objects.annotate(
        n=Window(RowNumber(), partition_by=[F("project_id")], order_by=[F("created_at"), F("pk")])
    ).values_list("pk", "n")
    for pk, n in numbered:
        ValidationRun.objects.filter(pk=pk).update(number=n)


class Migration(migrations.Migration):
    dependencies = [("planner", "0013_sli_points")]

    operations = [
        migrations.AddField(
            model_name="validationrun",
            name="number",
            field=models.PositiveIntegerField(editable=False, null=True),
        ),
        migrations.RunPython(number_existing_runs, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="validationrun",
            name="number",
            field=models.PositiveIntegerField(editable=False),
        ),
        migrations.AddConstraint(
            model_name="validationrun",
            constraint=models.UniqueConstraint(
                fields=("project", "number"), name="one_run_number_per_project"
            ),
        ),
    ]
