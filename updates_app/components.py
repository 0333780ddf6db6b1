"""Component versions on disk: the simulated vendor download, incrementals, the manifest.

Storage under ``settings.COMPONENT_STORAGE_DIR``::

    <slug>/full/<number>.bin           the full file of a version (the last 7 are kept)
    <slug>/incr/<to>/<from>.inc        incremental from an older version to the latest
    <slug>/incr/<to>/index.json        {"<from>": {"size": ..., "sha256": ...}}

Incrementals are generated once, when a version is downloaded, from each of the
previous 14 versions to the new latest one; a client further behind gets the
full file. Versions older than the 7 kept full files are recovered from the
previous round's incrementals (they are exact, so they can be reverted), which
is why 14 incrementals can be offered while only 7 full files are kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from updates_app import patterns
from updates_app.engine.rings import held_back_version_ids, rollout_create
from updates_app.engine.runs import run_create_for_event
from updates_app.models import Component, ComponentKind, ComponentVersion, RolloutPolicy
from updates_app.tasks import dispatch_soon
from updates_app.version_labels import VersionLabelError, parse_version_label, version_label

FULL_VERSIONS_KEPT = 7
INCREMENTAL_DEPTH = 14

# The components a fresh server knows; `download_component --component NAME`
# creates one of these on first use.
CATALOGUE: dict[str, tuple[str, str, int]] = {
    # slug: (name, kind, first version number)
    "virus_pattern": ("Virus Pattern", ComponentKind.PATTERN, 18_500),
    "spyware_pattern": ("Spyware Pattern", ComponentKind.PATTERN, 2_300),
    "smart_scan_agent_pattern": ("Smart Scan Agent Pattern", ComponentKind.PATTERN, 19_100),
    "virus_scan_engine": ("Virus Scan Engine", ComponentKind.ENGINE, 12_000),
    # The agent program and its hot fixes travel the same way (simulated like the engine);
    # clients with "Clients can update components but not upgrade the client program or
    # deploy hot fixes" skip them.
    "client_program": ("Client Program", ComponentKind.PROGRAM, 14_000),
    "hot_fix": ("Hot Fix", ComponentKind.HOTFIX, 1_000),
}
# What `download_component` without --component downloads: the components proper
# (the client program and hot fixes only when named).
COMPONENT_KINDS = (ComponentKind.PATTERN, ComponentKind.ENGINE)


class ComponentError(ValueError):
    """An unknown component or version, or a payload that cannot be a new version."""


class ComponentWithdrawn(ComponentError):
    """A download of a version withdrawn by a rollback: the server no longer hands it out."""


def _number_of(label: str) -> int:
    try:
        return parse_version_label(label)
    except VersionLabelError as exc:
        raise ComponentError(str(exc)) from None


def _root(slug: str) -> Path:
    return Path(settings.COMPONENT_STORAGE_DIR) / slug


def _full_path(slug: str, number: int) -> Path:
    return _root(slug) / "full" / f"{number}.bin"


def _incr_dir(slug: str, to_number: int) -> Path:
    return _root(slug) / "incr" / str(to_number)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def component_resolve(name: str) -> Component:
    """A component by slug or name; a catalogue component is created on first use."""
    component = Component.objects.filter(slug=name).first() or Component.objects.filter(name__iexact=name).first()
    if component:
        return component
    for slug, (title, kind, _first) in CATALOGUE.items():
        if name in (slug, title) or name.lower() == title.lower():
            component, _ = Component.objects.get_or_create(slug=slug, defaults={"name": title, "kind": kind})
            return component
    known = sorted({*Component.objects.values_list("name", flat=True), *(t for t, _k, _f in CATALOGUE.values())})
    raise ComponentError(f"unknown component {name!r}; known: {', '.join(known)}")


def _first_number(component: Component) -> int:
    entry = CATALOGUE.get(component.slug)
    return entry[2] if entry else 1_000


def _engine_payload(component: Component, number: int) -> bytes:
    rng = random.Random(f"{component.slug}:{number}")
    return f"UCENGINE {component.slug} {number}\n".encode() + rng.randbytes(64 * 1024)


def kept_full_file(version: ComponentVersion) -> bool:
    """Does the server still keep this version's full file (one of the last 7)?"""
    return bool(version.file_path) and _full_path(version.component.slug, version.number).exists()


def _load_pattern(version: ComponentVersion) -> patterns.Pattern | None:
    path = _full_path(version.component.slug, version.number)
    if not version.file_path or not path.exists():
        return None
    return patterns.parse_pattern(path.read_bytes())


@transaction.atomic
def component_download(*, component: Component, payload: bytes | None = None, released_at=None) -> ComponentVersion:
    """Add the next version of a component (the simulated download from the vendor).

    Without a payload the next version is generated: for a pattern, the
    previous one plus new signature records (and a few retired ones).
    """
    # One download of a component at a time: the row lock orders them.
    component = Component.objects.select_for_update().get(pk=component.pk)
    latest = component.versions.order_by("-number").first()
    # After a rollback the newest version is withdrawn: the next one is numbered
    # after it (numbers never repeat) but built on the current version, the
    # last one known good.
    current = ComponentVersion.objects.offered().filter(component=component).order_by("-number").first()
    is_pattern = component.kind == ComponentKind.PATTERN
    new_pattern: patterns.Pattern | None = None
    previous_pattern = _load_pattern(latest) if (latest and is_pattern) else None
    base_pattern = previous_pattern
    if current is not None and latest is not None and current.pk != latest.pk and is_pattern:
        good = _load_pattern(current)
        base_pattern = dataclasses.replace(good, number=latest.number) if good else previous_pattern

    if payload is None:
        number = latest.number + 1 if latest else _first_number(component)
        if is_pattern:
            if base_pattern is None:
                new_pattern = patterns.generate_initial(
                    component.slug, number, records=settings.COMPONENT_PATTERN_INITIAL_RECORDS
                )
            else:
                new_pattern = patterns.generate_next(
                    base_pattern,
                    added=settings.COMPONENT_PATTERN_RECORDS_ADDED,
                    removed=settings.COMPONENT_PATTERN_RECORDS_REMOVED,
                )
            payload = new_pattern.render()
        else:
            payload = _engine_payload(component, number)
    elif is_pattern:
        try:
            new_pattern = patterns.parse_pattern(payload)
        except patterns.PatternError as exc:
            raise ComponentError(f"not a valid pattern file: {exc}") from None
        if new_pattern.slug != component.slug:
            raise ComponentError(f"the file is a {new_pattern.slug} pattern, not {component.slug}")
        number = new_pattern.number
        if latest and number <= latest.number:
            raise ComponentError(
                f"the file is version {version_label(number)}; the server already has {version_label(latest.number)}"
            )
    else:
        if not payload:
            raise ComponentError("the file is empty")
        number = latest.number + 1 if latest else _first_number(component)

    path = _full_path(component.slug, number)
    _write_atomically(path, payload)
    version = ComponentVersion.objects.create(
        component=component,
        number=number,
        file_path=str(path.relative_to(settings.COMPONENT_STORAGE_DIR)),
        size=len(payload),
        sha256=hashlib.sha256(payload).hexdigest(),
        released_at=released_at or timezone.now(),
    )
    if new_pattern is not None:
        _build_incrementals(component, new_pattern, previous_pattern)
    transaction.on_commit(lambda: _prune(component, number))
    # The download -> run step, once the new version is committed and visible to workers.
    transaction.on_commit(lambda: component_version_announce(version=version))
    return version


def component_version_announce(*, version: ComponentVersion) -> None:
    """Start the event-triggered update for a new version (SPEC 3.2), if the Automatic Update settings ask for it.

    With the staged roll-out policy on, the run notifies its first ring only (updates_app.engine.rings).
    """
    staged = RolloutPolicy.load().enabled
    run = rollout_create(version=version) if staged else run_create_for_event(version=version)
    if run is not None:
        dispatch_soon()


def _build_incrementals(component: Component, new: patterns.Pattern, previous: patterns.Pattern | None) -> None:
    """Incrementals from each of the previous 14 versions to ``new``, with their index."""
    older = list(
        component.versions.filter(number__lt=new.number, number__gte=new.number - INCREMENTAL_DEPTH)
        .select_related("component")
        .order_by("-number")
    )
    previous_index = _read_index(component.slug, previous.number) if previous else {}
    target_dir = _incr_dir(component.slug, new.number)
    index: dict[str, dict] = {}
    for old_version in older:
        source = _load_pattern(old_version)
        if source is None and previous is not None and str(old_version.number) in previous_index:
            # Beyond the kept full files: revert last round's incremental.
            inc_bytes = (_incr_dir(component.slug, previous.number) / f"{old_version.number}.inc").read_bytes()
            source = patterns.revert(previous, patterns.parse_incremental(inc_bytes))
        if source is None:
            continue
        data = patterns.make_incremental(source, new).render()
        _write_atomically(target_dir / f"{old_version.number}.inc", data)
        index[str(old_version.number)] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if index:
        _write_atomically(target_dir / "index.json", json.dumps(index, sort_keys=True).encode())


def _read_index(slug: str, to_number: int) -> dict[str, dict]:
    path = _incr_dir(slug, to_number) / "index.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _prune(component: Component, latest_number: int) -> None:
    """Keep the last 7 full files and only the incrementals to the latest version."""
    kept = list(component.versions.order_by("-number").values_list("number", flat=True)[:FULL_VERSIONS_KEPT])
    stale = component.versions.exclude(number__in=kept).exclude(file_path="")
    for number in stale.values_list("number", flat=True):
        _full_path(component.slug, number).unlink(missing_ok=True)
    stale.update(file_path="")
    incr_root = _root(component.slug) / "incr"
    if incr_root.exists():
        for child in incr_root.iterdir():
            if child.name != str(latest_number):
                shutil.rmtree(child, ignore_errors=True)


# --- Reading: the manifest and downloads -------------------------------------------------


@dataclass(frozen=True)
class DownloadFile:
    path: Path
    size: int
    sha256: str


def latest_versions(*, held_back: Collection[int] = ()) -> list[ComponentVersion]:
    """The current version of every component (its newest not withdrawn nor ``held_back``), in one query."""
    newest = (
        ComponentVersion.objects.offered()
        .exclude(pk__in=held_back)
        .filter(component=OuterRef("component"))
        .order_by("-number")
        .values("number")[:1]
    )
    return list(
        ComponentVersion.objects.filter(number=Subquery(newest)).select_related("component").order_by("component__name")
    )


def _download_url(slug: str, label: str, from_label: str | None = None) -> str:
    base = f"/agent/v1/components/{slug}/versions/{label}"
    return f"{base}/incremental/{from_label}" if from_label else f"{base}/full"


def component_manifest(reported: dict[str, str], *, client_id: int | None = None) -> list[dict]:
    """Per component: the latest version and, for a client holding ``reported``, what to download.

    With ``client_id``: a version held back by a staged roll-out the client is
    not (yet) part of is not offered; the version before it is.
    """
    items = []
    held_back = held_back_version_ids(client_id) if client_id is not None else set()
    for version in latest_versions(held_back=held_back):
        slug = version.component.slug
        label = version_label(version.number)
        have = reported.get(slug)
        item: dict = {
            "component": slug,
            "name": version.component.name,
            "kind": version.component.kind,
            "latest_version": label,
            "sha256": version.sha256,
            "size": version.size,
            "released_at": version.released_at,
            "up_to_date": have == label,
            "full": {"url": _download_url(slug, label), "size": version.size, "sha256": version.sha256},
            "incremental": None,
        }
        if have and have != label:
            try:
                have_number = parse_version_label(have)
            except VersionLabelError:
                have_number = None
            entry = _read_index(slug, version.number).get(str(have_number)) if have_number else None
            if entry:
                item["incremental"] = {
                    "url": _download_url(slug, label, have),
                    "from_version": have,
                    "size": entry["size"],
                    "sha256": entry["sha256"],
                }
        items.append(item)
    return items


def component_file(*, slug: str, label: str, from_label: str | None = None) -> DownloadFile:
    """The file behind a download URL; ComponentError when it is unknown or no longer kept."""
    number = _number_of(label)
    version = ComponentVersion.objects.filter(component__slug=slug, number=number).first()
    if version is None:
        raise ComponentError(f"the server has no {slug} version {label}")
    if version.withdrawn_at is not None:
        raise ComponentWithdrawn(
            f"{slug} version {label} was withdrawn by a rollback on {version.withdrawn_at:%Y-%m-%d %H:%M} UTC "
            "and is no longer offered; fetch the manifest for the current version"
        )
    if from_label is None:
        path = _full_path(slug, number)
        if not version.file_path or not path.exists():
            raise ComponentError(f"the full file of {slug} {label} is no longer kept")
        return DownloadFile(path=path, size=version.size, sha256=version.sha256)
    from_number = _number_of(from_label)
    entry = _read_index(slug, number).get(str(from_number))
    path = _incr_dir(slug, number) / f"{from_number}.inc"
    if not entry or not path.exists():
        raise ComponentError(f"no incremental from {from_label} to {slug} {label}; download the full file")
    return DownloadFile(path=path, size=entry["size"], sha256=entry["sha256"])
