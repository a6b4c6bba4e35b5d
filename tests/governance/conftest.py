from __future__ import annotations

import pytest

from controlplane.kernel import governance as kernel


@pytest.fixture(autouse=True)
def _fresh_toggle():
    """Every test reads the toggle afresh (the reader caches it for up to a second per process)."""
    kernel.enforcement_forget()
    yield
    kernel.enforcement_forget()
