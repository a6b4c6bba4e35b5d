"""Subject kinds and their resolvers. Domain apps register in their AppConfig.ready().

A resolver is called inside the deciding transaction when a request reaches a final state
(approved, rejected, expired, cancelled), so the owner's state change and its ledger events commit with
the decision or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from approvals.models import ApprovalRequest

Resolver = Callable[["ApprovalRequest"], None]

_RESOLVERS: dict[str, Resolver] = {}


def register_subject(kind: str, resolver: Resolver) -> None:
    """Register the owner of a subject kind. Registering a kind twice with another resolver is a bug."""
    existing = _RESOLVERS.get(kind)
    if existing is not None and existing is not resolver:
        raise ValueError(f"approval subject {kind!r} is already registered")
    _RESOLVERS[kind] = resolver


def resolver_for(kind: str) -> Resolver | None:
    return _RESOLVERS.get(kind)


def registered_kinds() -> list[str]:
    return sorted(_RESOLVERS)
