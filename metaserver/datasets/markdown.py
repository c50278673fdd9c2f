"""Dataset descriptions: Markdown stored raw, rendered to sanitized HTML."""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

# CommonMark plus tables and strikethrough; raw HTML in the source is escaped by the
# parser and whatever still gets through is removed by nh3's allow-list.
_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "strong",
    "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "td": {"align"},
    "th": {"align"},
    "code": {"class"},
}
MAX_DESCRIPTION_CHARS = 100_000


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
        ["table", "strikethrough"]
    )


def render_markdown(text: str) -> str:
    """Safe HTML for `text`: no scripts or event handlers; http(s)/mailto links."""
    if not text:
        return ""
    html = _parser().render(text)
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
