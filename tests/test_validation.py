"""boltlink.validation: what a target URL, slug, tag and title may be."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boltlink.errors import InvalidInput
from boltlink.validation import (
    GENERATED_SLUG_ALPHABET,
    MAX_TAGS,
    RESERVED_SLUGS,
    SLUG_MAX_LENGTH,
    TAG_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    OwnHost,
    check_slug,
    check_tags,
    check_title,
    check_url,
    generate_slug,
)

MAX = 4096


def refusal(url: str, **rules: object) -> str:
    """The message check_url refuses url with; fails the test when it is accepted."""
    with pytest.raises(InvalidInput) as info:
        check_url(url, max_length=rules.pop("max_length", MAX), **rules)  # type: ignore[arg-type]
    assert [e.field for e in info.value.errors] == ["url"]
    return info.value.errors[0].message


# check_url: refused ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "jav\nascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "vbscript:msgbox(1)",
        "ftp://example.com/file",
        "https:\\\\evil.com",
        "https://example.com\\@evil.com/",
        "https://",
        "https:example.com",
        "//example.com/no-scheme",
        "example.com",
        "",
        "   ",
    ],
)
def test_refuses_dangerous_and_non_web_urls(url: str) -> None:
    refusal(url)


def test_refuses_credentials_in_url() -> None:
    assert "user name or password" in refusal("http://user:pw@host.example/")
    assert "user name or password" in refusal("http://user@host.example/")


def test_refuses_urls_longer_than_the_limit() -> None:
    url = "https://example.com/" + "a" * 30

    assert check_url(url, max_length=len(url)) == url
    assert "at most" in refusal(url + "b", max_length=len(url))


@pytest.mark.parametrize(
    "url",
    [
        "https://exa$mple.com/",
        "https://-leading-hyphen.com/",
        "https://a..b.com/",
        "https://ex%61mple.com/",
        "https://" + "a" * 64 + ".com/",
        "http://[::1/",
        "https://example.com:99999/",
        "https://example.com:port/",
    ],
)
def test_refuses_invalid_hosts_and_ports(url: str) -> None:
    refusal(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/\x00",
        "https://example.com/\x1b[31m",
        "https://example.com/\x7f",
        "https://exa\u200bmple.com/",  # zero-width space: two URLs that look the same
        "https://example.com/\u200b",
        "https://example.com/\u202e",  # right-to-left override
        "https://example.com/a b",
    ],
)
def test_refuses_control_invisible_and_space_characters(url: str) -> None:
    assert "control characters" in refusal(url)


# check_url: own host and blocked domains --------------------------------------------


def test_refuses_links_to_the_shortener_itself() -> None:
    own = [OwnHost.from_url("https://s.example.com")]

    for url in ("https://s.example.com/x", "https://S.EXAMPLE.COM./x", "http://s.example.com:443/x"):
        assert "this link shortener" in refusal(url, own_hosts=own)
    assert check_url("https://example.com/x", max_length=MAX, own_hosts=own)


def test_own_host_with_a_port_refuses_only_that_port() -> None:
    own = [OwnHost.from_url("http://localhost:8080")]

    refusal("http://localhost:8080/x", own_hosts=own)
    assert check_url("http://localhost/x", max_length=MAX, own_hosts=own)
    assert check_url("http://localhost:9090/x", max_length=MAX, own_hosts=own)


def test_own_host_is_matched_in_any_spelling() -> None:
    refusal("https://xn--bcher-kva.de/x", own_hosts=[OwnHost.from_url("https://bücher.de")])
    refusal("https://bücher.de/x", own_hosts=[OwnHost.from_url("https://xn--bcher-kva.de")])
    refusal("http://[0:0::1]:5000/x", own_hosts=[OwnHost.from_url("http://[::1]:5000")])


def test_blocked_domain_and_its_subdomains_are_refused() -> None:
    for url in ("https://evil.com/", "https://a.b.evil.com/x", "https://EVIL.COM./", "https://evil.com:8443/"):
        assert "evil.com is blocked" in refusal(url, blocked_domains=["evil.com"])


def test_blocking_a_domain_leaves_lookalike_names_alone() -> None:
    for url in ("https://notevil.com/", "https://evil.com.example.org/", "https://example.org/evil.com"):
        assert check_url(url, max_length=MAX, blocked_domains=["evil.com"]) == url


def test_blocked_domain_matches_case_and_idn_spelling() -> None:
    refusal("https://evil.com/", blocked_domains=["EVIL.com."])
    refusal("https://shop.bücher.de/", blocked_domains=["bücher.de"])
    refusal("https://bücher.de/", blocked_domains=["xn--bcher-kva.de"])


# check_url: accepted ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "https://example.com/",
        "HTTPS://Example.COM/Path",
        "https://sub.example.co.uk/a/b/c.html",
        "https://bücher.de/",
        "https://xn--bcher-kva.de/",
        "http://192.0.2.10/",
        "http://[2001:db8::1]/",
        "http://[::1]:8080/x",
        "https://example.com:8443/x",
        "https://example.com/search?q=a%20b&lang=en",
        "https://example.com/page#section-2",
        "https://example.com/?utm_source=x#frag?not-query",
    ],
)
def test_accepts_ordinary_web_urls(url: str) -> None:
    assert check_url(url, max_length=MAX) == url


def test_surrounding_spaces_are_trimmed() -> None:
    assert check_url("  https://example.com/  ", max_length=MAX) == "https://example.com/"


def test_field_name_is_reported_as_given() -> None:
    with pytest.raises(InvalidInput) as info:
        check_url("javascript:alert(1)", max_length=MAX, field="items.3.url")

    assert info.value.errors[0].field == "items.3.url"


@given(
    st.text(),
    st.sampled_from([chr(c) for c in range(0x20)] + ["\x7f", "\x85", "\u200b", "\u2028", "\ufeff"]),
    st.text(),
)
def test_any_url_with_a_control_character_is_refused(before: str, control: str, after: str) -> None:
    with pytest.raises(InvalidInput):
        check_url(f"https://example.com/{before}{control}{after}", max_length=MAX)


# slugs -----------------------------------------------------------------------------------


def slug_error(slug: str) -> str:
    with pytest.raises(InvalidInput) as info:
        check_slug(slug)
    assert [e.field for e in info.value.errors] == ["slug"]
    return info.value.errors[0].message


@pytest.mark.parametrize("slug", ["a", "abc", "ABC", "a-b_c", "2024-launch", "x" * SLUG_MAX_LENGTH])
def test_valid_slugs_are_kept_exactly(slug: str) -> None:
    assert check_slug(slug) == slug


def test_slug_case_is_preserved() -> None:
    assert (check_slug("AbC"), check_slug("abc")) == ("AbC", "abc")


@pytest.mark.parametrize("slug", ["a b", "a/b", "a.b", "é", "abc\n", "a%20", "../x", "a?b"])
def test_slugs_with_other_characters_are_refused(slug: str) -> None:
    assert "may contain only" in slug_error(slug)


def test_slug_length_limits() -> None:
    assert "empty" in slug_error("")
    assert "at most 64" in slug_error("x" * (SLUG_MAX_LENGTH + 1))


@pytest.mark.parametrize("word", sorted(w for w in RESERVED_SLUGS if "." not in w))
def test_reserved_words_are_refused_in_any_case(word: str) -> None:
    for spelling in (word, word.upper(), word.capitalize()):
        assert "reserved" in slug_error(spelling)


def test_common_reserved_spellings() -> None:
    for slug in ("API", "Health", "ready", "Docs", "METRICS"):
        slug_error(slug)


def test_generated_slugs_have_the_length_and_no_lookalike_characters() -> None:
    slugs = [generate_slug(7) for _ in range(200)]

    assert all(len(s) == 7 for s in slugs)
    used = set("".join(slugs))
    assert used <= set(GENERATED_SLUG_ALPHABET)
    assert not used & set("0Oo1lI")
    assert len(set(slugs)) == len(slugs)


def test_generated_alphabet_is_letters_and_digits_without_lookalikes() -> None:
    expected = set(string.ascii_letters + string.digits) - set("0Oo1lI")

    assert set(GENERATED_SLUG_ALPHABET) == expected


@given(st.integers(min_value=4, max_value=SLUG_MAX_LENGTH))
def test_any_generated_slug_passes_check_slug(length: int) -> None:
    slug = generate_slug(length)

    assert check_slug(slug) == slug


# titles and tags --------------------------------------------------------------------------


def test_title_is_trimmed_and_blank_means_none() -> None:
    assert check_title("  Launch notes  ") == "Launch notes"
    assert check_title("   ") is None
    assert check_title(None) is None


def test_title_length_limit() -> None:
    assert check_title("t" * TITLE_MAX_LENGTH) == "t" * TITLE_MAX_LENGTH
    with pytest.raises(InvalidInput, match="title"):
        check_title("t" * (TITLE_MAX_LENGTH + 1))


def test_title_with_control_character_is_refused() -> None:
    with pytest.raises(InvalidInput, match="control"):
        check_title("bad\x00title")


def test_tags_are_trimmed_and_deduplicated_in_order() -> None:
    assert check_tags([" b ", "a", "b"]) == ("b", "a")
    assert check_tags(None) == ()


@pytest.mark.parametrize("tag", ["", "   ", "t" * (TAG_MAX_LENGTH + 1), "two words", "a,b", "tab\there"])
def test_bad_tags_are_refused(tag: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_tags([tag])

    assert info.value.errors[0].field == "tags"


def test_tag_count_limit() -> None:
    assert len(check_tags([f"t{i}" for i in range(MAX_TAGS)])) == MAX_TAGS
    with pytest.raises(InvalidInput, match=f"at most {MAX_TAGS}"):
        check_tags([f"t{i}" for i in range(MAX_TAGS + 1)])
