"""Mark a component version bad for the reference agents (the demo of a halted staged roll-out).

The reference agents (demo_fleet, simulate_agents) read SIMULATOR_BAD_VERSIONS_FILE:
after applying a version marked bad, the chosen share of them report a failed
update ("fail") or report success and then fall silent ("silent", as if the
endpoint crashed). The server itself knows nothing of it: it sees only what
the agents report, as it would with a real bad pattern.
"""

from __future__ import annotations

import json
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from updates_app.components import ComponentError, component_resolve
from updates_app.version_labels import VersionLabelError, parse_version_label, version_label


class Command(BaseCommand):
    help = (
        "Mark a component version bad for the reference agents: a share of them fail or fall silent after applying it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--component", required=True, help='Slug or name, e.g. "Virus Pattern"')
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--version-label", dest="label", help="A version the server has, e.g. 18.505.00")
        which.add_argument("--next", action="store_true", help="The next version the server will download")
        parser.add_argument("--share", type=int, default=50, help="Percent of agents hurt (1-100, default 50)")
        parser.add_argument(
            "--mode", choices=["fail", "silent"], default="fail", help="Report a failure, or fall silent"
        )
        parser.add_argument("--clear", action="store_true", help="Unmark the version instead")

    def handle(self, *args, **opts):
        if not 1 <= opts["share"] <= 100:
            raise CommandError("--share must be a whole percent from 1 to 100")
        try:
            component = component_resolve(opts["component"])
        except ComponentError as exc:
            raise CommandError(str(exc)) from None
        if opts["next"]:
            latest = component.versions.order_by("-number").first()
            if latest is None:
                raise CommandError(f"{component.name} has no version yet: download one first, or name --version-label")
            number = latest.number + 1
        else:
            try:
                number = parse_version_label(opts["label"])
            except VersionLabelError as exc:
                raise CommandError(str(exc)) from None
            if not component.versions.filter(number=number).exists():
                raise CommandError(f"The server has no {component.name} version {version_label(number)}")
        label = version_label(number)
        path = settings.SIMULATOR_BAD_VERSIONS_FILE
        try:
            marks = json.loads(path.read_text())
        except FileNotFoundError:
            marks = {}
        except ValueError:
            raise CommandError(f"{path} is not valid JSON; delete it and try again") from None
        by_version = marks.setdefault(component.slug, {})
        if opts["clear"]:
            by_version.pop(label, None)
        else:
            by_version[label] = {"share": opts["share"], "mode": opts["mode"]}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(marks, indent=2, sort_keys=True))
        os.replace(tmp, path)
        if opts["clear"]:
            self.stdout.write(f"{component.name} {label} is no longer marked bad.")
        else:
            verb = "report a failed update" if opts["mode"] == "fail" else "fall silent after updating"
            self.stdout.write(
                f"{component.name} {label} marked bad: {opts['share']} % of the reference agents {verb} "
                f"after applying it ({path})."
            )
