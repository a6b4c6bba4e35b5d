"""Browser and session controls of OWASP ASVS 5.0 level 2 (docs/security.md, "OWASP ASVS 5.0 level 2"):
security headers, no caching, TRACE, session lifetime and fixation, cookie names outside dev, passwords."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.backends.db import SessionStore
from django.core.exceptions import ValidationError

from controlplane.identity import sessions
from controlplane.ledger.models import LedgerEvent
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for

PASSWORD = "correct-horse-battery"


@pytest.fixture
def operator(db):
    return PrincipalFactory(
        human=True,
        tenant=TenantFactory(slug="acme"),
        name="alice",
        user__username="alice",
        capabilities=["console.view", "ledger.read"],
    )


@pytest.fixture
def clock(monkeypatch):
    """The session middleware's clock, moved by hand."""
    now = {"t": 1_800_000_000.0}
    monkeypatch.setattr(sessions, "now", lambda: int(now["t"]))
    return now


def _sign_in(client) -> None:
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"


def _session_cookie(client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


# --- Headers -----------------------------------------------------------------------------------------


def test_every_answer_carries_the_content_security_policy(client, operator):
    token = token_for(PrincipalFactory(capabilities=["ledger.read"]))
    client.force_login(operator.user)
    answers = [
        client.get("/healthz"),
        client.get("/"),
        client.get("/no-such-page/"),
        client.get("/api/v1/ledger/events/", HTTP_AUTHORIZATION=f"Bearer {token}"),
        client.get("/api/v1/ledger/events/", HTTP_AUTHORIZATION="Bearer cp_wrong"),
    ]

    for response in answers:
        policy = response["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["object-src"] == "'none'"
        assert directives["base-uri"] == "'none'"
        assert directives["frame-ancestors"] == "'none'"
        assert directives["script-src"].split()[0] == "'self'"
        assert "'unsafe-inline'" not in directives["script-src"]
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"


def test_answers_are_not_stored_by_browsers_or_proxies(client, operator):
    client.force_login(operator.user)

    for path in ("/", "/ledger/", "/login/", "/api/v1/x/"):
        response = client.get(path)
        assert "no-store" in [part.strip() for part in response["Cache-Control"].split(",")]


def test_trace_is_refused_everywhere_with_a_code(client, operator):
    token = token_for(PrincipalFactory(capabilities=["ledger.read"]))
    client.force_login(operator.user)
    before = LedgerEvent.objects.count()

    for path in ("/healthz", "/", "/login/", "/api/v1/ledger/events/", "/admin/"):
        response = client.generic("TRACE", path, HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 405, path
        assert response.json()["code"] == "METHOD_NOT_ALLOWED"
    assert LedgerEvent.objects.count() == before


# --- Sessions ----------------------------------------------------------------------------------------


def test_sign_in_issues_a_new_session_key_and_ends_the_planted_one(client, operator):
    planted = SessionStore()
    planted["planted"] = True
    planted.create()
    client.cookies[settings.SESSION_COOKIE_NAME] = planted.session_key

    _sign_in(client)

    assert _session_cookie(client) != planted.session_key
    assert not SessionStore().exists(planted.session_key)


def test_a_signed_out_session_cannot_be_used_again(client, operator):
    _sign_in(client)
    old = _session_cookie(client)
    assert client.get("/").status_code == 200

    assert client.post("/logout/").status_code == 302
    client.cookies[settings.SESSION_COOKIE_NAME] = old

    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert not SessionStore().exists(old)


def test_an_idle_session_is_signed_out_and_the_sign_out_ledgered(client, operator, clock):
    _sign_in(client)
    clock["t"] += settings.CONTROLPLANE_SESSION_IDLE_SECONDS - 60
    assert client.get("/").status_code == 200
    clock["t"] += settings.CONTROLPLANE_SESSION_IDLE_SECONDS + 1

    response = client.get("/")

    assert response.status_code == 302 and response["Location"].startswith("/login/")
    last = LedgerEvent.objects.order_by("-seq").first()
    assert last.type == "controlplane.identity.signout.completed"
    assert last.actor == "acme/alice"
    assert client.get("/api/v1/ledger/events/").status_code == 401


def test_an_active_session_ends_at_its_absolute_lifetime(client, operator, clock, settings):
    settings.CONTROLPLANE_SESSION_MAX_SECONDS = 3600
    settings.CONTROLPLANE_SESSION_IDLE_SECONDS = 1800
    _sign_in(client)

    for _ in range(3):  # active every 20 minutes: never idle
        clock["t"] += 1200
        assert client.get("/").status_code == 200
    clock["t"] += 1200  # 80 minutes after signing in

    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_signing_in_again_restarts_the_absolute_lifetime(client, operator, clock, settings):
    settings.CONTROLPLANE_SESSION_MAX_SECONDS = 3600
    _sign_in(client)
    clock["t"] += 1500
    _sign_in(client)
    clock["t"] += 1500
    assert client.get("/").status_code == 200
    clock["t"] += 1500  # 75 minutes after the first sign-in, 50 after the second

    assert client.get("/").status_code == 200


# --- Cookies and transport outside dev -------------------------------------------------------------


def test_outside_dev_cookies_are_host_prefixed_secure_and_hsts_covers_subdomains():
    script = (
        "from django.conf import settings as s; print(s.SESSION_COOKIE_NAME, s.CSRF_COOKIE_NAME, "
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, "
        "s.SESSION_COOKIE_SAMESITE, "
        "s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_SSL_REDIRECT, s.DEBUG)"
    )
    env = {
        **os.environ,
        "CONTROLPLANE_ENV": "prod",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "ALLOWED_HOSTS": "controlplane.example.com",
    }
    env.pop("DEBUG", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    values = result.stdout.strip().splitlines()[-1].split()
    assert values == [
        "__Host-sessionid",
        "__Host-csrftoken",
        "True",
        "True",
        "True",
        "Lax",
        "31536000",
        "True",
        "True",
        "False",
    ]


# --- Passwords ---------------------------------------------------------------------------------------


def test_passwords_are_long_any_composition_and_not_common():
    with pytest.raises(ValidationError):
        validate_password("a" * 11)
    with pytest.raises(ValidationError):
        validate_password("qwerty123456")  # in Django's list of 20,000 common passwords
    validate_password("correct horse battery staple")  # spaces, no digits, no capitals
    validate_password("ünïcødé pässwörd ✓ " + "x" * 45)  # 64 characters, any script


def test_the_password_is_checked_exactly_as_typed(client, operator):
    for variant in (PASSWORD.upper(), PASSWORD + " ", PASSWORD[:-1]):
        response = client.post("/login/", {"username": "alice", "password": variant})
        assert response.status_code == 401, variant
    long_password = "ä" * 100 + " 🙂"
    operator.user.set_password(long_password)
    operator.user.save(update_fields=["password"])
    response = client.post("/login/", {"username": "alice", "password": long_password})
    assert response.status_code == 302


def test_the_password_field_is_masked_and_password_managers_work(client, db):
    html = client.get("/login/").content.decode()

    assert 'type="password"' in html
    assert 'autocomplete="current-password"' in html
    assert "onpaste" not in html


def test_signing_out_clears_what_the_browser_kept(client, operator):
    _sign_in(client)

    response = client.post("/logout/")

    assert response["Clear-Site-Data"] == '"cache", "storage"'
    assert "Clear-Site-Data" not in client.get("/login/")


def test_no_cross_origin_reads_are_allowed(client, operator):
    token = token_for(PrincipalFactory(capabilities=["ledger.read"]))
    origin = {"HTTP_ORIGIN": "https://evil.example"}

    preflight = client.options("/api/v1/ledger/events/", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET", **origin)
    read = client.get("/api/v1/ledger/events/", HTTP_AUTHORIZATION=f"Bearer {token}", **origin)

    assert read.status_code == 200
    for response in (preflight, read):
        assert not [name for name in response.headers if name.lower().startswith("access-control-")]


def test_sign_in_never_redirects_to_another_host(client, operator):
    for target in ("https://evil.example/", "//evil.example/", "javascript:alert(1)"):
        response = client.post("/login/", {"username": "alice", "password": PASSWORD, "next": target})
        assert response.status_code == 302 and response["Location"] == "/", target
        client.post("/logout/")


def test_untrusted_text_is_escaped_where_it_is_shown(client, operator):
    from controlplane.ledger.services import ledger_append

    event = ledger_append(
        type="controlplane.test.untrusted",
        subject="thing/1",
        data={"note": '<script>alert(1)</script>"><img src=x onerror=alert(2)>'},
        tenant="acme",
        actor="test",
    )
    client.force_login(operator.user)

    html = client.get(f"/ledger/{event.seq}/").content.decode()

    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_password_change_ends_the_users_other_sessions(client, operator):
    from django.test import Client

    other = Client()
    _sign_in(client)
    assert other.post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 302

    operator.user.set_password("a new passphrase for alice")
    operator.user.save(update_fields=["password"])

    for session in (client, other):
        response = session.get("/")
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_a_totp_code_is_accepted_once(client, settings, db):
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django_otp.oath import TOTP
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.admin_helpers import admin_client_for

    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    admin_client_for(client, verified=False)
    user = get_user_model().objects.get(username="root")
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    code = f"{TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token():06d}"
    form = {"otp_device": device.persistent_id, "otp_token": code, "next": "/admin/"}
    assert client.post("/admin/login/", form).status_code == 302

    replay = Client()
    replay.force_login(user)

    assert replay.post("/admin/login/", form).status_code == 401
    assert replay.get("/admin/").status_code == 302


# --- Logs --------------------------------------------------------------------------------------------


def test_a_log_line_cannot_be_forged_from_a_request():
    from controlplane.logfilters import EscapeControlCharacters

    handlers = [
        handler
        for handler in logging.getLogger().handlers
        if any(isinstance(f, EscapeControlCharacters) for f in handler.filters)
    ]
    assert handlers, "the configured log handler escapes control characters"
    record = logging.LogRecord(
        "django.request",
        logging.WARNING,
        __file__,
        1,
        "Not Found: %s",
        ("/x\r\n2026 INFO forged\u2028\x1b[2J",),
        None,
    )

    assert handlers[0].filter(record)
    line = handlers[0].format(record)

    assert "\n" not in line and "\r" not in line and "\u2028" not in line and "\x1b" not in line
    assert line.endswith("Not Found: /x\\r\\n2026 INFO forged\\u2028\\x1b[2J")


def test_a_traceback_keeps_its_lines():
    from controlplane.logfilters import EscapeControlCharacters

    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed\tonce", (), sys.exc_info())
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(EscapeControlCharacters())

    assert handler.filter(record)
    text = handler.format(record)

    assert text.startswith("failed\tonce\nTraceback (most recent call last):")
    assert text.endswith("ValueError: boom")
