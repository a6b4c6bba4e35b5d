"""The one domain exception: every refusal carries a reason code from `controlplane.kernel.reasons`."""

from __future__ import annotations

from typing import Any

from controlplane.kernel.reasons import reason


class ControlPlaneError(Exception):
    """A refusal with a stable reason code, a human detail and the HTTP status the catalogue assigns."""

    def __init__(self, code: str, detail: str | None = None, *, extra: dict[str, Any] | None = None):
        entry = reason(code)
        self.code = code
        self.status = entry.status
        self.detail = detail or entry.description
        self.extra = extra or {}
        super().__init__(f"{code}: {self.detail}")

    def as_dict(self) -> dict[str, Any]:
        return {"detail": self.detail, "code": self.code, **self.extra}
