"""Content-Security-Policy: no inline script runs, and the pages need none."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@pytest.mark.django_db
def test_every_page_carries_a_policy_without_inline_scripts(viewer_client):
    policy = viewer_client.get(reverse("updates:summary"))["Content-Security-Policy"]
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert directives["object-src"] == ["'none'"] and directives["frame-ancestors"] == ["'none'"]


def test_templates_have_no_inline_scripts_or_event_handlers():
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag, f"{template}: inline script {tag}"
        assert not re.search(r"\son[a-z]+\s*=", text), f"{template}: inline event handler"
        assert "javascript:" not in text, template
        assert not re.search(r"\sstyle\s*=", text) and "<style" not in text, f"{template}: inline style"
