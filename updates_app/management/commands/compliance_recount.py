"""manage.py compliance_recount: rebuild the compliance tallies from the stored versions.

The tallies are kept step by step on every change of a client's versions; a
client deleted outside the console's services (raw SQL, the Django admin)
leaves its tally one too high until this recount.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from console.wording import plural
from updates_app.compliance import compliance_rebuild


class Command(BaseCommand):
    help = "Recount the compliance tallies (VersionProfile) from every active client's recorded versions."

    def handle(self, *args, **options):
        counted = compliance_rebuild()
        self.stdout.write(self.style.SUCCESS(f"Recounted {plural(counted, 'active client')}."))
