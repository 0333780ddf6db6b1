"""Component version numbers and their labels, in one place.

The server stores a version as a number that grows with every download
(18523); administrators and agents see its label ("18.523.00"). Everything
that turns one into the other, or reads what an agent reported, calls this
module.
"""

from __future__ import annotations

import re

# ASCII digits only: ``\d`` would also take "١٨.500.00" (Arabic-Indic digits),
# which int() reads as 18 while the text stays different from every label the
# server writes. ``\Z``, not ``$``, which would also match before a final newline.
_LABEL = re.compile(r"\A([0-9]{1,6})\.([0-9]{3})\.00\Z")


class VersionLabelError(ValueError):
    """Text that is not a version label such as 18.523.00."""


def is_ascii_number(text: str) -> bool:
    """``text`` is a whole number written in ASCII digits (``str.isdigit`` also takes "١٨" and "²")."""
    return text.isascii() and text.isdigit()


def version_label(number: int) -> str:
    """The display form of a version number: 18523 -> "18.523.00"."""
    return f"{number // 1000}.{number % 1000:03d}.00"


def parse_version_label(label: str) -> int:
    """The number behind a label: "18.523.00" -> 18523; VersionLabelError for anything else."""
    match = _LABEL.match(label) if isinstance(label, str) else None
    if not match:
        raise VersionLabelError(f"{label!r} is not a version such as 18.523.00")
    return int(match[1]) * 1000 + int(match[2])


def reported_number(value: object) -> int | None:
    """A version as an agent reported it (a number, digits, or a label); None when it cannot be read."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    if is_ascii_number(value.strip()):
        return int(value.strip())
    try:
        return parse_version_label(value)
    except VersionLabelError:
        return None
