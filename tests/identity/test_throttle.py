"""The auth-failure throttle: the client address behind trusted proxies, a valid token from a throttled
source, and the per-process fallback while the cache server is unreachable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.cache import cache
from redis.exceptions import ConnectionError as RedisConnectionError

from controlplane.identity import services, throttle
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from tests.identity.factories import PrincipalFactory, token_for

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/ledger/events/"
PROXIES = ["10.0.0.0/8", "fd00::/8"]


@pytest.fixture(autouse=True)
def _no_local_counts():
    throttle._local.clear()
    yield
    throttle._local.clear()


def _meta(remote: str, forwarded: str | None = None) -> dict[str, str]:
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return meta


# --- the client address -------------------------------------------------------------------------------


def test_without_trusted_proxies_forwarded_headers_are_ignored(settings):
    settings.CONTROLPLANE_TRUSTED_PROXIES = []
    assert services.client_source(_meta("10.1.2.3", "203.0.113.7")) == "10.1.2.3"


def test_a_forwarded_header_from_an_untrusted_peer_is_never_read(settings):
    settings.CONTROLPLANE_TRUSTED_PROXIES = PROXIES
    assert services.client_source(_meta("198.51.100.4", "203.0.113.7")) == "198.51.100.4"


def test_behind_a_trusted_proxy_the_client_is_the_forwarded_address(settings):
    settings.CONTROLPLANE_TRUSTED_PROXIES = PROXIES
    assert services.client_source(_meta("10.0.0.5", "203.0.113.7")) == "203.0.113.7"


def test_forwarded_hops_are_read_right_to_left_trusting_only_listed_proxies(settings):
    settings.CONTROLPLANE_TRUSTED_PROXIES = PROXIES
    # the client forged the leftmost entry; the first untrusted hop from the right is the real client
    meta = _meta("10.0.0.5", "1.1.1.1, 203.0.113.7, 10.9.9.9")
    assert services.client_source(meta) == "203.0.113.7"


def test_only_trusted_hops_yield_the_leftmost_and_a_malformed_hop_stops_the_walk(settings):
    settings.CONTROLPLANE_TRUSTED_PROXIES = PROXIES
    assert services.client_source(_meta("10.0.0.5", "10.2.2.2, 10.3.3.3")) == "10.2.2.2"
    assert services.client_source(_meta("10.0.0.5", "203.0.113.7, not-an-ip, 10.3.3.3")) == "10.3.3.3"
    assert services.client_source(_meta("10.0.0.5")) == "10.0.0.5"


def test_ipv6_proxies_and_clients(settings):
    settings.CONTROLPLANE_TRUSTED_PROXIES = PROXIES
    assert services.client_source(_meta("fd00::1", "2001:db8::7")) == "2001:db8::7"


def test_an_invalid_trusted_proxy_is_refused_at_start_up():
    env = {**os.environ, "CONTROLPLANE_TRUSTED_PROXIES": "10.0.0.0/8,not-a-cidr"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "CONTROLPLANE_TRUSTED_PROXIES: 'not-a-cidr' is not a CIDR" in result.stderr


# --- through the API, behind a load balancer -----------------------------------------------------------


def _get(client, token, forwarded):
    return client.get(
        EVENTS, HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=forwarded
    )


def test_one_clients_bad_tokens_behind_the_balancer_lock_out_nobody_else(client, settings):
    settings.CONTROLPLANE_TRUSTED_PROXIES = PROXIES
    settings.CONTROLPLANE_AUTH_FAILURE_LIMIT = 2
    codes = [_get(client, "cp_bad_token", "203.0.113.7").json()["code"] for _ in range(4)]
    assert codes == ["AUTH_INVALID_TOKEN", "AUTH_INVALID_TOKEN", "AUTH_THROTTLED", "AUTH_THROTTLED"]
    failed = LedgerEvent.objects.filter(type="controlplane.identity.signin.failed")
    assert [e.data["source"] for e in failed] == ["203.0.113.7", "203.0.113.7"]
    # another client behind the same balancer is not throttled: its bad token is its own failure
    assert _get(client, "cp_bad_token", "198.51.100.9").json()["code"] == "AUTH_INVALID_TOKEN"


def test_a_valid_token_passes_a_throttled_source_and_failures_are_still_counted(client, settings):
    settings.CONTROLPLANE_AUTH_FAILURE_LIMIT = 2
    token = token_for(PrincipalFactory(capabilities=["ledger.read"]))
    for _ in range(3):
        client.get(EVENTS, HTTP_AUTHORIZATION="Bearer cp_bad_token")
    assert throttle.failures_count(source="127.0.0.1") == 3

    assert client.get(EVENTS, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200

    refused = client.get(EVENTS, HTTP_AUTHORIZATION="Bearer cp_bad_token")
    assert refused.status_code == 429 and refused.json()["code"] == "AUTH_THROTTLED"
    assert throttle.failures_count(source="127.0.0.1") == 4
    assert LedgerEvent.objects.filter(type="controlplane.identity.signin.failed").count() == 2


# --- the cache server unreachable ------------------------------------------------------------------------


@pytest.fixture
def cache_down(monkeypatch):
    """Every call to the cache server fails as it does when Redis is stopped (connection refused)."""

    def refused(*args, **kwargs):
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    for name in ("get", "add", "incr", "set", "delete"):
        monkeypatch.setattr(cache, name, refused)


def test_with_the_cache_down_the_throttle_counts_in_this_process(client, settings, cache_down):
    settings.CONTROLPLANE_AUTH_FAILURE_LIMIT = 2
    token = token_for(PrincipalFactory(capabilities=["ledger.read"]))
    codes = [client.get(EVENTS, HTTP_AUTHORIZATION="Bearer cp_bad").json()["code"] for _ in range(3)]
    assert codes == ["AUTH_INVALID_TOKEN", "AUTH_INVALID_TOKEN", "AUTH_THROTTLED"]
    assert LedgerEvent.objects.filter(type="controlplane.identity.signin.failed").count() == 2
    assert client.get(EVENTS, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_failures_counted_during_an_outage_still_count_after_it(settings, monkeypatch):
    settings.CONTROLPLANE_AUTH_FAILURE_LIMIT = 2

    def refused(*args, **kwargs):
        raise RedisConnectionError("refused")

    with monkeypatch.context() as down:
        for name in ("get", "add", "incr", "set"):
            down.setattr(cache, name, refused)
        services.auth_failure_record(source="192.0.2.1", method="token")
        services.auth_failure_record(source="192.0.2.1", method="token")
    with pytest.raises(ControlPlaneError) as caught:
        services.auth_throttle_check(source="192.0.2.1")
    assert caught.value.code == "AUTH_THROTTLED"
    services.auth_failures_reset(source="192.0.2.1")
    services.auth_throttle_check(source="192.0.2.1")


def test_console_sign_in_works_with_the_cache_down(client, settings, cache_down):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("carol", password="a-long-password-1")
    PrincipalFactory(user=user, kind="human", capabilities=[])
    assert client.post("/login/", {"username": "carol", "password": "wrong-password-1"}).status_code == 401
    response = client.post("/login/", {"username": "carol", "password": "a-long-password-1"})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
