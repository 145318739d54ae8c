"""boltlink.apikeys (key format, hashing, scopes) and boltlink.useragent (bots vs people)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace

import pytest

from boltlink.apikeys import DEFAULT_SCOPES, grants, hash_key, key_id_of, key_matches, new_api_key
from boltlink.errors import InvalidInput
from boltlink.store.base import SCOPES
from boltlink.useragent import is_bot

KEY_RE = re.compile(r"bl_([a-z0-9]{8})_([A-Za-z0-9_-]{40,})")


# API keys ----------------------------------------------------------------------------------


def test_new_key_has_the_documented_shape_and_its_id_is_the_record_id() -> None:
    key, record = new_api_key("ci", ["admin"])

    match = KEY_RE.fullmatch(key)
    assert match, key
    assert match.group(1) == record.id
    assert (record.name, record.scopes, record.active) == ("ci", ("admin",), True)


def test_only_the_sha256_of_the_whole_key_is_stored() -> None:
    key, record = new_api_key("ci", ["links:read"])

    assert record.key_hash == hashlib.sha256(key.encode()).hexdigest() == hash_key(key)
    assert key not in repr(record)


def test_every_new_key_is_different() -> None:
    keys = [new_api_key("ci", ["admin"])[0] for _ in range(50)]

    assert len(set(keys)) == 50
    assert len({key_id_of(k) for k in keys}) == 50


def test_key_without_scopes_gets_the_default_scopes() -> None:
    _, record = new_api_key("web", [])

    assert record.scopes == DEFAULT_SCOPES
    assert "admin" not in record.scopes


def test_repeated_scopes_are_stored_once() -> None:
    _, record = new_api_key("ci", ["links:read", "links:read", "stats:read"])

    assert record.scopes == ("links:read", "stats:read")


def test_unknown_scope_is_refused_by_name() -> None:
    with pytest.raises(InvalidInput, match="links:delete") as info:
        new_api_key("ci", ["links:read", "links:delete"])

    assert info.value.errors[0].field == "scope"


@pytest.mark.parametrize("name", ["", "   ", "n" * 65])
def test_key_name_must_be_1_to_64_characters(name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        new_api_key(name, ["admin"])

    assert info.value.errors[0].field == "name"


def test_key_id_of_reads_the_id_of_a_well_formed_key() -> None:
    key, record = new_api_key("ci", ["admin"])

    assert key_id_of(key) == record.id
    assert key_id_of("bl_abcd1234_secret") == "abcd1234"


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "bl_",
        "bl_abcd1234",
        "bl_abcd1234_",
        "xx_abcd1234_secret",
        "abcd1234_secret",
        "bl_abc_1234_secret",
        "bl_abcd12345_secret",
        "Bearer bl_abcd1234_secret",
    ],
)
def test_key_id_of_is_none_for_malformed_keys(presented: str) -> None:
    assert key_id_of(presented) is None


def test_key_matches_only_the_exact_key() -> None:
    key, record = new_api_key("ci", ["admin"])
    other, _ = new_api_key("other", ["admin"])

    assert key_matches(key, record)
    assert not key_matches(other, record)
    assert not key_matches(key[:-1], record)
    assert not key_matches(key + "x", record)
    assert not key_matches(key.upper(), record)


@pytest.mark.parametrize("scope", SCOPES)
def test_admin_grants_every_scope(scope: str) -> None:
    _, record = new_api_key("root", ["admin"])

    assert grants(record, scope)


def test_links_write_implies_links_read_but_not_stats() -> None:
    _, record = new_api_key("writer", ["links:write"])

    assert grants(record, "links:write")
    assert grants(record, "links:read")
    assert not grants(record, "stats:read")
    assert not grants(record, "admin")


def test_stats_read_does_not_imply_links_read() -> None:
    _, record = new_api_key("dashboard", ["stats:read"])

    assert grants(record, "stats:read")
    assert not grants(record, "links:read")
    assert not grants(record, "links:write")


def test_links_read_does_not_imply_links_write() -> None:
    _, record = new_api_key("reader", ["links:read"])

    assert not grants(record, "links:write")


def test_a_record_with_an_unknown_scope_grants_nothing_extra() -> None:
    _, record = new_api_key("reader", ["links:read"])
    odd = replace(record, scopes=("links:*",))

    assert not any(grants(odd, scope) for scope in SCOPES)


# User-Agent -----------------------------------------------------------------------------------

BOTS = {
    "Googlebot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Googlebot smartphone": "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.6367.201 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
    "+http://www.google.com/bot.html)",
    "Bingbot": "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Slack": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Facebook": "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "WhatsApp": "WhatsApp/2.23.20.0 A",
    "Telegram": "TelegramBot (like TwitterBot)",
    "Discord": "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "Twitter": "Twitterbot/1.0",
    "LinkedIn": "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "Pinterest": "Pinterest/0.2 (+https://www.pinterest.com/bot.html)",
    "iMessage": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) "
    "Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0",
}

PEOPLE = {
    "Chrome desktop": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Firefox desktop": "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Safari iPhone": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Chrome Android": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.82 Mobile Safari/537.36",
    "Edge": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
    "curl": "curl/8.5.0",
    # People tapping a link inside these apps: the app names itself, but it is not the preview fetcher.
    "LinkedIn app": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 [LinkedInApp]/9.29.8062",
    "Pinterest app": "Mozilla/5.0 (Linux; Android 13; SM-G991B Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/117.0.0.0 Mobile Safari/537.36 [Pinterest/Android]",
    "Telegram app": "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36 Telegram-Android/10.5.0",
}


@pytest.mark.parametrize("user_agent", BOTS.values(), ids=BOTS.keys())
def test_crawlers_and_link_preview_fetchers_are_bots(user_agent: str) -> None:
    assert is_bot(user_agent)


@pytest.mark.parametrize("user_agent", PEOPLE.values(), ids=PEOPLE.keys())
def test_browsers_and_curl_are_people(user_agent: str) -> None:
    assert not is_bot(user_agent)


@pytest.mark.parametrize("user_agent", [None, "", "   "])
def test_missing_user_agent_counts_as_a_bot(user_agent: str | None) -> None:
    assert is_bot(user_agent)


def test_bot_detection_ignores_case() -> None:
    assert is_bot("GOOGLEBOT/2.1")
    assert is_bot("mozilla/5.0 (compatible; discordbot/2.0)")
