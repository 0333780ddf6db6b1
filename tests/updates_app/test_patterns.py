"""The pattern format: an incremental reproduces the full file byte for byte."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from updates_app.patterns import (
    Pattern,
    PatternError,
    apply_incremental,
    generate_initial,
    generate_next,
    make_incremental,
    parse_incremental,
    parse_pattern,
    render_pattern,
    revert,
)

records = st.frozensets(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), min_size=1, max_size=30),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(old=records, new=records, a=st.integers(0, 10**6), step=st.integers(1, 20))
def test_applying_an_incremental_reproduces_the_full_file_byte_for_byte(old, new, a, step):
    source = Pattern("virus_pattern", a, old)
    target = Pattern("virus_pattern", a + step, new)
    inc = make_incremental(source, target).render()

    result = apply_incremental(source.render(), inc)

    assert result == target.render()
    assert hashlib.sha256(result).hexdigest() == parse_incremental(inc).target_sha256


@settings(max_examples=100, deadline=None)
@given(old=records, new=records)
def test_an_incremental_can_be_reverted_to_its_source(old, new):
    source = Pattern("p", 1, old)
    target = Pattern("p", 2, new)
    assert revert(target, make_incremental(source, target)) == source


@settings(max_examples=100, deadline=None)
@given(recs=records)
def test_parse_and_render_round_trip(recs):
    data = render_pattern("p", 7, recs)
    assert parse_pattern(data).render() == data


def test_generated_release_adds_and_retires_records():
    first = generate_initial("virus_pattern", 100, records=500)
    second = generate_next(first, added=20, removed=3)
    assert second.number == 101
    assert len(second.records - first.records) == 20
    assert len(first.records - second.records) == 3
    # Deterministic: the same release twice is the same file.
    assert generate_next(first, added=20, removed=3).render() == second.render()


def test_a_1_behind_incremental_is_much_smaller_than_the_full_file():
    first = generate_initial("virus_pattern", 100, records=5000)
    second = generate_next(first, added=50, removed=5)
    assert len(make_incremental(first, second).render()) * 20 < len(second.render())


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"UCPATTERN 1 p 1",  # no final line break
        b"NOPE 1 p 1\n",
        b"UCPATTERN 1 p x\n",
        b"UCPATTERN 1 p 1\nb\na\n",  # not sorted
        b"UCPATTERN 1 p 1\na\na\n",  # duplicate
        b"UCPATTERN 1 p 1\n\n",  # empty record
        b"\xff\xfe\n",
    ],
)
def test_malformed_pattern_files_are_refused(data):
    with pytest.raises(PatternError):
        parse_pattern(data)


def test_an_incremental_for_another_version_is_refused():
    a = Pattern("p", 1, frozenset({"x"}))
    b = Pattern("p", 2, frozenset({"y"}))
    c = Pattern("p", 3, frozenset({"z"}))
    inc = make_incremental(b, c).render()
    with pytest.raises(PatternError, match="applies to p 2"):
        apply_incremental(a.render(), inc)


def test_a_tampered_incremental_is_refused():
    a = Pattern("p", 1, frozenset({"x"}))
    b = Pattern("p", 2, frozenset({"x", "y"}))
    inc = make_incremental(a, b).render().replace(b"+y", b"+q")
    with pytest.raises(PatternError, match="sha256"):
        apply_incremental(a.render(), inc)


@pytest.mark.parametrize("data", [b"UCINCR 1 p 1 2 abc\n*x\n", b"UCINCR 1 p 1\n", b"UCINCR 1 p a 2 abc\n"])
def test_malformed_incrementals_are_refused(data):
    with pytest.raises(PatternError):
        parse_incremental(data)
