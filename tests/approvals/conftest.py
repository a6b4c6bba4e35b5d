"""Fixtures of the approvals console tests: the console's tenant, agent and decider, and its browser."""

from tests.console.conftest import browser, page  # noqa: F401  (fixtures)
from tests.console.flow import acme, agent, decider, dev_policy, eager_tasks  # noqa: F401  (fixtures)
