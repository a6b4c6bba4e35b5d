"""What each app contributes to the console shell: navigation entries, dashboard panels and page banners.

Model-free, like the rest of the kernel. Apps register from their `AppConfig.ready()`; the console's layout
(a context processor), its dashboard and its banner tag read the registries. The console therefore names no
app: adding an app's page or panel touches only that app.

- `register_nav(app=..., label=..., url_name=..., capability=..., order=..., count=...)`: a link in the top
  bar, shown to a viewer holding `capability` (None: any console user); `count(request) -> int` (optional)
  is what needs the viewer there (pending approvals, open incidents, items in a review queue), shown as a
  badge beside the label and refreshed by htmx (`nav_counts`).
- `register_panel(name=..., template=..., context=..., capability=..., order=...)`: a dashboard panel. The
  template is a whole page with a `{% partialdef panel %}`: the dashboard includes the fragment, and
  `/panels/<name>/` serves page or fragment (`kernel.pages.render_page`) for its htmx refresh.
- `register_banner(name=..., template=..., context=..., capability=..., order=...)`: something every page that
  renders `{% banners %}` must shout (an engaged kill switch).
- `register_console_urls(app=..., prefix=..., urlconf=...)`: where the app's console pages are mounted; the
  console's URLconf includes them, so an app adds its pages without editing the console.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

PanelContext = Callable[[HttpRequest], dict[str, Any]]
# (request of a viewer holding the entry's capability) -> how many things wait there; one cheap query.
NavCount = Callable[[HttpRequest], int]


@dataclass(frozen=True)
class NavEntry:
    """A link of the console's top bar."""

    app: str
    label: str
    url_name: str  # "namespace:name", reversed without arguments
    capability: str | None
    order: int
    current: tuple[str, ...]  # the view names ("namespace:name") under which the entry is the current page
    count: NavCount | None = None  # what waits there for the viewer (a badge); None: no badge
    count_label: str = ""  # what the count counts, for the badge's title ("pending approvals")


@dataclass(frozen=True)
class Panel:
    """A dashboard panel: a template with a `panel` partial, and the reads that fill it."""

    name: str
    template: str
    context: PanelContext
    capability: str | None
    order: int


@dataclass(frozen=True)
class Banner:
    """A page-wide alert: a template, and the reads that fill it (an empty template renders nothing)."""

    name: str
    template: str
    context: PanelContext
    capability: str | None
    order: int


_nav: dict[str, NavEntry] = {}
_panels: dict[str, Panel] = {}
_banners: dict[str, Banner] = {}


def register_nav(
    *,
    app: str,
    label: str,
    url_name: str,
    capability: str | None,
    order: int,
    current: Iterable[str] = (),
    count: NavCount | None = None,
    count_label: str = "",
) -> None:
    """Add a top-bar link to `url_name`; `current` lists further view names that highlight it; `count`
    (optional) gives the badge beside it: how many things wait there for the viewer."""
    _nav[url_name] = NavEntry(
        app=app,
        label=label,
        url_name=url_name,
        capability=capability,
        order=order,
        current=(url_name, *current),
        count=count,
        count_label=count_label,
    )


def register_panel(
    *, name: str, template: str, context: PanelContext, capability: str | None, order: int
) -> None:
    """Add a dashboard panel, shown (and served at `/panels/<name>/`) to a viewer holding `capability`."""
    _panels[name] = Panel(name=name, template=template, context=context, capability=capability, order=order)


def register_banner(
    *, name: str, template: str, context: PanelContext, capability: str | None, order: int
) -> None:
    """Add a page-wide banner, rendered where a page asks for `{% banners %}`."""
    _banners[name] = Banner(name=name, template=template, context=context, capability=capability, order=order)


def _visible(entries: Iterable[Any], capabilities: frozenset[str]) -> list[Any]:
    shown = [e for e in entries if e.capability is None or e.capability in capabilities]
    return sorted(shown, key=lambda e: (e.order, getattr(e, "name", getattr(e, "url_name", ""))))


def nav_entries(*, capabilities: frozenset[str]) -> list[NavEntry]:
    """The links a viewer holding `capabilities` sees, in order."""
    return _visible(_nav.values(), capabilities)


def nav_counts(request: HttpRequest, *, capabilities: frozenset[str]) -> dict[str, int]:
    """{url_name: count} of the entries a viewer holding `capabilities` sees that count something; each
    count function is called only for a viewer who may open its page (one query each)."""
    return {
        entry.url_name: entry.count(request)
        for entry in nav_entries(capabilities=capabilities)
        if entry.count is not None
    }


def panels(*, capabilities: frozenset[str]) -> list[Panel]:
    """The dashboard panels a viewer holding `capabilities` sees, in order."""
    return _visible(_panels.values(), capabilities)


def panel_get(name: str) -> Panel | None:
    return _panels.get(name)


def banners(*, capabilities: frozenset[str]) -> list[Banner]:
    """The banners a viewer holding `capabilities` is shown, in order."""
    return _visible(_banners.values(), capabilities)


# --- console pages ------------------------------------------------------------------------------------

_CONSOLE_URLS: dict[str, tuple[str, str]] = {}


def register_console_urls(*, app: str, prefix: str, urlconf: str) -> None:
    """Mount an app's console pages (`urlconf`, e.g. "approvals.urls_console") at `prefix` ("approvals/";
    "" for pages at the top level). The console's URLconf includes every registered app, in the order the
    apps were registered (INSTALLED_APPS), under the app's own namespace."""
    existing = _CONSOLE_URLS.get(app)
    if existing is not None and existing != (prefix, urlconf):
        raise ValueError(f"console pages of {app!r} are already mounted at {existing[0]!r}")
    _CONSOLE_URLS[app] = (prefix, urlconf)


def console_urls() -> list[tuple[str, str]]:
    """(prefix, urlconf) of every app's console pages, in registration order."""
    return list(_CONSOLE_URLS.values())


# --- panels on another app's detail page ------------------------------------------------------------
# An app adds read-only context to a page it does not own (channels: "changes before this incident" on
# the incident page) without the page's app knowing it: the page renders `{% detail_panels "<page>" obj %}`
# (console_tags) and each registered panel's template gets `context(request, obj)`.

DetailContext = Callable[[HttpRequest, Any], dict[str, Any]]


@dataclass(frozen=True)
class DetailPanel:
    """A panel on the detail page `page` (e.g. "incidents.detail"), filled from the object shown."""

    page: str
    name: str
    template: str
    context: DetailContext
    capability: str | None
    order: int


_detail_panels: dict[tuple[str, str], DetailPanel] = {}


def register_detail_panel(
    *, page: str, name: str, template: str, context: DetailContext, capability: str | None, order: int
) -> None:
    """Add a panel to `page`, shown to a viewer holding `capability`."""
    _detail_panels[(page, name)] = DetailPanel(
        page=page, name=name, template=template, context=context, capability=capability, order=order
    )


def detail_panels(*, page: str, capabilities: frozenset[str]) -> list[DetailPanel]:
    """The panels of `page` a viewer holding `capabilities` sees, in order."""
    return _visible((p for p in _detail_panels.values() if p.page == page), capabilities)
