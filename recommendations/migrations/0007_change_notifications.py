"""Statement-level triggers that NOTIFY `recsite_changes` (recsite/changes.py).

The serving processes keep API keys, the item catalog and business rules in memory
and learn of every committed write through these notifications. A trigger on a
table whose rows are tracked one by one sends the changed rows' ids (its argument
names the id column: `item_id` for the label links, so a re-labelled item is
re-read); the others send `*`. Interactions have no trigger: ingestion pays
nothing.
"""

from django.db import migrations

FUNCTION = r"""
CREATE OR REPLACE FUNCTION recsite_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    ids text;
BEGIN
    IF TG_NARGS > 0 AND TG_OP <> 'TRUNCATE' THEN
        IF TG_OP = 'DELETE' THEN
            EXECUTE format(
                'SELECT string_agg(DISTINCT %I::text, '','') FROM old_rows', TG_ARGV[0]
            ) INTO ids;
        ELSE
            EXECUTE format(
                'SELECT string_agg(DISTINCT %I::text, '','') FROM new_rows', TG_ARGV[0]
            ) INTO ids;
        END IF;
        IF ids IS NULL THEN
            RETURN NULL;  -- the statement changed no row
        END IF;
        IF length(ids) > 7000 THEN
            ids := '*';
        END IF;
    ELSE
        ids := '*';
    END IF;
    PERFORM pg_notify('recsite_changes', TG_TABLE_NAME || ':' || ids);
    RETURN NULL;
END
$fn$;
"""

# table -> the id column its notifications carry (None: the whole table, "*")
TABLES = {
    "items_item": "id",
    "items_item_categories": "item_id",
    "items_item_tags": "item_id",
    "items_category": None,
    "items_tag": None,
    "recommendations_businessrule": None,
}


def _create(table: str, column: str | None) -> str:
    if column is None:
        return (
            f"CREATE TRIGGER recsite_changes AFTER INSERT OR UPDATE OR DELETE OR "
            f"TRUNCATE ON {table} FOR EACH STATEMENT "
            "EXECUTE FUNCTION recsite_notify_change();"
        )
    arg = f"'{column}'"
    return "\n".join(
        [
            f"CREATE TRIGGER recsite_changes_ins AFTER INSERT ON {table} "
            "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
            f"EXECUTE FUNCTION recsite_notify_change({arg});",
            f"CREATE TRIGGER recsite_changes_upd AFTER UPDATE ON {table} "
            "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
            f"EXECUTE FUNCTION recsite_notify_change({arg});",
            f"CREATE TRIGGER recsite_changes_del AFTER DELETE ON {table} "
            "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
            f"EXECUTE FUNCTION recsite_notify_change({arg});",
            f"CREATE TRIGGER recsite_changes_trunc AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION recsite_notify_change();",
        ]
    )


# API keys: any change but to `last_used_at` alone, which authentication writes
# about once a minute per key in use (users/authentication.py); row level, so the
# condition can compare the rows (PostgreSQL folds a transaction's identical
# notifications into one).
KEY_FUNCTION = r"""
CREATE OR REPLACE FUNCTION recsite_notify_key_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_notify('recsite_changes', TG_TABLE_NAME || ':*');
    RETURN NULL;
END
$fn$;
CREATE TRIGGER recsite_changes_row AFTER INSERT OR DELETE ON users_apikey
    FOR EACH ROW EXECUTE FUNCTION recsite_notify_key_change();
CREATE TRIGGER recsite_changes_upd AFTER UPDATE ON users_apikey
    FOR EACH ROW
    WHEN ((to_jsonb(OLD) - 'last_used_at') IS DISTINCT FROM (to_jsonb(NEW) - 'last_used_at'))
    EXECUTE FUNCTION recsite_notify_key_change();
CREATE TRIGGER recsite_changes_trunc AFTER TRUNCATE ON users_apikey
    FOR EACH STATEMENT EXECUTE FUNCTION recsite_notify_key_change();
"""
KEY_DROP = """
DROP TRIGGER IF EXISTS recsite_changes_row ON users_apikey;
DROP TRIGGER IF EXISTS recsite_changes_upd ON users_apikey;
DROP TRIGGER IF EXISTS recsite_changes_trunc ON users_apikey;
DROP FUNCTION IF EXISTS recsite_notify_key_change();
"""


def _drop(table: str, column: str | None) -> str:
    names = ["recsite_changes"] if column is None else [
        "recsite_changes_ins",
        "recsite_changes_upd",
        "recsite_changes_del",
        "recsite_changes_trunc",
    ]
    return "\n".join(f"DROP TRIGGER IF EXISTS {n} ON {table};" for n in names)


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0006_remove_interaction_interaction_created"),
        ("items", "0002_item_maybe_unavailable_index"),
        ("users", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(FUNCTION, "DROP FUNCTION IF EXISTS recsite_notify_change();"),
        *[
            migrations.RunSQL(_create(table, column), _drop(table, column))
            for table, column in TABLES.items()
        ],
        migrations.RunSQL(KEY_FUNCTION, KEY_DROP),
    ]
