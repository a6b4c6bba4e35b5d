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
    crypto.forget_loaded_keys()
    yield
    crypto.forget_loaded_keys()


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()
