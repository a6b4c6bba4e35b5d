"""Chat deliveries normalised into control-plane events, and approval actions taken from chat.

Every accepted channel delivery appends one `controlplane.channels.message.received` event (provider,
connection, sender, bounded text, the provider's delivery id). When the message is an approval action it
is decided through `approvals.services.approval_decide` as the sender's mapped principal, with every rule
of the console (humans only, no self-approval, quorum, a reason, the content hash seen): a refusal is
answered with its code and decides nothing. The decision runs before the message event is appended, so
the approval's row lock is taken before the chain's, as everywhere.

The approval grammar (docs/channels.md): `approve|reject <approval-id-prefix> <hash-prefix> <reason...>`
(a leading `/` allowed: GitHub's `/approve ...`), prefixes of at least 8 hex characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from approvals.models import ApprovalRequest, ApprovalStatus
from approvals.services import approval_decide
from controlplane.channels.models import ChannelConnection, ChannelIdentity
from controlplane.channels.services.codes import (
    CODE_ALPHABET,
    CODE_LENGTH,
    approval_code_find,
    approval_code_use,
)
from controlplane.channels.services.links import (
    REDACTED,
    channel_link_confirm,
    channel_link_failure_count,
    link_code_parse,
)
from controlplane.identity.models import Principal
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append

MESSAGE_EVENT = "controlplane.channels.message.received"
_NOT_MESSAGES = {"meta.status", "github.ping"}
# `APPROVE <code>` / `REJECT <code> <reason>`: a 6-character reply code (approval id prefixes are 8+).
_CODE_GRAMMAR = re.compile(
    rf"^\s*/?(?P<decision>approve|reject)\s+(?P<code>[{CODE_ALPHABET}]{{{CODE_LENGTH}}})(?:\s+(?P<reason>.*))?$",
    re.IGNORECASE | re.DOTALL,
)
# A link code is never ledgered, wherever it appears (e.g. Slack echoing the bot's own message).
_LINK_CODE_ANYWHERE = re.compile(r"\blink\s+\d{4,}", re.IGNORECASE)
MIN_PREFIX = 8
_GRAMMAR = re.compile(
    r"^\s*/?(?P<decision>approve|reject)\s+(?P<approval>[0-9a-fA-F]+)\s+(?P<hash>[0-9a-fA-F]+)(?:\s+(?P<reason>.*))?$",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class ApprovalAction:
    """An approval decision asked for in chat: the approval (by id or prefix), the hash seen, a reason;
    or a reply code standing for both (`code`)."""

    decision: str
    approval: str
    content_hash: str
    reason: str
    code: str = ""


def approval_action_parse(text: str) -> ApprovalAction | None:
    """The approval action `text` asks for, or None when it is not one (then it is only a message)."""
    coded = _CODE_GRAMMAR.match(text or "")
    if coded is not None:
        return ApprovalAction(
            decision=coded["decision"].lower(),
            approval="",
            content_hash="",
            reason=(coded["reason"] or "").strip(),
            code=coded["code"].upper(),
        )
    match = _GRAMMAR.match(text or "")
    if match is None:
        return None
    return ApprovalAction(
        decision=match["decision"].lower(),
        approval=match["approval"].lower(),
        content_hash=match["hash"].lower(),
        reason=(match["reason"] or "").strip(),
    )


def _approval_by_prefix(connection: ChannelConnection, prefix: str) -> ApprovalRequest:
    if len(prefix) < MIN_PREFIX:
        raise ControlPlaneError(
            "CHANNEL_COMMAND_INVALID", f"name the approval by {MIN_PREFIX}+ hex characters"
        )
    found = list(ApprovalRequest.objects.filter(tenant=connection.tenant, id__startswith=prefix)[:2])
    if not found:
        raise ControlPlaneError("APPROVAL_NOT_FOUND", f"no approval {prefix}… in this tenant")
    if len(found) > 1:
        raise ControlPlaneError("CHANNEL_COMMAND_INVALID", f"{prefix}… names more than one approval")
    return found[0]


def linked_principal(
    *, connection: ChannelConnection, sender: str, capability: str | None = None
) -> Principal:
    """The person `sender` is linked to; CHANNEL_IDENTITY_UNLINKED when none (an unlinked identity reads
    nothing and decides nothing), CAPABILITY_MISSING when they lack `capability` (as in the console)."""
    identity = (
        ChannelIdentity.objects.select_related("principal__tenant")
        .filter(tenant=connection.tenant, provider=connection.provider, external_id=sender)
        .first()
        if sender
        else None
    )
    if identity is None or not identity.principal.is_active:
        raise ControlPlaneError(
            "CHANNEL_IDENTITY_UNLINKED", f"{connection.provider} user {sender!r} is linked to no principal"
        )
    principal = identity.principal
    if capability is not None and not principal.has_capability(capability):
        raise ControlPlaneError("CAPABILITY_MISSING", f"{principal.ref} lacks {capability!r}")
    return principal


def channel_approval_act(
    *, connection: ChannelConnection, sender: str, action: ApprovalAction
) -> ApprovalRequest:
    """Decide `action` as the principal `sender` is mapped to; refusals raise with their code.

    CHANNEL_IDENTITY_UNLINKED for an unmapped sender; then approval_decide's own refusals (not human,
    self-approval, missing reason, content changed, not pending, duplicate decision). The hash is bound
    as typed: a prefix of the approval's content hash of at least 8 characters stands for that hash, any
    other value is compared as it is (and so refused as APPROVAL_CONTENT_CHANGED).
    """
    principal = linked_principal(connection=connection, sender=sender)
    if action.code:
        return _decide_by_code(connection, principal, action)
    approval = _approval_by_prefix(connection, action.approval)
    content_hash = action.content_hash
    if len(content_hash) >= MIN_PREFIX and approval.content_hash.startswith(content_hash):
        content_hash = approval.content_hash
    return approval_decide(
        approval=approval,
        actor=principal,
        decision=action.decision,
        reason=action.reason,
        content_hash=content_hash,
    )


def _decide_by_code(
    connection: ChannelConnection, principal: Principal, action: ApprovalAction
) -> ApprovalRequest:
    """Decide the approval a reply code names, bound to the content hash it was issued for; the code is
    used by this decision (a refusal rolls that back with the decision)."""
    found = approval_code_find(connection=connection, code=action.code)
    if found is None:
        raise ControlPlaneError("CHANNEL_APPROVAL_CODE_INVALID", "no approval of this channel has that code")
    if found.used_at is not None:
        raise ControlPlaneError(
            "CHANNEL_APPROVAL_CODE_USED", "this code decided already; a code decides once"
        )
    approval = ApprovalRequest.objects.filter(tenant=connection.tenant, pk=found.approval_id).first()
    if approval is None:
        raise ControlPlaneError("APPROVAL_NOT_FOUND", "the code's approval is gone")
    reason = action.reason or ("approved with a WhatsApp reply code" if action.decision == "approve" else "")
    decided = approval_decide(
        approval=approval,
        actor=principal,
        decision=action.decision,
        reason=reason,
        content_hash=found.content_hash,
    )
    approval_code_use(code=found, principal=principal)
    return decided


def _bounded(text: str) -> tuple[str, bool]:
    limit = settings.CONTROLPLANE_CHANNEL_TEXT_MAX
    return (text[:limit], True) if len(text) > limit else (text, False)


def channel_message_receive(
    *,
    connection: ChannelConnection,
    sender: str,
    text: str,
    delivery_id: str,
    kind: str = "message",
    action: ApprovalAction | None = None,
    command: tuple[str, Callable[[], dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Record one verified chat message and, when it is an approval action, decide it; a link code
    (`link <code>`) links the sender; a `command` (its name and what runs it) is run in a savepoint.

    Returns the outcome: `{"ok": True}` for a plain message, `{"ok": True, "approval": ..., "status":
    ...}` for a decision taken, `{"ok": False, "code": ..., "detail": ...}` for an action refused (nothing
    decided; the message is still recorded, with the code). Runs inside the delivery's transaction.
    """
    outcome: dict[str, Any] = {"ok": True}
    link_code = link_code_parse(text) if action is None and kind not in _NOT_MESSAGES else None
    if link_code is not None:
        text, outcome["action"] = REDACTED, "link"  # the code never reaches the ledger
        try:
            with transaction.atomic():
                linked = channel_link_confirm(connection=connection, sender=sender, code=link_code)
        except ControlPlaneError as exc:
            outcome.update(ok=False, code=exc.code, detail=exc.detail)
            if exc.code == "CHANNEL_LINK_CODE_INVALID":
                channel_link_failure_count(connection=connection, sender=sender)
        else:
            outcome.update(linked=linked.principal.ref)
    elif action is not None:
        outcome["action"] = action.decision
        if action.code:  # a reply code is never ledgered either
            text = f"{action.decision} ****** {action.reason}".strip()
        try:
            with transaction.atomic():  # a refusal rolls back whatever the decision had begun
                decided = channel_approval_act(connection=connection, sender=sender, action=action)
        except ControlPlaneError as exc:
            outcome.update(ok=False, code=exc.code, detail=exc.detail)
        else:
            outcome.update(approval=decided.id, status=decided.status)
    elif command is not None:
        outcome["action"] = command[0]
        try:
            with transaction.atomic():
                outcome.update(command[1]())
        except ControlPlaneError as exc:
            outcome.update(ok=False, code=exc.code, detail=exc.detail)
    bounded, truncated = _bounded(_LINK_CODE_ANYWHERE.sub(REDACTED, text or ""))
    ledger_append(
        type=MESSAGE_EVENT,
        subject=f"channel/{connection.ref}",
        data={
            "provider": connection.provider,
            "connection": connection.ref,
            "sender": sender,
            "text": bounded,
            "truncated": truncated,
            "kind": kind,
            "delivery_id": delivery_id,
            "outcome": {k: v for k, v in outcome.items() if k not in {"detail", "reply"}},
        },
        tenant=connection.tenant.slug,
        actor=connection.principal.ref,
        reason_codes=[outcome["code"]] if "code" in outcome else [],
    )
    return outcome


def pending_approvals(
    *, connection: ChannelConnection, sender: str, limit: int = 10
) -> list[ApprovalRequest]:
    """The tenant's pending approvals, newest first (the `/cp approvals` listing), for a linked person
    holding `approvals.read`; refused otherwise (CHANNEL_IDENTITY_UNLINKED, CAPABILITY_MISSING)."""
    linked_principal(connection=connection, sender=sender, capability="approvals.read")
    return list(
        ApprovalRequest.objects.filter(tenant=connection.tenant, status=ApprovalStatus.PENDING).order_by(
            "-created_at"
        )[:limit]
    )
