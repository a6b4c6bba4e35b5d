"""JSON text PostgreSQL cannot store: U+0000 and lone surrogates, which JSON may escape (`\\u0000`,
`\\ud800`) but text and jsonb columns refuse (a 500 when stored). Used by the API's parser and the
webhooks before anything is written; only a body whose bytes could carry one is walked."""

from __future__ import annotations

import re
from typing import Any

SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def _unstorable(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def json_holds_unstorable_text(document: Any) -> bool:
    """Whether any string or key of `document` holds U+0000 or a lone surrogate."""
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _unstorable(node):
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False
