from __future__ import annotations

import pytest


@pytest.fixture
def component_storage(settings, tmp_path):
    """Component files under a temporary folder, with small generated patterns."""
    settings.COMPONENT_STORAGE_DIR = tmp_path / "components"
    settings.COMPONENT_PATTERN_INITIAL_RECORDS = 2000
    settings.COMPONENT_PATTERN_RECORDS_ADDED = 40
    settings.COMPONENT_PATTERN_RECORDS_REMOVED = 4
    return settings.COMPONENT_STORAGE_DIR
