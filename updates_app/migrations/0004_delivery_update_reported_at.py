from django.db import migrations


class Migration(migrations.Migration):
    """``updated_at`` read like a last-modified stamp; it is when the client reported that it updated."""

    dependencies = [
        ("updates_app", "0003_delivery_engine"),
    ]

    operations = [
        migrations.RenameField(model_name="delivery", old_name="updated_at", new_name="update_reported_at"),
    ]
