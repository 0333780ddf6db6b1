"""What a hostname or a domain name may contain, in one place.

Names are shown on every console page and written to logs. A control
character (ESC, BEL, a newline) or a bidirectional override (U+202E turns
"exe.txt" into "txt.exe" on screen) lets whoever chose the name disguise it
or forge what is around it, so such names are refused wherever they come in:
the agent API's registration, the Django admin and ``domain_create``.
"""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError

# Control (Cc: NUL, ESC, BEL, newlines), format (Cf: bidi overrides and
# isolates, zero-width characters), line/paragraph separators, surrogates,
# private-use and unassigned code points.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def refused_character(value: str) -> str | None:
    """The first character of ``value`` a name may not contain, as U+XXXX, or None."""
    for char in value:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            return f"U+{ord(char):04X}"
    return None


def validate_display_name(value: str) -> None:
    """Refuse control, invisible-format and bidirectional-override characters."""
    found = refused_character(value)
    if found:
        raise ValidationError(
            "Control, invisible or text-direction characters are not allowed (found %(char)s).",
            code="invalid_character",
            params={"char": found},
        )
