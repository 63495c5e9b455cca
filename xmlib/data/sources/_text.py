"""Text clean-up shared by the readers."""

from __future__ import annotations

import html


def clean_text(text: str) -> str:
    """One line: HTML entities decoded, runs of white space collapsed to one space, stripped."""
    return " ".join(html.unescape(text).split())
