"""The one pagination of the API: limit/offset, bounded, and strict about what it is given.

DRF's `LimitOffsetPagination` silently ignores a `limit` it cannot read (`abc`, `-1`, `1.5`) and passes
any integer to the database (`limit=2**63` is a 500: bigint out of range). Here a parameter that is not
a plain integer within its documented range is refused with 400 `VALIDATION_FAILED`, and the range is in
the OpenAPI schema, so a client (or the fuzzer) knows it before asking.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

_INTEGER = re.compile(r"[0-9]{1,19}")


class BoundedLimitOffsetPagination(pagination.LimitOffsetPagination):
    """`?limit=` in 1..`CONTROLPLANE_API_MAX_LIMIT` (default `PAGE_SIZE`), `?offset=` in 0..`MAX_OFFSET`."""

    @property
    def max_limit(self) -> int:  # type: ignore[override]
        return settings.CONTROLPLANE_API_MAX_LIMIT

    @property
    def max_offset(self) -> int:
        return settings.CONTROLPLANE_API_MAX_OFFSET

    def _bounded(self, request: Request, name: str, *, minimum: int, maximum: int, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        value = int(raw) if _INTEGER.fullmatch(raw) else None
        if value is None or not minimum <= value <= maximum:
            raise ValidationError({name: [f"must be an integer from {minimum} to {maximum}"]})
        return value

    def get_limit(self, request: Request) -> int:
        return self._bounded(
            request, self.limit_query_param, minimum=1, maximum=self.max_limit, default=self.default_limit
        )

    def get_offset(self, request: Request) -> int:
        return self._bounded(request, self.offset_query_param, minimum=0, maximum=self.max_offset, default=0)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        limit, offset = super().get_schema_operation_parameters(view)
        limit["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_limit}
        offset["schema"] = {"type": "integer", "minimum": 0, "maximum": self.max_offset}
        return [limit, offset]
