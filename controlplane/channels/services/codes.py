"""Short reply codes for approvals sent over WhatsApp (`APPROVE <code>`, `REJECT <code> <reason>`).

One code per (connection, approval), issued when the prompt is written to the outbox: 6 characters of an
alphabet without look-alikes, kept only as a keyed hash (HMAC-SHA256 under SECRET_KEY). A code stands for
the approval *and* the content hash it was issued for, so it binds the decision to what the prompt
showed; it is used by the first decision it carries (CHANNEL_APPROVAL_CODE_USED after) and expires with
the approval (approval_decide's APPROVAL_EXPIRED). The prompt's outbox row is scrubbed once sent.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.utils import timezone

from controlplane.channels.models import ApprovalCode, ChannelConnection
from controlplane.identity.models import Principal

CODE_ALPHABET = "ACDEFHJKMNPRTUVWXY3479"
CODE_LENGTH = 6


def _hash(connection_id: int, code: str) -> str:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"approval-code:{connection_id}:{code.upper()}".encode(), hashlib.sha256).hexdigest()


def approval_code_issue(*, connection: ChannelConnection, approval_id: str, content_hash: str) -> str | None:
    """A fresh code for the approval on this connection; None when one was issued already (the prompt
    for it exists and is not sent twice)."""
    if ApprovalCode.objects.filter(connection=connection, approval_id=approval_id).exists():
        return None
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        digest = _hash(connection.pk, code)
        if not ApprovalCode.objects.filter(connection=connection, code_hash=digest).exists():
            break
    ApprovalCode.objects.create(
        tenant_id=connection.tenant_id,
        connection=connection,
        approval_id=approval_id,
        content_hash=content_hash,
        code_hash=digest,
    )
    return code


def approval_code_find(*, connection: ChannelConnection, code: str) -> ApprovalCode | None:
    return (
        ApprovalCode.objects.select_for_update()
        .filter(connection=connection, code_hash=_hash(connection.pk, code))
        .first()
    )


def approval_code_use(*, code: ApprovalCode, principal: Principal) -> None:
    code.used_at, code.used_by = timezone.now(), principal.ref
    code.save(update_fields=["used_at", "used_by"])
