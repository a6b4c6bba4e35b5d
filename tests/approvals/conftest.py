"""Fixtures of the approvals console tests: the console's tenant, agent and decider (the browser comes from
tests/browser.py)."""

from tests.console.flow import acme, agent, decider, dev_policy, eager_tasks  # noqa: F401  (fixtures)
