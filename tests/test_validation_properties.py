"""Properties of boltlink.validation over generated input, beyond tests/test_validation.py's examples.

Whatever the input, a check either returns a value that keeps every rule or
raises InvalidInput naming the field: never another exception, which the API
would answer with a 500.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta, timezone
from unittest import mock
from urllib.parse import urlsplit

from hypothesis import example, given, settings
from hypothesis import strategies as st

from boltlink import validation
from boltlink.errors import InvalidInput
from boltlink.validation import (
    GENERATED_SLUG_ALPHABET,
    RESERVED_SLUGS,
    SLUG_MAX_LENGTH,
    OwnHost,
    check_slug,
    check_url,
    generate_slug,
)

MAX = 4096
DOCUMENTED_SLUG = re.compile(r"[A-Za-z0-9_-]{1,64}")  # README: letters, digits, - and _, 1 to 64 characters

# URLs from parts, so that both accepted and refused ones come up often.
schemes = st.sampled_from(["http", "https", "HTTP", "hTTps", "ftp", "javascript", "data", "file", "", "http:"])
labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
hosts = st.one_of(
    st.lists(labels, min_size=1, max_size=4).map(".".join),
    st.sampled_from(["bücher.de", "EXAMPLE.com.", "xn--bcher-kva.de", "127.0.0.1", "[::1]", "[2001:db8::1]",
                     "999.1.1.1", "[::1", "a..b", "-a.com", "a_b.com", "", " ", "ex ample.com", "ex\\ample.com"]),
    st.text(max_size=12),
)
ports = st.one_of(st.just(""), st.integers(0, 70000).map(lambda p: f":{p}"), st.sampled_from([":", ":x", ":-1"]))
userinfo = st.sampled_from(["", "", "", "user@", "user:pw@", ":@", "@"])
paths = st.one_of(st.just(""), st.text(max_size=30).map(lambda t: "/" + t),
                  st.from_regex(r"(/[a-zA-Z0-9._~%!$&'()*+,;=:@-]{0,10}){0,3}(\?[a-z=&]{0,10})?(#[a-z]{0,5})?",
                                fullmatch=True))
built_urls = st.builds(lambda s, u, h, p, rest: f"{s}://{u}{h}{p}{rest}", schemes, userinfo, hosts, ports, paths)
any_url = st.one_of(built_urls, st.text(max_size=60), built_urls.map(lambda u: f"  {u} "))


def accepted(url: str, **rules: object) -> str | None:
    """check_url's answer, or None when it refuses; any refusal must be an InvalidInput on the field."""
    try:
        return check_url(url, max_length=rules.pop("max_length", MAX), **rules)  # type: ignore[arg-type]
    except InvalidInput as exc:
        assert [e.field for e in exc.errors] == ["url"], exc.errors
        assert exc.errors[0].message
        return None


@settings(max_examples=500)
@given(any_url)
@example("http://[::1")  # urlsplit raises ValueError on an unbalanced bracket
@example("http://example.com:99999/")  # parts.port raises ValueError
@example("http://" + "a" * 64 + ".com/")  # an over-long label: the IDNA codec raises UnicodeError
@example("http://xn--a.com/")  # an invalid punycode label
def test_every_url_is_accepted_with_every_rule_kept_or_refused_on_its_field(url: str) -> None:
    result = accepted(url)
    if result is None:
        return
    parts = urlsplit(result)
    assert parts.scheme.lower() in ("http", "https")
    assert parts.hostname
    assert parts.username is None and parts.password is None
    assert len(result) <= MAX
    assert not any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in result)
    assert "\\" not in result
    assert result == url.strip(" ")  # trimmed of surrounding spaces, otherwise kept as given
    assert check_url(result, max_length=MAX) == result  # idempotent


@given(built_urls)
def test_an_accepted_url_one_character_over_the_limit_is_refused(url: str) -> None:
    result = accepted(url)
    if result is None or len(result) < 2:
        return
    assert accepted(result, max_length=len(result)) == result
    assert accepted(result, max_length=len(result) - 1) is None


@given(built_urls)
@example("http://bücher.de:0")  # port 0 was accepted, and then taken as port 80 but not by OwnHost
def test_an_accepted_url_is_refused_once_its_host_is_blocked_or_is_our_own(url: str) -> None:
    result = accepted(url)
    if result is None:
        return
    own = OwnHost.from_url(result)
    assert own is not None
    assert accepted(result, own_hosts=[own]) is None
    hostname = urlsplit(result).hostname or ""
    if not hostname.startswith("["):  # a domain, not an address literal
        assert accepted(result, blocked_domains=[hostname]) is None
        assert accepted(result, blocked_domains=["parent-of." + hostname]) == result


def test_port_zero_is_refused_as_no_server_listens_on_it() -> None:
    assert accepted("http://example.com:0/") is None
    assert accepted("http://example.com:1/") == "http://example.com:1/"


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=3).flatmap(
    lambda pre: st.builds(lambda c, post: pre + c + post,
                          st.sampled_from(["\t", "\n", "\r", "\x00", "\x7f", "\u200b", "\u2028", "\u00a0", "\ufeff"]),
                          st.text(max_size=3))))
def test_a_url_with_any_control_or_invisible_character_inside_is_refused(infix: str) -> None:
    assert accepted(f"https://example.com/{infix}") is None


# Slugs --------------------------------------------------------------------------------------------

any_case = st.sampled_from(sorted(RESERVED_SLUGS)).flatmap(
    lambda word: st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(word, upper, strict=True))))
slugs = st.one_of(st.from_regex(DOCUMENTED_SLUG, fullmatch=True), st.text(max_size=70), any_case,
                  st.text(alphabet="abc-_", min_size=60, max_size=70))


@settings(max_examples=500)
@given(slugs)
def test_a_slug_is_accepted_exactly_when_it_follows_the_documented_rule_and_is_not_reserved(slug: str) -> None:
    should_pass = DOCUMENTED_SLUG.fullmatch(slug) is not None and slug.lower() not in RESERVED_SLUGS
    try:
        kept = check_slug(slug)
    except InvalidInput as exc:
        assert not should_pass, exc.errors
        assert [e.field for e in exc.errors] == ["slug"]
        return
    assert should_pass
    assert kept == slug  # case-sensitive: kept as given


@given(any_case)
def test_every_reserved_word_is_refused_in_every_letter_case(word: str) -> None:
    assert accepted_slug(word) is False


def accepted_slug(slug: str) -> bool:
    try:
        check_slug(slug)
    except InvalidInput:
        return False
    return True


@given(st.integers(min_value=4, max_value=SLUG_MAX_LENGTH))
def test_generated_slugs_are_valid_and_use_only_the_unambiguous_alphabet(length: int) -> None:
    slug = generate_slug(length)
    assert len(slug) == length
    assert set(slug) <= set(GENERATED_SLUG_ALPHABET)
    assert check_slug(slug) == slug


SPELLABLE_RESERVED = sorted(w for w in RESERVED_SLUGS if len(w) >= 4 and set(w) <= set(GENERATED_SLUG_ALPHABET))


def test_some_reserved_words_can_be_spelled_from_the_generated_alphabet() -> None:
    assert {"ready", "admin", "static", "assets", "metrics"} <= set(SPELLABLE_RESERVED)


@given(st.sampled_from(SPELLABLE_RESERVED), st.data())
def test_a_generated_slug_that_spells_a_reserved_word_is_drawn_again(word: str, data: st.DataObject) -> None:
    # Such a link would be shadowed by the route of the same name: the generator must never hand one out.
    retry = data.draw(st.text(GENERATED_SLUG_ALPHABET, min_size=len(word), max_size=len(word)).filter(
        lambda s: s.lower() not in RESERVED_SLUGS))
    draws = iter(word + retry)  # what secrets.choice answers, one character at a time
    with mock.patch.object(validation.secrets, "choice", side_effect=lambda alphabet: next(draws)):
        slug = generate_slug(len(word))
    assert slug == retry


# Numbers and moments ------------------------------------------------------------------------------

@given(st.integers())
def test_a_click_limit_is_accepted_exactly_within_what_every_store_holds(limit: int) -> None:
    try:
        kept = validation.check_max_clicks(limit)
    except InvalidInput as exc:
        assert [e.field for e in exc.errors] == ["max_clicks"]
        assert not 1 <= limit <= validation.MAX_CLICKS_LIMIT
        return
    assert kept == limit and 1 <= limit <= 2**31 - 1


# The first and last moments datetime holds, at any offset: 0001-01-01T00:00+14:00 is before year 1 in UTC.
calendar_ends = st.builds(lambda end, minutes: end.replace(tzinfo=timezone(timedelta(minutes=minutes))),
                          st.sampled_from([datetime.min, datetime.max]), st.integers(-(24 * 60 - 1), 24 * 60 - 1))


@given(st.datetimes(timezones=st.timezones() | st.none()) | calendar_ends)
def test_any_moment_converts_to_utc_without_an_error(moment: datetime) -> None:
    converted = validation.as_utc(moment)
    assert converted is not None and converted.utcoffset() == timedelta(0)
    if moment.tzinfo is None:
        assert converted.replace(tzinfo=None) == moment
