"""The API's one body parser: JSON, bounded in size and in nesting before its cost can grow.

The size is checked against `Content-Length` before a byte is read, and the read stops one byte past
`DATA_UPLOAD_MAX_MEMORY_SIZE` whatever the header said: 413 `PAYLOAD_TOO_LARGE`. The nesting is bounded
by `CONTROLPLANE_JSON_MAX_DEPTH`: a body nested deeper (or so deep that the decoder gives up) is 400
`MALFORMED_JSON`, as is a body that is not JSON (or not UTF-8, or carries NaN / Infinity).
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.parsers import BaseParser

from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.jsontext import SUSPECT_ESCAPE, json_holds_unstorable_text


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_depth_exceeds(document: Any, limit: int) -> bool:
    """Whether `document` nests arrays/objects more than `limit` deep (iterative: no recursion)."""
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def read_bounded(stream: Any, request: Any) -> bytes:
    """The body, or 413 PAYLOAD_TOO_LARGE once it is (or claims to be) past the upload limit."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is None:
        return stream.read()
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise ControlPlaneError("PAYLOAD_TOO_LARGE", f"the body is larger than {limit} bytes")
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise ControlPlaneError("PAYLOAD_TOO_LARGE", f"the body is larger than {limit} bytes")
    return body


class BoundedJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        request = (parser_context or {}).get("request")
        body = read_bounded(stream, request) if request is not None else stream.read()
        max_depth = settings.CONTROLPLANE_JSON_MAX_DEPTH
        try:
            document = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
        except RecursionError:
            raise ControlPlaneError(
                "MALFORMED_JSON", f"the body nests deeper than {max_depth} levels"
            ) from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise ControlPlaneError("MALFORMED_JSON", f"the body is not JSON: {exc}") from None
        # Cheap first: a body with fewer brackets than the limit cannot nest past it.
        if body.count(b"[") + body.count(b"{") > max_depth and json_depth_exceeds(document, max_depth):
            raise ControlPlaneError("MALFORMED_JSON", f"the body nests deeper than {max_depth} levels")
        if SUSPECT_ESCAPE.search(body) and json_holds_unstorable_text(document):
            raise ControlPlaneError("MALFORMED_JSON", "a string holds U+0000 or a lone surrogate")
        return document
