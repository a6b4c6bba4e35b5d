"""Process log lines stay one line each (OWASP ASVS 5.0 16.4.1, log injection).

A request path, a header or a principal's text that reaches a log message may carry CR, LF or other
control characters; written as they are, they would start a forged line ("Not Found: /x\\n... INFO ok").
`EscapeControlCharacters` writes them as escapes (`\\n`, `\\r`, `\\x1b`, `\\u2028`), as Python's `repr`
does. A traceback is formatted apart from the message and keeps its lines.
"""

from __future__ import annotations

import logging

# C0 controls but TAB, DEL, C1 controls, and the Unicode line and paragraph separators.
_CONTROLS = [*(c for c in range(0x20) if c != 0x09), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]
_ESCAPES = {
    code: {0x0A: "\\n", 0x0D: "\\r"}.get(code, f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for code in _CONTROLS
}


def escape_controls(text: str) -> str:
    return text.translate(_ESCAPES)


class EscapeControlCharacters(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = escape_controls(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True
