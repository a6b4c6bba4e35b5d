"""Template filters of the console pages."""

from __future__ import annotations

import json
from typing import Any

from django import template

from controlplane.kernel.reasons import CATALOGUE

register = template.Library()


@register.filter
def pretty_json(value: Any) -> str:
    """JSON, indented, keys sorted (what an operator reads when deciding)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@register.filter
def reason_description(code: str) -> str:
    """The catalogue's description of a reason code (empty for an unknown code)."""
    entry = CATALOGUE.get(code)
    return entry.description if entry else ""


@register.filter
def get_item(mapping: dict, key: Any) -> Any:
    return mapping.get(key) if mapping else None
