"""Component downloads: storage, incrementals from the previous 14 versions, 7 full files kept."""

from __future__ import annotations

import hashlib

import pytest
from django.core.management import CommandError, call_command

from updates_app.components import (
    ComponentError,
    component_download,
    component_file,
    component_manifest,
    component_resolve,
)
from updates_app.models import ComponentVersion, UpdateRun
from updates_app.patterns import apply_incremental, render_pattern
from updates_app.version_labels import VersionLabelError, parse_version_label, version_label

pytestmark = pytest.mark.django_db


def test_version_labels_round_trip():
    assert version_label(18523) == "18.523.00"
    assert parse_version_label("18.523.00") == 18523
    for bad in ("18.523", "x", "18.5233.00", "", "18.523.01"):
        with pytest.raises(VersionLabelError):
            parse_version_label(bad)


def test_download_stores_the_file_with_its_hash(component_storage):
    component = component_resolve("Virus Pattern")
    version = component_download(component=component)
    data = (component_storage / version.file_path).read_bytes()
    assert version.size == len(data)
    assert version.sha256 == hashlib.sha256(data).hexdigest()
    assert version_label(version.number) == "18.500.00"


def test_the_event_run_starts_after_commit(component_storage, django_capture_on_commit_callbacks):
    # The download -> run step waits for the new version to be committed, so a
    # worker never sees a run whose version it cannot read.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        version = component_download(component=component_resolve("virus_pattern"))
    assert not UpdateRun.objects.exists()
    for callback in callbacks:
        callback()
    assert UpdateRun.objects.get().component_version == version


def _download(component, n, django_capture_on_commit_callbacks):
    versions = []
    for _ in range(n):
        with django_capture_on_commit_callbacks(execute=True):
            versions.append(component_download(component=component))
    return versions


def test_it_keeps_7_full_files_and_offers_incrementals_from_14_versions(
    component_storage, django_capture_on_commit_callbacks
):
    component = component_resolve("virus_pattern")
    versions = _download(component, 20, django_capture_on_commit_callbacks)
    latest = versions[-1]
    kept = ComponentVersion.objects.exclude(file_path="").values_list("number", flat=True)
    assert sorted(kept) == [v.number for v in versions[-7:]]
    assert len(list((component_storage / "virus_pattern" / "full").iterdir())) == 7

    latest_bytes = component_file(slug="virus_pattern", label=version_label(latest.number)).path.read_bytes()
    for behind in range(1, 15):
        old = versions[-1 - behind]
        found = component_file(
            slug="virus_pattern", label=version_label(latest.number), from_label=version_label(old.number)
        )
        inc = found.path.read_bytes()
        assert hashlib.sha256(inc).hexdigest() == found.sha256
        # Rebuild the old file from the generator to apply the incremental to it.
        base = _rebuild(component, old.number)
        assert apply_incremental(base, inc) == latest_bytes
    with pytest.raises(ComponentError, match="full file"):
        component_file(
            slug="virus_pattern", label=version_label(latest.number), from_label=version_label(versions[-16].number)
        )


def _rebuild(component, number):
    from django.conf import settings

    from updates_app.patterns import generate_initial, generate_next

    pattern = generate_initial(component.slug, 18500, records=settings.COMPONENT_PATTERN_INITIAL_RECORDS)
    while pattern.number < number:
        pattern = generate_next(
            pattern,
            added=settings.COMPONENT_PATTERN_RECORDS_ADDED,
            removed=settings.COMPONENT_PATTERN_RECORDS_REMOVED,
        )
    return pattern.render()


def test_the_manifest_offers_an_incremental_to_a_client_1_behind_and_the_full_file_16_behind(
    component_storage, django_capture_on_commit_callbacks
):
    component = component_resolve("virus_pattern")
    versions = _download(component, 17, django_capture_on_commit_callbacks)
    latest = version_label(versions[-1].number)

    [one_behind] = component_manifest({"virus_pattern": version_label(versions[-2].number)})
    assert one_behind["latest_version"] == latest
    assert one_behind["incremental"]["size"] * 10 < one_behind["full"]["size"]

    [far_behind] = component_manifest({"virus_pattern": version_label(versions[0].number)})
    assert far_behind["incremental"] is None
    assert far_behind["full"]["sha256"] == versions[-1].sha256

    [current] = component_manifest({"virus_pattern": latest})
    assert current["up_to_date"] is True


def test_from_file_imports_a_valid_pattern(component_storage, tmp_path):
    path = tmp_path / "new.ptn"
    path.write_bytes(render_pattern("virus_pattern", 18600, ["a", "b"]))
    call_command("download_component", "--component", "Virus Pattern", "--from-file", str(path))
    version = ComponentVersion.objects.get()
    assert version.number == 18600


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"garbage", "not a valid pattern"),
        (render_pattern("spyware_pattern", 5, ["a"]), "spyware_pattern pattern"),
    ],
)
def test_from_file_refuses_bad_files_and_changes_nothing(component_storage, tmp_path, content, message):
    path = tmp_path / "bad.ptn"
    path.write_bytes(content)
    with pytest.raises(CommandError, match=message):
        call_command("download_component", "--component", "virus_pattern", "--from-file", str(path))
    assert not ComponentVersion.objects.exists()


def test_from_file_refuses_an_older_version(component_storage, tmp_path):
    component_download(component=component_resolve("virus_pattern"))
    path = tmp_path / "old.ptn"
    path.write_bytes(render_pattern("virus_pattern", 18400, ["a"]))
    with pytest.raises(CommandError, match=r"already has 18\.500\.00"):
        call_command("download_component", "--component", "virus_pattern", "--from-file", str(path))
    assert ComponentVersion.objects.count() == 1


def test_unknown_component_is_a_clear_error(component_storage):
    with pytest.raises(CommandError, match="unknown component 'Nope'"):
        call_command("download_component", "--component", "Nope")


def test_missing_file_is_a_clear_error(component_storage, tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("download_component", "--component", "virus_pattern", "--from-file", str(tmp_path / "none"))


def test_without_component_every_known_component_gets_a_version(component_storage, capsys):
    call_command("download_component")
    assert ComponentVersion.objects.count() == 4
    assert "Virus Scan Engine: version 12.000.00" in capsys.readouterr().out


def test_the_admin_action_downloads_a_version(component_storage, superuser_client):
    component = component_resolve("virus_pattern")
    response = superuser_client.post(
        "/admin/updates_app/component/",
        {"action": "download_new_version", "_selected_action": [component.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "downloaded version 18.500.00" in response.content.decode()
    assert component.versions.count() == 1


def test_the_admin_action_needs_change_permission(component_storage, client, django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", password="pw-long-enough-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_component"))
    client.force_login(user)
    component = component_resolve("virus_pattern")
    client.post(
        "/admin/updates_app/component/",
        {"action": "download_new_version", "_selected_action": [component.pk]},
    )
    assert component.versions.count() == 0
