"""Fill ClientComponent and the version tallies from what clients reported so far (Client.component_versions)."""

from collections import defaultdict

from django.db import migrations

from updates_app.compliance import profile_digest, reported_numbers

BATCH = 5000


def fill(apps, schema_editor):
    Client = apps.get_model("agents_app", "Client")
    ClientComponent = apps.get_model("updates_app", "ClientComponent")
    VersionProfile = apps.get_model("updates_app", "VersionProfile")
    ClientProfile = apps.get_model("updates_app", "ClientProfile")
    members = defaultdict(list)
    versions = {}
    rows = []
    active = Client.objects.filter(revoked_at__isnull=True).order_by("pk")
    for client_id, reported in active.values_list("pk", "component_versions").iterator(chunk_size=BATCH):
        numbers = reported_numbers(reported)
        digest = profile_digest(numbers)
        versions.setdefault(digest, numbers)
        members[digest].append(client_id)
        rows.extend(ClientComponent(client_id=client_id, component=s, number=n) for s, n in numbers.items())
        if len(rows) >= BATCH:
            ClientComponent.objects.bulk_create(rows)
            rows = []
    ClientComponent.objects.bulk_create(rows)
    for digest, ids in members.items():
        profile = VersionProfile.objects.create(digest=digest, versions=versions[digest], clients=len(ids))
        ClientProfile.objects.bulk_create([ClientProfile(client_id=i, profile=profile) for i in ids], batch_size=BATCH)


class Migration(migrations.Migration):
    dependencies = [("updates_app", "0007_client_component_versions")]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
