"""Leave free space in every page of the client table (PostgreSQL only).

The privileges dialog rewrites a few boolean columns of up to every client in
one UPDATE. None of those columns is indexed, so PostgreSQL can make the new
row versions "heap-only" (HOT) and skip all eleven index insertions per row,
but only if the page holding the row has room for the new version. With the
default fillfactor (100) bulk-inserted pages are full and a 100,000-client save
took about 5 s; with 50 it takes about 0.25 s (bench/client_tree_bench.py). The
price is a table about twice as large. SQLite has no such setting.
"""

from django.db import migrations


def set_fillfactor(apps, schema_editor, value=50):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE agents_app_client SET (fillfactor = {int(value)})")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE agents_app_client RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("agents_app", "0002_future_domain_defaults")]

    operations = [migrations.RunPython(set_fillfactor, reset_fillfactor)]
