"""Pagehook example plugin in Python: post pages whose title matches a regex to Slack.

Built into a WebAssembly component with componentize-py against wit/plugin.wit
(world `plugin` of `pagehook:plugin@0.3.0`); see build.sh.

Settings (from the binding):
  title-pattern  required  Python regular expression, searched anywhere in the
                           title (use ^...$ to anchor, (?i) to ignore case)
  channel        required  Slack channel to post to, e.g. #eng
  message        optional  text put before the page link (default "Matching page")
"""

import re
from typing import Dict, List, Optional, Tuple

import wit_world
from componentize_py_types import Err
from wit_world.imports.types import (
    Action,
    Action_PostSlack,
    Event,
    EventKind,
    LogLevel,
    SlackMessage,
)

DEFAULT_MESSAGE = "Matching page"

# Event kinds this plugin acts on; plugin.toml subscribes to the same ones, so
# anything else only arrives through `plugin run` with a hand-made event.
KINDS = (EventKind.PAGE_CREATED, EventKind.PAGE_UPDATED, EventKind.BLOG_CREATED)

# Confluence update triggers that are not an author's edit (design.md: skip by default).
IGNORED_TRIGGERS = ("link_refactoring", "view_page")


def _slack_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_url(url: str) -> str:
    """A URL that cannot end or split a `<url|label>` link: `&` escaped, and
    `<`, `>`, `|`, spaces and controls percent-encoded."""
    out = []
    for c in url.strip():
        if c == "&":
            out.append("&amp;")
        elif c in "<>| " or ord(c) < 0x20 or ord(c) == 0x7F:
            out.append("".join(f"%{b:02X}" for b in c.encode("utf-8")))
        else:
            out.append(c)
    return "".join(out)


def _required(settings: Dict[str, str], name: str) -> str:
    value = settings.get(name, "").strip()
    if not value:
        raise Err(f"setting `{name}` is required")
    return value


class WitWorld(wit_world.WitWorld):
    def handle(self, event: Event, settings: List[Tuple[str, str]]) -> List[Action]:
        # Settings first: a misconfigured binding fails on every event, so the
        # admin sees it at once rather than on the first matching page.
        conf = dict(settings)
        pattern_src = _required(conf, "title-pattern")
        channel = _required(conf, "channel")
        message = conf.get("message", "").strip() or DEFAULT_MESSAGE
        try:
            pattern = re.compile(pattern_src)
        except re.error as e:
            raise Err(f"setting `title-pattern` is not a valid regular expression: {e} (pattern: {pattern_src!r})")

        skip = self._skip_reason(event)
        if skip is not None:
            wit_world.log(LogLevel.DEBUG, f"event {event.id}: skipped, {skip}")
            return []

        content = event.content
        assert content is not None  # _skip_reason checked it
        if pattern.search(content.title) is None:
            wit_world.log(LogLevel.DEBUG, f"event {event.id}: title {content.title!r} does not match {pattern_src!r}")
            return []

        space = content.space_name or content.space_key
        kind = "blog post" if content.content_type == "blogpost" else "page"
        text = (
            f"{_slack_escape(message)}: <{_slack_url(content.url)}|{_slack_escape(content.title)}>"
            f" ({kind} in {_slack_escape(space)})"
        )
        wit_world.log(LogLevel.INFO, f"event {event.id}: title {content.title!r} matches, posting to {channel}")
        return [Action_PostSlack(SlackMessage(channel=channel, text=text, blocks=None, thread_key=None))]

    @staticmethod
    def _skip_reason(event: Event) -> Optional[str]:
        if event.kind not in KINDS:
            return f"kind {event.kind.name.lower().replace('_', '-')} is not handled"
        if event.by_pagehook:
            return "caused by Pagehook itself"
        if event.content is None:
            return "no content"
        if event.content.minor_edit:
            return "minor edit"
        if event.update_trigger in IGNORED_TRIGGERS:
            return f"update trigger {event.update_trigger}"
        if event.content.restricted:
            return "content is view-restricted"
        return None
