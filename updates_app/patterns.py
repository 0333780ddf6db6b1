"""The pattern file format and incremental patterns.

A pattern file is UTF-8 text, one line per record, every line ending in "\\n":

    UCPATTERN 1 <component-slug> <version-number>
    <record>
    <record>
    ...

The records are signatures (``<16 hex digits> <name>``; any text without a
line break will do) listed once each in byte order. Because the order and the
header are fixed, the set of records plus the header decide the file byte for
byte: that is what lets an incremental reproduce the full file exactly.

An incremental pattern turns version A into version B of the same component:

    UCINCR 1 <component-slug> <from-number> <to-number> <sha256 of the full file B>
    -<record removed from A>
    ...
    +<record added in B>
    ...

Removed records come first, then added ones, each group in byte order.
Applying it: read A's records, drop the removed ones, add the added ones, sort,
and write B's header. The result is checked against the sha256 in the header.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterable
from dataclasses import dataclass

from updates_app.version_labels import is_ascii_number

PATTERN_MAGIC = "UCPATTERN"
INCREMENTAL_MAGIC = "UCINCR"
FORMAT_VERSION = "1"


class PatternError(ValueError):
    """A file that is not a valid pattern or incremental, or does not apply."""


@dataclass(frozen=True)
class Pattern:
    slug: str
    number: int
    records: frozenset[str]

    def render(self) -> bytes:
        return render_pattern(self.slug, self.number, self.records)


@dataclass(frozen=True)
class Incremental:
    slug: str
    from_number: int
    to_number: int
    target_sha256: str
    removed: frozenset[str]
    added: frozenset[str]

    def render(self) -> bytes:
        lines = [
            f"{INCREMENTAL_MAGIC} {FORMAT_VERSION} {self.slug} {self.from_number} {self.to_number} {self.target_sha256}"
        ]
        lines += ["-" + record for record in sorted(self.removed)]
        lines += ["+" + record for record in sorted(self.added)]
        return ("\n".join(lines) + "\n").encode()


def _check_record(record: str) -> None:
    if not record or "\n" in record or "\r" in record:
        raise PatternError("a record must be non-empty text without line breaks")


def render_pattern(slug: str, number: int, records: Iterable[str]) -> bytes:
    ordered = sorted(set(records))
    for record in ordered:
        _check_record(record)
    lines = [f"{PATTERN_MAGIC} {FORMAT_VERSION} {slug} {number}", *ordered]
    return ("\n".join(lines) + "\n").encode()


def _lines(data: bytes) -> list[str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PatternError("not UTF-8 text") from None
    if not text.endswith("\n"):
        raise PatternError("the file must end with a line break")
    return text[:-1].split("\n")


def parse_pattern(data: bytes) -> Pattern:
    """Parse a full pattern file; only the canonical form is accepted."""
    lines = _lines(data)
    header = lines[0].split(" ")
    if len(header) != 4 or header[0] != PATTERN_MAGIC or header[1] != FORMAT_VERSION:
        raise PatternError(f"the first line must be '{PATTERN_MAGIC} {FORMAT_VERSION} <component> <version>'")
    if not is_ascii_number(header[3]):
        raise PatternError("the version number in the header must be a whole number")
    records = lines[1:]
    for record in records:
        _check_record(record)
    if any(a >= b for a, b in itertools.pairwise(records)):
        raise PatternError("records must be unique and sorted")
    return Pattern(slug=header[2], number=int(header[3]), records=frozenset(records))


def parse_incremental(data: bytes) -> Incremental:
    lines = _lines(data)
    header = lines[0].split(" ")
    if len(header) != 6 or header[0] != INCREMENTAL_MAGIC or header[1] != FORMAT_VERSION:
        raise PatternError(
            f"the first line must be '{INCREMENTAL_MAGIC} {FORMAT_VERSION} <component> <from> <to> <sha256>'"
        )
    if not (is_ascii_number(header[3]) and is_ascii_number(header[4])):
        raise PatternError("version numbers in the header must be whole numbers")
    removed: set[str] = set()
    added: set[str] = set()
    for line in lines[1:]:
        sign, record = line[:1], line[1:]
        _check_record(record)
        if sign == "-":
            removed.add(record)
        elif sign == "+":
            added.add(record)
        else:
            raise PatternError("every line after the header must start with '-' or '+'")
    return Incremental(
        slug=header[2],
        from_number=int(header[3]),
        to_number=int(header[4]),
        target_sha256=header[5],
        removed=frozenset(removed),
        added=frozenset(added),
    )


def make_incremental(old: Pattern, new: Pattern) -> Incremental:
    if old.slug != new.slug:
        raise PatternError("an incremental joins two versions of the same component")
    return Incremental(
        slug=new.slug,
        from_number=old.number,
        to_number=new.number,
        target_sha256=hashlib.sha256(new.render()).hexdigest(),
        removed=old.records - new.records,
        added=new.records - old.records,
    )


def apply_incremental(base: bytes, incremental: bytes) -> bytes:
    """The full file the incremental leads to; raises PatternError unless it matches exactly."""
    old = parse_pattern(base)
    inc = parse_incremental(incremental)
    if (old.slug, old.number) != (inc.slug, inc.from_number):
        raise PatternError(f"this incremental applies to {inc.slug} {inc.from_number}, not {old.slug} {old.number}")
    if not inc.removed <= old.records or inc.added & old.records:
        raise PatternError("the incremental does not match the records of the base file")
    result = render_pattern(inc.slug, inc.to_number, (old.records - inc.removed) | inc.added)
    if hashlib.sha256(result).hexdigest() != inc.target_sha256:
        raise PatternError("the result does not match the sha256 the incremental names")
    return result


def revert(target: Pattern, inc: Incremental) -> Pattern:
    """The source version of an incremental, recovered from its target (incrementals are exact)."""
    return Pattern(slug=inc.slug, number=inc.from_number, records=(target.records - inc.added) | inc.removed)


def _signature(rng: random.Random) -> str:
    family = rng.choice(("TROJ", "WORM", "BKDR", "PE", "HTML", "JS", "VBS", "RANSOM", "ADW", "TSPY"))
    return f"{rng.getrandbits(64):016x} {family}_{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{rng.randrange(10**6):06d}.{rng.choice('ABCDE')}"


def generate_initial(slug: str, number: int, *, records: int) -> Pattern:
    rng = random.Random(f"{slug}:{number}:initial")
    return Pattern(slug=slug, number=number, records=frozenset(_signature(rng) for _ in range(records)))


def generate_next(previous: Pattern, *, added: int, removed: int) -> Pattern:
    """The vendor's next release: new signatures, a few retired ones."""
    number = previous.number + 1
    rng = random.Random(f"{previous.slug}:{number}")
    retired = set(rng.sample(sorted(previous.records), min(removed, len(previous.records))))
    fresh = {_signature(rng) for _ in range(added)}
    return Pattern(slug=previous.slug, number=number, records=frozenset((previous.records - retired) | fresh))
