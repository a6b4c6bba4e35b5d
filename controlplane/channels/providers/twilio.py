"""WhatsApp (or SMS) through Twilio: the incoming-message webhook of one connection.

Verified with Twilio's own `RequestValidator` (the `twilio` SDK): `X-Twilio-Signature` is base64 of
HMAC-SHA1, keyed by the auth token, over the full URL Twilio called followed by every POST parameter's
name and value, sorted by name; for a JSON body, the URL's `bodySHA256` parameter must be the body's
SHA-256. The URL is rebuilt from CONTROLPLANE_PUBLIC_URL and the request's path and query, never from the
Host or X-Forwarded-* headers (behind a proxy those are whatever the proxy says). Deduplicated on
`MessageSid`. A reply `approve <id> <hash> <reason>` is decided as the sender's mapped principal (the
mapping is by the `From` address, e.g. `whatsapp:+14155550100`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from twilio.request_validator import RequestValidator

from controlplane.channels.models import ChannelProvider
from controlplane.channels.providers.base import ChannelAdapter, json_object, text_of
from controlplane.channels.services.messages import approval_action_parse, channel_message_receive
from controlplane.kernel.errors import ControlPlaneError

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def public_url(request: HttpRequest) -> str:
    """The URL Twilio signed: the configured public base URL and this request's path and query."""
    return settings.CONTROLPLANE_PUBLIC_URL.rstrip("/") + request.get_full_path()


def twilio_signature_check(*, auth_token: str, url: str, params: Any, signature: str | None) -> None:
    """Twilio's request signature (form parameters, or the raw JSON body as a str with `bodySHA256`)."""
    if not signature:
        raise ControlPlaneError("CHANNEL_SIGNATURE_MISSING", "X-Twilio-Signature is required")
    if not RequestValidator(auth_token).validate(url, params, signature):
        raise ControlPlaneError("CHANNEL_SIGNATURE_INVALID", "X-Twilio-Signature does not verify")


class TwilioWebhook(ChannelAdapter):
    """Twilio's messaging webhook for one connection: X-Twilio-Signature over the public URL and the
    sorted POST parameters (or `bodySHA256` for JSON), deduplicated on MessageSid; answered with empty
    TwiML."""

    name = "twilio"
    path = "channels/twilio/<str:connection>/"
    provider = ChannelProvider.TWILIO
    capability = ""

    def _is_json(self, request: HttpRequest) -> bool:
        return (request.content_type or "").startswith("application/json")

    def _params(self, request: HttpRequest) -> dict[str, Any]:
        if self._is_json(request):
            return json_object(request.body)
        return {key: request.POST.get(key) for key in request.POST}

    def verify(self, request: HttpRequest) -> None:
        signed: Any = request.body.decode("utf-8", "replace") if self._is_json(request) else request.POST
        if self._is_json(request) and "bodySHA256" not in request.GET:
            raise ControlPlaneError("CHANNEL_SIGNATURE_INVALID", "a JSON delivery needs bodySHA256")
        twilio_signature_check(
            auth_token=self.secret(request, "auth_token"),
            url=public_url(request),
            params=signed,
            signature=request.headers.get("X-Twilio-Signature"),
        )

    def diagnose(self, request: HttpRequest) -> str:
        """Which URL Twilio signed, when it is not CONTROLPLANE_PUBLIC_URL's (the classic proxy mistake)."""
        if self._is_json(request):
            return ""
        validator = RequestValidator(self.secret(request, "auth_token"))
        signature = request.headers.get("X-Twilio-Signature", "")
        ours = urlsplit(public_url(request))
        path = ours.path[:-1] if ours.path.endswith("/") else ours.path + "/"
        other = "http" if ours.scheme == "https" else "https"
        port = ours.port or (443 if ours.scheme == "https" else 80)
        candidates = [
            ("the path with the trailing slash toggled", ours._replace(path=path).geturl()),
            (f"scheme {other}", ours._replace(scheme=other).geturl()),
            (f"an explicit port {port}", ours._replace(netloc=f"{ours.hostname}:{port}").geturl()),
            ("no port", ours._replace(netloc=ours.hostname or "").geturl()),
            ("the Host header's URL", request.build_absolute_uri()),
        ]
        for label, url in candidates:
            if url != ours.geturl() and validator.validate(url, request.POST, signature):
                return f"Twilio signed {url} ({label}): set CONTROLPLANE_PUBLIC_URL to what Twilio calls"
        return "no common URL variant verifies: most likely the auth token differs from the account's"

    def delivery_id(self, request: HttpRequest) -> str | None:
        params = self._params(request)
        sid = text_of(params.get("MessageSid")) or text_of(params.get("SmsSid"))
        if not sid:
            raise ControlPlaneError("CHANNEL_MALFORMED", "MessageSid is required")
        return self.scoped(request, sid)

    def accept(self, request: HttpRequest, principal: Any) -> dict[str, Any]:
        params = self._params(request)
        text = text_of(params.get("Body"))
        return channel_message_receive(
            connection=self.connection(request),
            sender=text_of(params.get("From")),
            text=text,
            delivery_id=text_of(params.get("MessageSid")) or text_of(params.get("SmsSid")),
            kind="twilio.message",
            action=approval_action_parse(text),
        )

    def respond(self, body: dict[str, Any]) -> HttpResponse | None:
        response = HttpResponse(EMPTY_TWIML, content_type="text/xml")
        response["X-Controlplane-Outcome"] = "ok" if body.get("ok") else str(body.get("code", ""))
        return response


TWILIO = TwilioWebhook()
