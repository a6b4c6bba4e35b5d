"""Read-only ledger API: events (filtered, cursor-paginated), checkpoints, verification, and the RFC 9162
proofs an outsider checks with pinned keys: an event's inclusion proof (a receipt) and the consistency
proof between two checkpoints' tree heads."""

from __future__ import annotations

from typing import Any

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from kombu.exceptions import OperationalError as KombuOperationalError
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.telemetry import telemetry_mark
from controlplane.ledger import verify_jobs
from controlplane.ledger.models import STORED_COLUMNS, Checkpoint, LedgerEvent
from controlplane.ledger.selectors import checkpoint_consistency, event_receipt

# The platform scope's capability (controlplane/identity/scope.py; the ledger cannot import identity).
PLATFORM_LEDGER_READ = "platform.ledger.read"


class LedgerEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = LedgerEvent
        fields = list(STORED_COLUMNS)


class CheckpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = Checkpoint
        fields = ["seq", "head_hash", "tree_size", "root", "created_at", "key_id", "signature"]


def _hex_list() -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(), help_text="32-byte hashes, lowercase hex")


_TREE_HEAD_HELP = (
    "Signed tree head: ledger, seq, head_hash, tree_size, root, key_id, signature (Ed25519 over the RFC 8785 "
    "bytes of the first five), witnesses (witness records cosigning it)"
)
ReceiptSerializer = inline_serializer(
    "LedgerReceipt",
    {
        "format": serializers.CharField(),
        "log_id": serializers.CharField(),
        "seq": serializers.IntegerField(),
        "leaf_index": serializers.IntegerField(),
        "tree_size": serializers.IntegerField(),
        "inclusion_path": _hex_list(),
        "inclusion_proof": _hex_list(),
        "event": serializers.JSONField(
            help_text="the stored event with its canonical bytes, hash, signature"
        ),
        "tree_head": serializers.JSONField(help_text=_TREE_HEAD_HELP),
    },
)
ConsistencySerializer = inline_serializer(
    "LedgerConsistencyProof",
    {
        "log_id": serializers.CharField(),
        "tree_size_1": serializers.IntegerField(),
        "tree_size_2": serializers.IntegerField(),
        "consistency_path": _hex_list(),
        "tree_head_1": serializers.JSONField(help_text=_TREE_HEAD_HELP),
        "tree_head_2": serializers.JSONField(help_text=_TREE_HEAD_HELP),
    },
)


class LedgerEventFilter(django_filters.FilterSet):
    type = django_filters.CharFilter()
    type_prefix = django_filters.CharFilter(field_name="type", lookup_expr="startswith")
    subject = django_filters.CharFilter()
    trace = django_filters.CharFilter(field_name="trace_id")
    tenant = django_filters.CharFilter()
    seq_from = django_filters.NumberFilter(field_name="seq", lookup_expr="gte")
    seq_to = django_filters.NumberFilter(field_name="seq", lookup_expr="lte")

    class Meta:
        model = LedgerEvent
        fields = ["type", "subject", "tenant"]


class SeqCursorPagination(CursorPagination):
    """Seq order; `?page_size=` in 1..500, refused (VALIDATION_FAILED) otherwise rather than ignored."""

    ordering = "seq"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= self.max_page_size):
            raise ValidationError(
                {self.page_size_query_param: [f"an integer from 1 to {self.max_page_size}"]}
            )
        return int(raw)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
        return parameters


class LedgerEventViewSet(viewsets.ReadOnlyModelViewSet):
    """Events in seq order. Events of other tenants are hidden; tenant-less (installation-wide) events
    (sign-in failures, platform acts) are shown only to holders of `platform.ledger.read`."""

    serializer_class = LedgerEventSerializer
    filterset_class = LedgerEventFilter
    pagination_class = SeqCursorPagination
    required_capability = "ledger.read"
    lookup_field = "seq"
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return LedgerEvent.objects.none()
        principal = self.request.user
        tenants = [principal.tenant.slug]
        if principal.has_capability(PLATFORM_LEDGER_READ):
            tenants.append("")
        return LedgerEvent.objects.filter(tenant__in=tenants)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """A page says, in its `meta`, the lowest fidelity of the events it holds (demo data says demo)."""
        response = super().list(request, *args, **kwargs)
        for fidelity in {row.get("fidelity") for row in response.data.get("results", [])} - {None}:
            telemetry_mark(fidelity=fidelity)
        return response

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().retrieve(request, *args, **kwargs)
        if response.data.get("fidelity"):
            telemetry_mark(fidelity=response.data["fidelity"])
        return response

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "checkpoint",
                OpenApiTypes.INT,
                description="seq of the checkpoint whose tree head to prove against (default: the newest)",
            )
        ],
        responses=ReceiptSerializer,
    )
    @action(detail=True, methods=["get"], url_path="proof", filter_backends=[], pagination_class=None)
    def proof(self, request: Request, seq: str | None = None) -> Response:
        """The RFC 9162 inclusion proof of this event in a checkpoint's signed, witnessed tree head: a
        receipt `manage.py ledger verify-receipt` checks with pinned keys and no database."""
        event = self.get_object()  # only an event the principal may read
        raw = request.query_params.get("checkpoint")
        if raw is not None and not raw.isdigit():
            raise ControlPlaneError("VALIDATION_FAILED", "checkpoint is a seq (a positive integer)")
        return Response(event_receipt(seq=event.seq, checkpoint_seq=int(raw) if raw else None))


class CheckpointViewSet(viewsets.ReadOnlyModelViewSet):
    """Signed checkpoints (tree heads), newest first."""

    serializer_class = CheckpointSerializer
    queryset = Checkpoint.objects.all()
    required_capability = "ledger.read"
    lookup_field = "seq"
    lookup_value_regex = r"\d+"

    @extend_schema(
        parameters=[OpenApiParameter("second", OpenApiTypes.INT, OpenApiParameter.PATH)],
        responses=ConsistencySerializer,
    )
    @action(detail=True, methods=["get"], url_path=r"consistency/(?P<second>\d+)", pagination_class=None)
    def consistency(self, request: Request, seq: str | None = None, second: str | None = None) -> Response:
        """The RFC 9162 consistency proof that checkpoint `second`'s tree extends this checkpoint's."""
        checkpoint = self.get_object()
        return Response(checkpoint_consistency(first=checkpoint.seq, second=int(second)))


_VERIFY_RESULT = {
    "ok": serializers.BooleanField(),
    "events_checked": serializers.IntegerField(),
    "head_seq": serializers.IntegerField(allow_null=True),
    "head_hash": serializers.CharField(allow_null=True),
    "checkpoints_checked": serializers.IntegerField(),
    "failed_seq": serializers.IntegerField(required=False),
    "code": serializers.CharField(required=False),
    "detail": serializers.CharField(required=False),
}
_VERIFY_JOB = inline_serializer(
    "LedgerVerificationJob",
    {
        "job": serializers.CharField(),
        "status": serializers.ChoiceField(choices=["queued", "running", "done", "failed"]),
        "status_url": serializers.CharField(),
        "started": serializers.BooleanField(help_text="false when this request joined a job already running"),
    },
)
_VERIFY_DONE = inline_serializer(
    "LedgerVerification",
    {**_VERIFY_RESULT, "job": serializers.CharField(), "status": serializers.CharField()},
)


def _job_answer(request: Request, job: dict[str, Any], *, started: bool) -> Response:
    if job["status"] == verify_jobs.DONE:
        result = job["result"]
        return Response(
            {**result, "job": job["id"], "status": job["status"]}, status=200 if result["ok"] else 409
        )
    url = reverse("ledger-verify-job", kwargs={"job_id": job["id"]})
    return Response(
        {"job": job["id"], "status": job["status"], "status_url": url, "started": started},
        status=202,
        headers={"Location": url},
    )


class VerifyView(APIView):
    """Start a verification of the whole chain, or join the one running, and answer with its status:
    202 with the job and its status URL while it runs, 200 (ok) or 409 (broken, with the first bad seq)
    once it is done. Starting one is rate-limited per tenant (429 RATE_LIMITED, Retry-After)."""

    required_capability = "ledger.verify"

    @extend_schema(
        operation_id="api_v1_ledger_verify_start",
        responses={200: _VERIFY_DONE, 202: _VERIFY_JOB, 409: _VERIFY_DONE},
    )
    def get(self, request: Request) -> Response:
        from controlplane.ledger.tasks import ledger_verify_task

        try:
            job, started = verify_jobs.verify_job_start(
                tenant=request.user.tenant.slug, requested_by=request.user.ref
            )
        except ControlPlaneError as exc:
            if exc.code != "RATE_LIMITED":
                raise
            return Response(exc.as_dict(), status=429, headers={"Retry-After": str(exc.extra["retry_after"])})
        if started:
            try:
                ledger_verify_task.apply_async((job["id"],))
            except (OSError, KombuOperationalError) as exc:  # the broker is down: no job will run
                verify_jobs.verify_job_fail(job_id=job["id"], code="BROKER_UNAVAILABLE")
                raise ControlPlaneError("BROKER_UNAVAILABLE", "cannot queue the verification") from exc
            job = verify_jobs.verify_job_get(job_id=job["id"]) or job  # done already when run in-process
        return _job_answer(request, job, started=started)


class VerifyJobView(APIView):
    """The status of one verification job: 202 while queued or running, 200/409 with the result."""

    required_capability = "ledger.verify"

    @extend_schema(
        operation_id="api_v1_ledger_verify_status",
        responses={200: _VERIFY_DONE, 202: _VERIFY_JOB, 409: _VERIFY_DONE},
    )
    def get(self, request: Request, job_id: str) -> Response:
        job = verify_jobs.verify_job_get(job_id=job_id)
        if job is None:
            raise ControlPlaneError("NOT_FOUND", f"no verification job {job_id!r} (unknown or expired)")
        return _job_answer(request, job, started=False)
