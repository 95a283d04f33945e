"""A project's revision: a number that every committed write to the project's rows moves on.

Pages keep what they compute from a project's rows (its evidence and readiness, see
`readiness.current`) under the project's revision, so a kept value is used only while nothing
it was computed from has changed. The database keeps the number itself: a trigger on every
table holding a project's rows (each model with a `project` foreign key and its history, the
project itself, and the user table, whose names readiness reads through the memberships) adds
one to the project's row of `aethon_project_revision`, whichever code wrote: a page, the API,
an import, a run in a Celery worker, the demo loader, the admin, raw SQL. No write path can
forget it. Every name put into the SQL below comes from the models, never from input.

On PostgreSQL the triggers are deferred constraint triggers: they run at commit, and count a
project once per transaction, so the counter's row is locked only while the commit ends, not
from a transaction's first write on (which would queue every writer of the project behind it
and could deadlock with row locks taken later). On SQLite, where one writer at a time holds
the whole database, they are ordinary AFTER triggers.

The table and the triggers are installed after every `migrate` (post_migrate), not by a
migration: a model added later is covered by the next migrate, and SQLite, which rebuilds a
table to alter it and drops its triggers with it, gets them back.
"""

from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import connections

from planner.models import IntegrationProject

TABLE = "aethon_project_revision"
TRIGGER = "aethon_revision"


def tracked_tables() -> dict[str, str]:
    """Every table whose rows belong to a project -> the column naming the project ("" for the
    user table: a user's projects are those of their memberships). History tables too: a
    record's history row is written after it, in a transaction of its own outside an atomic
    block, and readiness reads who made a step's last change from them."""
    tables = {IntegrationProject._meta.db_table: "id", get_user_model()._meta.db_table: ""}
    for model in apps.get_app_config("planner").get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        field = next((f for f in model._meta.concrete_fields if f.name == "project"), None)
        if field is not None and field.related_model is IntegrationProject:
            tables[model._meta.db_table] = field.column
    return tables


def revision(project_id: int, using: str = "default") -> int:
    """The project's revision now (0 before its first write since the triggers exist)."""
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT revision FROM {TABLE} WHERE project_id = %s", [project_id])  # noqa: S608
        row = cursor.fetchone()
    return row[0] if row else 0


def revisions(project_ids: list[int], using: str = "default") -> dict[int, int]:
    """The revision of each project now, by id, in one query (0 for a project never written)."""
    if not project_ids:
        return {}
    marks = ", ".join(["%s"] * len(project_ids))
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT project_id, revision FROM {TABLE} WHERE project_id IN ({marks})",  # noqa: S608
            list(project_ids),
        )
        found = dict(cursor.fetchall())
    return {pk: found.get(pk, 0) for pk in project_ids}


def install(using: str = "default") -> None:
    """Create the revision table and (re)create the trigger of every tracked table."""
    connection = connections[using]
    statements = _postgresql() if connection.vendor == "postgresql" else _sqlite()
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def _membership_table() -> str:
    return apps.get_model("planner", "Membership")._meta.db_table


def _postgresql() -> list[str]:
    members = _membership_table()
    out = [
        f"CREATE TABLE IF NOT EXISTS {TABLE} "
        "(project_id bigint PRIMARY KEY, revision bigint NOT NULL)",
        # One count per project and transaction: the projects already counted are listed in a
        # transaction-local setting, which a rolled-back savepoint takes back with the count.
        f"""CREATE OR REPLACE FUNCTION aethon_revise(pid bigint) RETURNS void
        LANGUAGE plpgsql AS $$
        DECLARE done text := coalesce(nullif(current_setting('aethon.revised', true), ''), ',');
        BEGIN
          IF pid IS NULL OR position(',' || pid || ',' IN done) > 0 THEN RETURN; END IF;
          INSERT INTO {TABLE} AS r (project_id, revision) VALUES (pid, 1)
            ON CONFLICT (project_id) DO UPDATE SET revision = r.revision + 1;
          PERFORM set_config('aethon.revised', done || pid || ',', true);
        END $$""",  # noqa: S608
        f"""CREATE OR REPLACE FUNCTION aethon_revise_user() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP <> 'INSERT' THEN
            PERFORM aethon_revise(m.project_id) FROM {members} m WHERE m.user_id = OLD.id;
          END IF;
          IF TG_OP <> 'DELETE' THEN
            PERFORM aethon_revise(m.project_id) FROM {members} m WHERE m.user_id = NEW.id;
          END IF;
          RETURN NULL;
        END $$""",
    ]
    tables = tracked_tables()
    for column in sorted({c for c in tables.values() if c}):
        out.append(
            f"""CREATE OR REPLACE FUNCTION aethon_revise_by_{column}() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
              IF TG_OP <> 'INSERT' THEN PERFORM aethon_revise(OLD.{column}); END IF;
              IF TG_OP <> 'DELETE' THEN PERFORM aethon_revise(NEW.{column}); END IF;
              RETURN NULL;
            END $$"""
        )
    for table, column in tables.items():
        function = f"aethon_revise_by_{column}" if column else "aethon_revise_user"
        out += [
            f'DROP TRIGGER IF EXISTS {TRIGGER} ON "{table}"',
            f'CREATE CONSTRAINT TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON "{table}" '
            f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {function}()",
        ]
    return out


def _sqlite() -> list[str]:
    members = _membership_table()
    out = [
        f"CREATE TABLE IF NOT EXISTS {TABLE} "
        "(project_id integer PRIMARY KEY, revision integer NOT NULL)"
    ]
    bump = (
        f"INSERT INTO {TABLE} (project_id, revision) {{rows}} "
        "ON CONFLICT (project_id) DO UPDATE SET revision = revision + 1;"
    )
    for table, column in tracked_tables().items():
        for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            if column:
                rows = f"SELECT {row}.{column}, 1 WHERE {row}.{column} IS NOT NULL"
            else:
                rows = f"SELECT project_id, 1 FROM {members} WHERE user_id = {row}.id"  # noqa: S608
            name = f"{TRIGGER}_{event.lower()}"
            out += [
                f'DROP TRIGGER IF EXISTS "{table}_{name}"',
                f'CREATE TRIGGER "{table}_{name}" AFTER {event} ON "{table}" '
                f"BEGIN {bump.format(rows=rows)} END",
            ]
    return out
