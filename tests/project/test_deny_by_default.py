"""Every URL in the project refuses anonymous requests, except the liveness probe and the login page.

Channel webhooks (controlplane.channels.webhooks.ChannelWebhookView) authenticate by the provider's
signature, not a bearer token, so they cannot answer AUTH_REQUIRED; an unsigned anonymous request must
still be refused with a coded 4xx, never served (the providers' own tests refuse unsigned deliveries to a
real connection: tests/channels/test_providers_*.py).

The walk reads the URL resolver, so a URL added later is covered without touching this test.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern

pytestmark = pytest.mark.django_db

PUBLIC = {"/healthz", "/login/"}
LOGIN_PREFIXES = ("/login/", "/admin/login/")
SAMPLES = {"int": "1", "str": "x", "slug": "x", "uuid": str(uuid.UUID(int=1)), "path": "x"}


def _route_sample(pattern: RoutePattern) -> str:
    route = str(pattern)
    for match in re.finditer(r"<(?:(\w+):)?(\w+)>", route):
        converter = match.group(1) or "str"
        route = route.replace(match.group(0), SAMPLES.get(converter, "1"), 1)
    return route


def _regex_sample(pattern: RegexPattern) -> str:
    regex = pattern.regex.pattern.lstrip("^").rstrip("$").replace("\\Z", "")

    def group(match: re.Match) -> str:
        body = match.group(2)
        first = body.split("|")[0]
        return first if re.fullmatch(r"[\w-]+", first) else "1"

    regex = re.sub(r"\(\?P<(\w+)>((?:[^()]|\([^()]*\))*)\)", group, regex)
    regex = re.sub(r"\(\?:[^)]*\)\??", "", regex)
    return regex.replace("\\.", ".").replace("\\", "").replace("?", "")


def _sample(pattern) -> str:
    return _route_sample(pattern) if isinstance(pattern, RoutePattern) else _regex_sample(pattern)


def _walk(patterns, prefix: str = ""):
    for entry in patterns:
        path = prefix + _sample(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, path)
        elif isinstance(entry, URLPattern):
            yield "/" + path


def all_paths() -> list[str]:
    paths = sorted(set(_walk(get_resolver().url_patterns)))
    return [p for p in paths if _resolves(p)]


def _signed_by_provider(path: str) -> bool:
    """Served by a channel webhook view: the provider's signature is the authentication."""
    from controlplane.channels.webhooks import ChannelWebhookView

    view_class = getattr(resolve(path).func, "view_class", None)
    return isinstance(view_class, type) and issubclass(view_class, ChannelWebhookView)


def _resolves(path: str) -> bool:
    try:
        resolve(path)
    except Exception:
        return False
    return True


def test_the_walk_finds_every_pattern():
    paths = all_paths()
    assert len(paths) == len(set(_walk(get_resolver().url_patterns))), "a URL pattern could not be sampled"
    assert "/api/v1/ledger/events/" in paths and "/api/v1/ledger/events/1/" in paths
    assert "/healthz" in paths and "/readyz" in paths and "/api/schema/" in paths
    assert any(_signed_by_provider(p) for p in paths)
    assert not _signed_by_provider("/api/v1/events/")  # signed ingest also needs its bearer token


@pytest.mark.parametrize("path", all_paths())
def test_anonymous_request_is_refused(client, path):
    if path in PUBLIC:
        assert client.get(path).status_code == 200
        return
    responses = {m: client.generic(m, path, HTTP_ACCEPT="application/json") for m in ("GET", "POST")}
    if _signed_by_provider(path):
        for method, response in responses.items():
            assert 400 <= response.status_code < 500, (method, path, response.status_code)
            assert json.loads(response.content)["code"], (method, path, response.content)
        return
    if path.startswith("/api/") or path == "/readyz":
        for method, response in responses.items():
            assert response.status_code == 401, (method, path, response.status_code)
            assert json.loads(response.content)["code"] == "AUTH_REQUIRED"
        return
    redirected = [r for r in responses.values() if r.status_code == 302]
    assert redirected, (path, {m: r.status_code for m, r in responses.items()})
    for method, response in responses.items():
        assert response.status_code in (302, 405), (path, response.status_code)
        if response.status_code == 302:
            assert _lands_on_login(client, response["Location"]), (method, path, response["Location"])


def _lands_on_login(client, location: str, hops: int = 3) -> bool:
    """A redirect ends at a login page (admin's logout, say, goes to the admin index, then to login)."""
    for _ in range(hops):
        if location.startswith(LOGIN_PREFIXES):
            return True
        response = client.get(location)
        if response.status_code != 302:
            return False
        location = response["Location"]
    return False


def test_healthz_reveals_nothing(client):
    assert client.get("/healthz").json() == {"status": "ok"}
