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


# Observers: told, inside the same transaction, when a request opens, gets a decision or reaches a final
# state (`event` is "opened", "decided", or the final status). They may write rows of their own (an
# outbox) but must not call out; what goes out goes after the commit. E.g. the channels app posts
# approval requests to chat and updates the posted card with the outcome.
Observer = Callable[["ApprovalRequest", str], None]

_OBSERVERS: dict[str, Observer] = {}


def register_observer(name: str, observer: Observer) -> None:
    """Register an observer under a name; a name registered twice with another observer is a bug."""
    existing = _OBSERVERS.get(name)
    if existing is not None and existing is not observer:
        raise ValueError(f"approval observer {name!r} is already registered")
    _OBSERVERS[name] = observer


def observers() -> list[Observer]:
    return [_OBSERVERS[name] for name in sorted(_OBSERVERS)]
