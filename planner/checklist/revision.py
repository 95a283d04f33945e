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

Every count also draws a new random token into the row. The number alone can repeat: a
restored backup, a lost or reset row count again from an older value, and a process that kept
something under the number would take it for the content it was computed from. A revision
(`current`: number and token) names one count, and only that count, whatever happens to the
table; restoring the whole database brings back a revision together with its own content.

The table and the triggers are installed after every `migrate` (post_migrate), not by a
migration: a model added later is covered by the next migrate, and SQLite, which rebuilds a
table to alter it and drops its triggers with it, gets them back.
"""

from typing import NamedTuple

from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import connections

from planner.models import IntegrationProject, ProjectStanding, StepContent

TABLE = "aethon_project_revision"
TRIGGER = "aethon_revision"
# Rows derived from a project's rows and stamped with the revision they were computed at
# (`StepContent`): writing them changes no answer, so it does not count (on SQLite, where
# every written row counts at once, storing a stamp would otherwise outdate it).
UNTRACKED = (StepContent, ProjectStanding)


class Revision(NamedTuple):
    """One count of a project's writes: its number and the token drawn with it."""

    number: int
    token: str


def tracked_tables() -> dict[str, str]:
    """Every table whose rows belong to a project -> the column naming the project ("" for the
    user table: a user's projects are those of their memberships). History tables too: a
    record's history row is written after it, in a transaction of its own outside an atomic
    block, and readiness reads who made a step's last change from them."""
    tables = {IntegrationProject._meta.db_table: "id", get_user_model()._meta.db_table: ""}
    for model in apps.get_app_config("planner").get_models():
        if model._meta.proxy or not model._meta.managed or model in UNTRACKED:
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


def current(project_id: int, using: str = "default") -> Revision:
    """The project's revision now, with its token (0 and "" before its first counted write)."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT revision, token FROM {TABLE} WHERE project_id = %s",  # noqa: S608
            [project_id],
        )
        row = cursor.fetchone()
    return Revision(*row) if row else Revision(0, "")


def current_many(project_ids: list[int], using: str = "default") -> dict[int, Revision]:
    """`current` of each project, by id, in one query."""
    if not project_ids:
        return {}
    marks = ", ".join(["%s"] * len(project_ids))
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT project_id, revision, token FROM {TABLE} "  # noqa: S608
            f"WHERE project_id IN ({marks})",
            list(project_ids),
        )
        found = {pk: Revision(number, token) for pk, number, token in cursor.fetchall()}
    return {pk: found.get(pk, Revision(0, "")) for pk in project_ids}


def stamped_rows(
    model: type, columns: list[str], project_ids: list[int], where: str = "", params=()
) -> list[tuple]:
    """The rows of a table of derived data stamped with a revision token (`UNTRACKED`) that
    hold now, in one query: their `revision_token` is the project's current token. ``columns``
    are column names of the model's table, ``where`` an extra SQL condition on them (alias
    ``s``) with ``params``."""
    if not project_ids:
        return []
    connection = connections["default"]
    table = connection.ops.quote_name(model._meta.db_table)
    picked = ", ".join(f"s.{connection.ops.quote_name(c)}" for c in columns)
    marks = ", ".join(["%s"] * len(project_ids))
    # Written in: quoted names of the model's table and columns, the counter's table, the
    # caller's condition; every value a parameter.
    sql = (
        f"SELECT {picked} FROM {table} s "  # noqa: S608
        f"JOIN {TABLE} r ON r.project_id = s.project_id AND r.token = s.revision_token "
        f"WHERE s.project_id IN ({marks}){f' AND ({where})' if where else ''}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*project_ids, *params])
        return cursor.fetchall()


def advance(project_id: int, seen: Revision, using: str = "default") -> str:
    """The token of the revision this transaction's commit will leave, if no other write was
    counted since ``seen`` was read ("" otherwise: what was read since may be older).

    PostgreSQL counts a transaction at its commit: here the count is taken now (and not again
    at the commit), which locks the counter's row until the end of the transaction, so no
    other writer can be counted in between. SQLite has counted this transaction's writes
    already, and holds the only write lock once it has written."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        now = current(project_id, using)
        return now.token if now == seen else ""
    with connection.cursor() as cursor:
        cursor.execute("SELECT number, token FROM aethon_revise_now(%s)", [project_id])
        number, token = cursor.fetchone()
    return token if number == seen.number + 1 else ""


def install(using: str = "default") -> None:
    """Create the revision table and (re)create the trigger of every tracked table."""
    connection = connections[using]
    statements = _postgresql() if connection.vendor == "postgresql" else _sqlite(using)
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
        # A table made before the token: each row draws one now.
        f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS token text NOT NULL "
        "DEFAULT gen_random_uuid()::text",
        # One count per project and transaction, taken now: the projects already counted are
        # listed in a transaction-local setting, which a rolled-back savepoint takes back with
        # the count.
        f"""CREATE OR REPLACE FUNCTION aethon_revise_now(pid bigint, OUT number bigint,
          OUT token text) LANGUAGE plpgsql AS $$
        DECLARE done text := coalesce(nullif(current_setting('aethon.revised', true), ''), ',');
        BEGIN
          INSERT INTO {TABLE} AS r (project_id, revision, token)
            VALUES (pid, 1, gen_random_uuid()::text)
            ON CONFLICT (project_id) DO UPDATE SET revision = r.revision + 1,
              token = excluded.token
            RETURNING r.revision, r.token INTO number, token;
          IF position(',' || pid || ',' IN done) = 0 THEN
            PERFORM set_config('aethon.revised', done || pid || ',', true);
          END IF;
        END $$""",  # noqa: S608
        # The triggers' count, at commit, unless the transaction was counted already.
        """CREATE OR REPLACE FUNCTION aethon_revise(pid bigint) RETURNS void
        LANGUAGE plpgsql AS $$
        DECLARE done text := coalesce(nullif(current_setting('aethon.revised', true), ''), ',');
        BEGIN
          IF pid IS NULL OR position(',' || pid || ',' IN done) > 0 THEN RETURN; END IF;
          PERFORM aethon_revise_now(pid);
        END $$""",
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
    out += [f'DROP TRIGGER IF EXISTS {TRIGGER} ON "{m._meta.db_table}"' for m in UNTRACKED]
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


def _sqlite(using: str) -> list[str]:
    members = _membership_table()
    draw = "lower(hex(randomblob(16)))"
    out = [
        f"CREATE TABLE IF NOT EXISTS {TABLE} "
        "(project_id integer PRIMARY KEY, revision integer NOT NULL, token text NOT NULL)"
    ]
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT name FROM pragma_table_info('{TABLE}')")  # noqa: S608
        columns = {name for (name,) in cursor.fetchall()}
    if columns and "token" not in columns:  # a table made before the token
        out += [
            f"ALTER TABLE {TABLE} ADD COLUMN token text NOT NULL DEFAULT ''",
            f"UPDATE {TABLE} SET token = {draw}",  # noqa: S608
        ]
    bump = (
        f"INSERT INTO {TABLE} (project_id, revision, token) {{rows}} "
        "ON CONFLICT (project_id) DO UPDATE SET revision = revision + 1, token = excluded.token;"
    )
    for model in UNTRACKED:
        for event in ("insert", "update", "delete"):
            out.append(f'DROP TRIGGER IF EXISTS "{model._meta.db_table}_{TRIGGER}_{event}"')
    for table, column in tracked_tables().items():
        for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            if column:
                rows = f"SELECT {row}.{column}, 1, {draw} WHERE {row}.{column} IS NOT NULL"
            else:
                rows = f"SELECT project_id, 1, {draw} FROM {members} WHERE user_id = {row}.id"  # noqa: S608
            name = f"{TRIGGER}_{event.lower()}"
            out += [
                f'DROP TRIGGER IF EXISTS "{table}_{name}"',
                f'CREATE TRIGGER "{table}_{name}" AFTER {event} ON "{table}" '
                f"BEGIN {bump.format(rows=rows)} END",
            ]
    return out
