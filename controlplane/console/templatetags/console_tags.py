"""Template tags and filters of the console pages."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.template.loader import render_to_string
from django.utils.html import format_html_join

from controlplane.kernel import navigation
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


@register.simple_tag(takes_context=True)
def banners(context: template.Context) -> str:
    """The page-wide banners the apps registered (an engaged kill switch), for the viewer's capabilities.

    Each banner's template decides whether it shows anything; its reads run here, once per render.
    """
    request = context.get("request")
    held = getattr(request, "console_capabilities", frozenset())
    rendered = [
        render_to_string(banner.template, banner.context(request), request=request)
        for banner in navigation.banners(capabilities=held)
    ]
    return format_html_join("", "{}", ((html,) for html in rendered))


@register.simple_tag(takes_context=True)
def detail_panels(context: template.Context, page: str, obj: Any) -> str:
    """The panels other apps registered for `page` (kernel.navigation.register_detail_panel), each given
    the object the page shows, for the viewer's capabilities."""
    request = context.get("request")
    held = getattr(request, "console_capabilities", frozenset())
    rendered = [
        render_to_string(panel.template, panel.context(request, obj), request=request)
        for panel in navigation.detail_panels(page=page, capabilities=held)
    ]
    return format_html_join("", "{}", ((html,) for html in rendered))
