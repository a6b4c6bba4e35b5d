"""The suite's own guarantee: a transactional test's flush does not take migration data from later tests.

The two tests run in file order: the first commits and is flushed (TRUNCATE of every table, including
the rows data migrations installed); the second must still find those rows. pytest-django runs
transactional tests after all others, so both are transactional to stay adjacent.
"""

from __future__ import annotations

import pytest

from controlplane.policy.models import PolicyProfile
from controlplane.policy.shipped import SHIPPED
from skills.models import ActionContract


@pytest.mark.django_db(transaction=True)
def test_a_transactional_test_is_flushed_afterwards():
    assert ActionContract.objects.filter(name="noop.echo").exists()


@pytest.mark.django_db(transaction=True)
def test_the_next_test_still_has_the_core_skill_and_the_shipped_profiles():
    assert set(ActionContract.objects.values_list("name", flat=True)) >= {"noop.echo", "http.webhook"}
    assert set(PolicyProfile.objects.filter(version=1).values_list("name", flat=True)) >= set(SHIPPED)
