"""One sign-off decision per signer and version of a step.

A decision now carries its round: how many of the signer's decisions on the step had gone stale
before it. Existing decisions get theirs from the stale events recorded before them. Then the
repeats (the same signer deciding again on a version while their decision on it was live) are
removed so the constraint can be added: the first decision stays, as that is the one the new
rule accepts, and the history table keeps a record of every removed row. A removed repeat's
stale event goes with it.
"""

from django.conf import settings
from django.db import migrations, models


def number_rounds_and_drop_repeats(apps, schema_editor):
    SignOff = apps.get_model("planner", "SignOff")
    SignOffStale = apps.get_model("planner", "SignOffStale")
    went_stale: dict[tuple, list] = {}
    for project_id, step, user_id, signoff_id, detected in SignOffStale.objects.values_list(
        "project_id", "step", "signoff__user_id", "signoff_id", "detected_at"
    ):
        went_stale.setdefault((project_id, step, user_id), []).append((detected, signoff_id))
    seen = set()
    repeats = set()
    rows = SignOff.objects.order_by("created_at", "pk").values_list(
        "pk", "project_id", "step", "user_id", "content_hash", "created_at"
    )
    for pk, project_id, step, user_id, content_hash, created in rows.iterator():
        # Events before this decision are of decisions before it, already kept or dropped;
        # a dropped repeat's staleness opens no round.
        events = went_stale.get((project_id, step, user_id), [])
        round_ = sum(1 for when, of in events if when < created and of not in repeats)
        key = (project_id, step, user_id, content_hash, round_)
        if key in seen:
            repeats.add(pk)
            continue
        seen.add(key)
        if round_:
            SignOff.objects.filter(pk=pk).update(round=round_)
    if repeats:
        SignOffStale.objects.filter(signoff_id__in=repeats).delete()
        SignOff.objects.filter(pk__in=repeats).delete()
    if schema_editor.connection.vendor == "postgresql":
        # PostgreSQL refuses to alter a table with deferred foreign-key checks pending.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):
    dependencies = [
        ("planner", "0005_golive_reviews_alerts_api"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="historicalsignoff",
            name="round",
            field=models.PositiveIntegerField(default=0, verbose_name="sign-off round"),
        ),
        migrations.AddField(
            model_name="signoff",
            name="round",
            field=models.PositiveIntegerField(default=0, verbose_name="sign-off round"),
        ),
        migrations.RunPython(number_rounds_and_drop_repeats, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="signoff",
            constraint=models.UniqueConstraint(
                fields=("project", "step", "user", "content_hash", "round"),
                name="one_decision_per_signer_and_version",
            ),
        ),
    ]
