"""Suite-wide fixtures. The suite runs on real PostgreSQL and Redis (`make test` starts them)."""

from __future__ import annotations

import importlib

import pytest
from django.conf import settings
from django.core.cache import cache
from hypothesis import settings as hypothesis_settings

from controlplane.ledger import crypto

# Fixtures every app's tests share: the browser (Playwright and Debian's Chromium).
pytest_plugins = ["tests.browser"]

# No wall-clock deadline on property tests: time is the machine's (shared, 2 cores), not the code's, and
# performance lives in bench/. A failing example is still shrunk and reported.
hypothesis_settings.register_profile("controlplane", deadline=None)
hypothesis_settings.load_profile("controlplane")


def pytest_configure(config: pytest.Config) -> None:
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine != "django.db.backends.postgresql" or not settings.REDIS_URL:
        raise pytest.UsageError(
            "the suite runs against real PostgreSQL and Redis: use `make test`, or set DATABASE_URL "
            "(postgres://...) and REDIS_URL yourself"
        )


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """Forget any connection pool built before the test database exists (Django builds it on the first
    `request_started`, e.g. when a test module imports the ASGI application, with the settings' database
    name, and keeps it after `create_test_db` renames the database): the next connection builds the pool
    again, for test_<name>."""
    from django.db import connections

    for alias in connections:
        if hasattr(connections[alias], "close_pool"):
            connections[alias].close_pool()


@pytest.fixture(autouse=True)
def _isolated_keys(tmp_path, settings):
    """Each test gets its own ledger key directory and witness directory; the first append generates a
    ledger key there, the first checkpoint a witness key."""
    settings.CONTROLPLANE_KEY_DIR = tmp_path / "keys"
    settings.CONTROLPLANE_WITNESS_DIR = tmp_path / "witness"
    settings.CONTROLPLANE_WITNESS_KEY = ""
    settings.CONTROLPLANE_WITNESS_URL = ""
    settings.CONTROLPLANE_LEDGER_KEY = ""
    settings.CONTROLPLANE_LEDGER_AUTOGENERATE_KEY = True
    # Tests create many users; a deliberately slow password hash only slows the suite down.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    crypto.forget_loaded_keys()
    yield
    crypto.forget_loaded_keys()


@pytest.fixture(autouse=True)
def _clear_cache():
    """An empty cache for each test, including the ingest refusals counted in process but not yet
    written to it (the ASGI path and shedding defer them by up to a second)."""
    from controlplane.channels.services import rejection_flush
    from controlplane.kernel.governance import enforcement_forget

    rejection_flush()
    cache.clear()
    enforcement_forget()  # the rollback toggle's 1 s in-process cache: each test starts cold
    yield
    rejection_flush()
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


def _migration_data_reinstalled() -> None:
    """Run the data migrations' forward functions again (each is idempotent: get_or_create)."""
    from django.apps import apps

    for module, function in (
        ("skills.migrations.0002_core_skill", "_install"),
        ("skills.migrations.0003_trust_store", "_core_to_v1"),
        ("skills.migrations.0004_install_requests_action_limits", "_limits_from_manifests"),
        ("controlplane.policy.migrations.0002_shipped_profiles", "_forwards"),
    ):
        getattr(importlib.import_module(module), function)(apps, None)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """After a transactional test's flush, put back what it emptied before the next test's fixtures
    run, so outside any test transaction (where a reinstall would roll back with the test)."""
    global _truncate_trigger_off
    if not _truncate_trigger_off:
        return
    from pytest_django.plugin import blocking_manager_key

    with item.config.stash[blocking_manager_key].unblock():
        _truncate_triggers(enabled=True)
        _migration_data_reinstalled()
    _truncate_trigger_off = False


@pytest.fixture(autouse=True)
def _ledger_flushable(request: pytest.FixtureRequest):
    """Transactional tests end with a TRUNCATE flush, which the append-only trigger refuses.

    For those tests only, the TRUNCATE trigger is switched off for the flush; before the next test
    (`pytest_runtest_setup` above) it is switched back on, so every test runs against the real trigger.
    The flush also empties the rows migrations install (the core skill, the shipped policy profiles):
    they are put back then too, so no test depends on which kind of test ran before it.
    """
    global _truncate_trigger_off
    if not _is_transactional(request):
        yield
        return
    request.getfixturevalue("_django_db_helper")
    yield
    _truncate_triggers(enabled=False)
    _truncate_trigger_off = True


@pytest.fixture(scope="session", autouse=True)
def _chain_writers_closed(django_db_setup, django_db_blocker):
    """Ingest's chain writers hold database connections of their own: close them before the test
    database is dropped."""
    yield
    from controlplane.channels.ingest import lean

    with django_db_blocker.unblock():
        lean.group_commit.writer.close()
