"""Simulate the server downloading a new component version from the vendor."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from updates_app.components import CATALOGUE, COMPONENT_KINDS, ComponentError, component_download, component_resolve
from updates_app.models import Component
from updates_app.version_labels import version_label


class Command(BaseCommand):
    help = (
        "Add the next version of a component (all known components without --component). "
        "Without --from-file the next pattern is generated: the previous one plus new signature records."
    )

    def add_arguments(self, parser):
        parser.add_argument("--component", help="Component slug or name, e.g. 'Virus Pattern' or virus_pattern")
        parser.add_argument("--from-file", type=Path, help="Use this file as the new version's payload")
        parser.add_argument("--count", type=int, default=1, help="How many successive versions to add (default 1)")

    def handle(self, *args, component=None, from_file=None, count=1, **options):
        if count < 1 or count > 1000:
            raise CommandError("--count must be between 1 and 1000")
        if from_file is not None:
            if component is None:
                raise CommandError("--from-file needs --component")
            if count != 1:
                raise CommandError("--from-file adds exactly one version")
            try:
                payload: bytes | None = from_file.read_bytes()
            except OSError as exc:
                raise CommandError(f"cannot read {from_file}: {exc.strerror}") from None
        else:
            payload = None
        try:
            if component:
                targets = [component_resolve(component)]
            else:
                # Every component; the client program and hot fixes only when named.
                targets = [
                    component_resolve(slug) for slug, (_n, kind, _f) in CATALOGUE.items() if kind in COMPONENT_KINDS
                ]
                targets += list(Component.objects.exclude(slug__in=CATALOGUE).filter(kind__in=COMPONENT_KINDS))
            for target in targets:
                for _ in range(count):
                    version = component_download(component=target, payload=payload)
                    self.stdout.write(
                        f"{target.name}: version {version_label(version.number)} "
                        f"({version.size} bytes, sha256 {version.sha256[:12]}...)"
                    )
        except ComponentError as exc:
            raise CommandError(str(exc)) from None
