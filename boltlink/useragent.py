"""Telling crawlers and link-preview fetchers from people, by User-Agent.

Bots don't consume a link's max_clicks and are counted apart in statistics.
A preview fetcher (Slack, WhatsApp, iMessage...) requests a link the moment
it is pasted, before any person clicks, so it must not count as a human.
"""

from __future__ import annotations

import re
from functools import lru_cache

# "(?<!cu)": CUBOT is a phone maker whose handsets say so in their User-Agent.
_BOT_RE = re.compile(
    r"(?<!cu)bot\b|bot/|crawl|spider|slurp|scrap|fetch|preview|monitor|archiver|"
    r"facebookexternalhit|facebookcatalog|meta-externalagent|embedly|quora link|"
    # LinkedIn, Pinterest and Telegram name themselves in their in-app browsers too: match only their fetchers.
    r"whatsapp|telegrambot|discord|skypeuripreview|linkedinbot|pinterestbot|pinterest/0\.|vkshare|redditbot|"
    r"mastodon|bluesky|w3c_validator|lighthouse|headlesschrome|phantomjs|"
    r"google-inspectiontool|googleother|feedfetcher|mediapartners|apis-google|"
    r"yahoo! slurp|baiduspider|yandex|duckduckgo|petalbot|bytespider|gptbot|chatgpt|"
    r"claudebot|anthropic|perplexity|ccbot|ahrefs|semrush|mj12|dotbot|uptimerobot|pingdom",
    re.IGNORECASE,
)


@lru_cache(maxsize=4096)
def is_bot(user_agent: str | None) -> bool:
    """True for known crawlers and preview fetchers; a missing User-Agent counts as a bot."""
    if not user_agent or not user_agent.strip():
        return True
    return _BOT_RE.search(user_agent) is not None
