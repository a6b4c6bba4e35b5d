"""Console session lifetime (OWASP ASVS 5.0 7.3; docs/security.md): each signed-in session carries when it
signed in and when it was last seen. The identity signals stamp a session at sign-in;
`controlplane.security_headers.SessionLifetimeMiddleware` signs out a session past
`CONTROLPLANE_SESSION_IDLE_SECONDS` without a request, or `CONTROLPLANE_SESSION_MAX_SECONDS` after it
signed in.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase

STARTED = "controlplane.session.started"
SEEN = "controlplane.session.seen"
# The last-seen time is written at most this often: a session save per request would be a write per poll.
SEEN_RESOLUTION_SECONDS = 60


def now() -> int:
    return int(time.time())


def session_signed_in(session: SessionBase) -> None:
    """The session's lifetime starts now (at sign-in, or the first time a session from before is seen)."""
    session[STARTED] = session[SEEN] = now()


def session_expired(session: SessionBase) -> bool:
    at = now()
    return (
        at - session[STARTED] > settings.CONTROLPLANE_SESSION_MAX_SECONDS
        or at - session.get(SEEN, session[STARTED]) > settings.CONTROLPLANE_SESSION_IDLE_SECONDS
    )


def session_seen(session: SessionBase) -> None:
    at = now()
    if at - session.get(SEEN, 0) >= SEEN_RESOLUTION_SECONDS:
        session[SEEN] = at
