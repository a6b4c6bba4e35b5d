"""Runtime API: submit intents, follow executions, cancel them, and operate the kill switch."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.kernel.errors import ControlPlaneError
from controlplane.runtime import selectors, services
from controlplane.runtime.models import Execution, Intent, IntentStatus, KillSwitch, StepRun
from controlplane.runtime.traces import trace_get


class StepRunSerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField(
        help_text='The status in words: "waiting for approval", "held by the kill switch", a hold\'s own '
        'words ("waiting for plugin ..."), "queued", "completed" ...'
    )
    key = serializers.CharField(source="step.key")
    action = serializers.CharField(source="step.action")
    execution_key = serializers.CharField(source="step.execution_key")
    depends_on = serializers.JSONField(source="step.depends_on")
    approval = serializers.CharField(source="approval_id", allow_null=True)

    class Meta:
        model = StepRun
        fields = [
            "key",
            "action",
            "execution_key",
            "depends_on",
            "status",
            "state",
            "verdict",
            "enforced",
            "effective_tier",
            "quorum",
            "decision",
            "approval",
            "attempts",
            "attempt_log",
            "outcome",
            "reason_codes",
            "dispatched_at",
            "enqueued_at",
            "not_before",
            "lease_expires_at",
            "started_at",
            "finished_at",
            "held_gate",
            "held_code",
            "held_detail",
            "held_since",
        ]

    def get_state(self, run: StepRun) -> str:
        return selectors.step_state(run)


class ExecutionSerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField(
        help_text="The execution's state in words (see steps' `state`)."
    )
    steps = StepRunSerializer(source="step_runs", many=True, read_only=True)
    intent = serializers.CharField(source="intent_id")
    plan = serializers.CharField(source="plan_id")

    class Meta:
        model = Execution
        fields = [
            "id",
            "intent",
            "plan",
            "status",
            "state",
            "trace_id",
            "environment",
            "profile_name",
            "profile_version",
            "profile_hash",
            "started_at",
            "finished_at",
            "reason_codes",
            "steps",
        ]

    def get_state(self, execution: Execution) -> str:
        return selectors.execution_state(execution, list(execution.step_runs.all()))


class IntentStepSerializer(serializers.Serializer):
    """A step as the submitter sees it right after submitting: what it is doing or waiting for."""

    key = serializers.CharField(source="step.key")
    action = serializers.CharField(source="step.action")
    status = serializers.CharField()
    state = serializers.SerializerMethodField()
    approval = serializers.CharField(source="approval_id", allow_null=True)
    reason_codes = serializers.ListField(child=serializers.CharField())

    def get_state(self, run: StepRun) -> str:
        return selectors.step_state(run)


class IntentSerializer(serializers.ModelSerializer):
    """The intent as submitted: `status` is the intent's (compiled or rejected); what its execution and
    each step are doing right now is in `execution_status`, `execution_state` and `steps`."""

    execution = serializers.SerializerMethodField()
    execution_status = serializers.SerializerMethodField()
    execution_state = serializers.SerializerMethodField()
    steps = serializers.SerializerMethodField()
    plan = serializers.CharField(source="plan_id", allow_null=True)

    class Meta:
        model = Intent
        fields = [
            "id",
            "status",
            "plan",
            "execution",
            "execution_status",
            "execution_state",
            "steps",
            "rejection",
            "trace_id",
            "traceparent",
            "received_at",
        ]

    def _execution(self, intent: Intent) -> tuple[Execution | None, list[StepRun]]:
        if not hasattr(intent, "_api_execution"):
            execution = Execution.objects.filter(intent=intent).first()
            runs = (
                list(execution.step_runs.select_related("step").order_by("step__position"))
                if execution
                else []
            )
            intent._api_execution = (execution, runs)  # type: ignore[attr-defined]
        return intent._api_execution  # type: ignore[attr-defined]

    def get_execution(self, intent: Intent) -> str | None:
        execution, _ = self._execution(intent)
        return execution.id if execution else None

    def get_execution_status(self, intent: Intent) -> str | None:
        execution, _ = self._execution(intent)
        return execution.status if execution else None

    def get_execution_state(self, intent: Intent) -> str | None:
        execution, runs = self._execution(intent)
        return selectors.execution_state(execution, runs) if execution else None

    @extend_schema_field(IntentStepSerializer(many=True))
    def get_steps(self, intent: Intent) -> list[dict[str, Any]]:
        _, runs = self._execution(intent)
        return IntentStepSerializer(runs, many=True).data


class StepDraftSerializer(serializers.Serializer):
    key = serializers.CharField()
    action = serializers.CharField()
    version = serializers.CharField(required=False)
    inputs = serializers.DictField(required=False)
    depends_on = serializers.ListField(child=serializers.CharField(), required=False)


class PlanDraftSerializer(serializers.Serializer):
    """The documented shape of a draft. The compiler validates it (with PLAN_* reason codes), not DRF."""

    goal = serializers.CharField()
    context = serializers.DictField(required=False)
    steps = StepDraftSerializer(many=True)


class IntentCreateView(APIView):
    """Submit a typed plan draft with an `Idempotency-Key` header; the same key returns the same result."""

    required_capability = "intents.submit"

    @extend_schema(
        request=PlanDraftSerializer,
        responses={201: IntentSerializer, 200: IntentSerializer},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                {"type": "string", "minLength": 1, "maxLength": 255},
                OpenApiParameter.HEADER,
                required=True,
                description="1-255 characters; the same key returns the same intent.",
            )
        ],
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise ControlPlaneError("PLAN_INVALID", "the body is a JSON object (a plan draft)")
        intent = services.intent_submit(
            principal=request.user,
            draft=request.data,
            idempotency_key=request.headers.get("Idempotency-Key", ""),
            traceparent=request.headers.get("traceparent"),
        )
        body: dict[str, Any] = IntentSerializer(intent).data
        if intent.status == IntentStatus.REJECTED:
            refusal = intent.rejection
            return Response({**refusal, "intent": intent.id, "request_id": request.request_id}, status=400)
        return Response(body, status=status.HTTP_201_CREATED if intent.created else status.HTTP_200_OK)


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField()


class ExecutionViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ExecutionSerializer
    required_capabilities = {
        "list": "executions.read",
        "retrieve": "executions.read",
        "cancel": "executions.cancel",
        "rollback": "intents.submit",  # a rollback is an intent of its own (services/rollback.py)
    }
    filterset_fields = ["status", "trace_id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Execution.objects.none()
        return (
            Execution.objects.filter(tenant=self.request.user.tenant)
            .select_related("intent", "plan")
            .prefetch_related("step_runs__step")
        )

    @extend_schema(request=CancelSerializer, responses=ExecutionSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        payload = CancelSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        execution = services.execution_cancel(
            execution=self.get_object(), actor=request.user, reason=payload.validated_data["reason"]
        )
        return Response(ExecutionSerializer(self.get_queryset().get(pk=execution.pk)).data)

    @extend_schema(request=CancelSerializer, responses={202: IntentSerializer})
    @action(detail=True, methods=["post"], url_path=r"steps/(?P<key>[a-z0-9][a-z0-9_.-]{0,62})/rollback")
    def rollback(self, request: Request, key: str, pk: str | None = None) -> Response:
        """Undo a completed step: its action's compensating action runs as a governed step of its own (an
        intent in the same trace: compiled, a policy verdict, an approval when its tier needs one)."""
        from controlplane.runtime.services.rollback import step_rollback

        payload = CancelSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        intent = step_rollback(
            execution=self.get_object(),
            step_key=key,
            actor=request.user,
            reason=payload.validated_data["reason"],
        )
        if intent.status == IntentStatus.REJECTED:  # recorded, as any refused plan (intent_submit)
            return Response(
                {**intent.rejection, "intent": intent.id, "request_id": request.request_id}, status=400
            )
        return Response(IntentSerializer(intent).data, status=202)


class KillSwitchSerializer(serializers.ModelSerializer):
    held = serializers.ChoiceField(
        choices=list(services.HELD_CHOICES),
        default="decide",
        write_only=True,
        help_text="On release, what becomes of the steps this switch held: resume them, cancel their "
        "executions, or decide one by one (the default: they stay held). Ignored when engaging.",
    )
    holding = serializers.SerializerMethodField(
        help_text="How many executions the kill switch holds that this switch covers (visible to you)."
    )

    class Meta:
        model = KillSwitch
        fields = ["scope", "target", "engaged", "reason", "held", "changed_by", "changed_at", "holding"]
        read_only_fields = ["changed_by", "changed_at"]
        # The model defaults `engaged`; a request must say which way it turns the switch.
        extra_kwargs = {"engaged": {"required": True}}
        validators: list = []

    def get_holding(self, switch: KillSwitch) -> int:
        return selectors.killswitch_holding(switch=switch, held=self.context.get("held", []))


class KillSwitchChangedSerializer(KillSwitchSerializer):
    held_result = serializers.DictField(
        child=serializers.IntegerField(),
        read_only=True,
        help_text="What the release did with what the switch held: resumed, cancelled, still_held.",
    )

    class Meta(KillSwitchSerializer.Meta):
        fields = [*KillSwitchSerializer.Meta.fields, "held_result"]


class HeldExecutionSerializer(serializers.Serializer):
    """An execution with steps the kill switch holds."""

    execution = serializers.CharField(source="execution.id")
    tenant = serializers.CharField(source="execution.tenant.slug")
    goal = serializers.CharField(source="execution.plan.goal")
    submitted_by = serializers.CharField(source="execution.intent.principal.ref")
    trace_id = serializers.CharField(source="execution.trace_id")
    held_since = serializers.DateTimeField(allow_null=True)
    detail = serializers.CharField()
    steps = serializers.SerializerMethodField()
    engaged = serializers.SerializerMethodField(
        help_text="Switches still engaged over a held step (`scope/target`): resuming is refused until "
        "they are released."
    )

    def get_steps(self, held: selectors.HeldExecution) -> list[str]:
        return [run.step.key for run in held.steps]

    def get_engaged(self, held: selectors.HeldExecution) -> list[str]:
        return [f"{s.scope}/{s.target or '*'}" for s in held.engaged]


class HeldDecisionSerializer(serializers.Serializer):
    execution = serializers.CharField(max_length=64)
    decision = serializers.ChoiceField(choices=["resume", "cancel"])
    reason = serializers.CharField(max_length=2000)


class KillSwitchView(APIView):
    """`GET` lists the switches the caller may see; `POST {scope, target, engaged, reason}` turns one.

    A tenant principal (`killswitch.manage`) sees the global, action-wide and its own tenant's switches and
    turns only its own tenant's; the rest needs `platform.killswitch.manage` as well
    (PLATFORM_SCOPE_REQUIRED, decided by the service, as for the console and the CLI).
    """

    required_capability = "killswitch.manage"

    @extend_schema(responses=KillSwitchSerializer(many=True))
    def get(self, request: Request) -> Response:
        switches = selectors.killswitch_visible(principal=request.user)
        held = selectors.killswitch_held_executions(principal=request.user)
        return Response(KillSwitchSerializer(switches, many=True, context={"held": held}).data)

    @extend_schema(request=KillSwitchSerializer, responses=KillSwitchChangedSerializer)
    def post(self, request: Request) -> Response:
        payload = KillSwitchSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        switch = services.killswitch_set(
            scope=data["scope"],
            target=data.get("target", ""),
            engaged=data["engaged"],
            reason=data["reason"],
            actor=request.user,
            held=data["held"],
        )
        held = selectors.killswitch_held_executions(principal=request.user)
        return Response(KillSwitchChangedSerializer(switch, context={"held": held}).data)


class KillSwitchHeldView(APIView):
    """`GET` lists the executions the kill switch holds (yours; every tenant's with
    `platform.killswitch.manage`), oldest hold first; `POST {execution, decision, reason}` resumes or cancels
    one of them, as the person's ledgered act (`decision`: resume | cancel). Resuming while a switch still
    covers it is 503 KILL_SWITCH_ENGAGED; an execution with nothing held is 409 KILL_SWITCH_NOTHING_HELD;
    another tenant's is 404 NOT_FOUND.
    """

    required_capability = "killswitch.manage"

    @extend_schema(responses=HeldExecutionSerializer(many=True))
    def get(self, request: Request) -> Response:
        held = selectors.killswitch_held_executions(principal=request.user)
        return Response(HeldExecutionSerializer(held, many=True).data)

    @extend_schema(request=HeldDecisionSerializer, responses={200: HeldExecutionSerializer(many=True)})
    def post(self, request: Request) -> Response:
        payload = HeldDecisionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        execution = selectors.killswitch_decidable_execution(
            principal=request.user, execution_id=data["execution"]
        )
        if execution is None:
            raise ControlPlaneError("NOT_FOUND", f"no execution {data['execution']} visible to you")
        services.killswitch_held_decide(
            execution=execution, decision=data["decision"], reason=data["reason"], actor=request.user
        )
        held = selectors.killswitch_held_executions(principal=request.user)
        return Response(HeldExecutionSerializer(held, many=True).data)


class InstalledActionSerializer(serializers.Serializer):
    """An action a plan step may name: its base risk tier (policy may raise it, e.g. for `prod`
    targets), its executor, the skill providing it, and the JSON Schemas of its inputs and outcome."""

    name = serializers.CharField()
    version = serializers.CharField()
    description = serializers.CharField()
    risk_tier = serializers.CharField()
    executor = serializers.CharField()
    skill = serializers.CharField(source="skill.name")
    skill_version = serializers.CharField(source="skill.version")
    input_schema = serializers.JSONField()
    output_schema = serializers.JSONField()


class ActionListView(APIView):
    """The installed actions (newest version of each, from skills that are installed and verified)."""

    required_capability = "intents.submit"

    @extend_schema(responses=InstalledActionSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(InstalledActionSerializer(selectors.actions_installed(), many=True).data)


class TraceSerializer(serializers.Serializer):
    """The documented shape of a trace (the view returns `Trace.as_dict()`)."""

    trace_id = serializers.CharField()
    tenant = serializers.CharField()
    events = serializers.IntegerField(help_text="ledger events found for the trace")
    first_seq = serializers.IntegerField(allow_null=True)
    last_seq = serializers.IntegerField(allow_null=True)
    roots = serializers.ListField(
        child=serializers.DictField(),
        help_text="nodes {kind, ref, title, status, time, seq, hash, event_type, reason_codes, detail, "
        "children}: intent -> plan -> execution -> steps (verdicts) -> approval, decisions -> runs -> "
        "outcomes",
    )


class TraceView(APIView):
    """The tree of one trace: intent -> plan -> verdicts -> approvals -> step runs -> outcomes.

    Each node names the ledger event that records it (`seq`, `hash`). Tenant-scoped; an unknown trace is
    404 TRACE_NOT_FOUND, a malformed id 400 TRACE_ID_INVALID.
    """

    required_capability = "executions.read"

    @extend_schema(
        responses={200: TraceSerializer},
        parameters=[
            OpenApiParameter(
                "trace_id",
                # 32 hex digits, at least one of them not zero (W3C), without a look-ahead.
                {"type": "string", "minLength": 32, "maxLength": 32, "pattern": "^0*[1-9a-f][0-9a-f]*$"},
                OpenApiParameter.PATH,
                description="W3C trace id: 32 lowercase hex digits, not all zero.",
            )
        ],
    )
    def get(self, request: Request, trace_id: str) -> Response:
        return Response(trace_get(trace_id=trace_id, tenant=request.user.tenant).as_dict())
