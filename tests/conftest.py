"""Suite-wide fixtures. The suite runs on real PostgreSQL and Redis (`make test` starts them)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.cache import cache

from controlplane.ledger import crypto


def pytest_configure(config: pytest.Config) -> None:
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine != "django.db.backends.postgresql" or not settings.REDIS_URL:
        raise pytest.UsageError(
            "the suite runs against real PostgreSQL and Redis: use `make test`, or set DATABASE_URL "
            "(postgres://...) and REDIS_URL yourself"
        )


@pytest.fixture(autouse=True)
def _isolated_keys(tmp_path, settings):
    """Each test gets its own ledger key directory; the first append generates a key there."""
    settings.CONTROLPLANE_KEY_DIR = tmp_path / "keys"
    settings.CONTROLPLANE_LEDGER_KEY = ""
    settings.CONTROLPLANE_LEDGER_AUTOGENERATE_KEY = True
    # Tests create many users; a deliberately slow password hash only slows the suite down.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    crypto.forget_loaded_keys()
    yield
    crypto.forget_loaded_keys()


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


_APPEND_ONLY_TABLES = ("ledger_ledgerevent", "ledger_checkpoint")


def _truncate_triggers(enabled: bool) -> None:
    from django.db import connection

    verb = "ENABLE" if enabled else "DISABLE"
    with connection.cursor() as cursor:
        for table in _APPEND_ONLY_TABLES:
            cursor.execute(f"ALTER TABLE {table} {verb} TRIGGER {table}_no_truncate")


def _is_transactional(request: pytest.FixtureRequest) -> bool:
    marker = request.node.get_closest_marker("django_db")
    if marker and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])):
        return True
    return bool({"transactional_db", "live_server"} & set(request.fixturenames))


_truncate_trigger_off = False


@pytest.fixture(autouse=True)
def _ledger_flushable(request: pytest.FixtureRequest):
    """Transactional tests end with a TRUNCATE flush, which the append-only trigger refuses.

    For those tests only, the TRUNCATE trigger is switched off for the flush; the next database test
    switches it back on first, so every test runs against the real trigger.
    """
    global _truncate_trigger_off
    uses_db = request.node.get_closest_marker("django_db") is not None or "db" in request.fixturenames
    if not uses_db and not _is_transactional(request):
        yield
        return
    request.getfixturevalue("_django_db_helper")
    if _truncate_trigger_off:
        _truncate_triggers(enabled=True)
    transactional = _is_transactional(request)
    _truncate_trigger_off = False
    yield
    if transactional:
        _truncate_triggers(enabled=False)
        _truncate_trigger_off = True
