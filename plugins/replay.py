"""The plugins replay (`manage.py replay --plugin NAME | --plugins`): every transition re-derived.

For each plugin, from the ledger alone:

1. every `controlplane.plugin.transitioned` event is decided again: the pure supervisor
   (`plugins.supervisor.decide`) runs on the evidence and the tick the event recorded, and the state and
   reason code it gives must be the recorded ones, and the `from` state must be where the previous events
   left the plugin (no transition is missing from the chain);
2. the fold of registered / transitioned / quarantined / released events gives the state the plugins table
   must show.
"""

from __future__ import annotations

from controlplane.kernel.replay import Replayer, ReplayReport
from controlplane.ledger.models import LedgerEvent
from plugins.models import Plugin
from plugins.supervisor import Evidence, decide, parse_time

TYPES = [
    "controlplane.plugin.registered",
    "controlplane.plugin.transitioned",
    "controlplane.plugin.quarantined",
    "controlplane.plugin.released",
]


def replay_verify(plugin: str | None = None) -> ReplayReport:
    report = ReplayReport(domain="plugins")
    events = LedgerEvent.objects.filter(type__in=TYPES).order_by("seq")
    if plugin is not None:
        events = events.filter(subject=f"plugin/{plugin}")
    folded: dict[str, str] = {}
    for seq, type_, subject, data, codes in events.values_list(
        "seq", "type", "subject", "data", "reason_codes"
    ):
        name = subject.removeprefix("plugin/")
        if type_ == "controlplane.plugin.registered":
            folded.setdefault(name, data.get("state", "unknown"))
        elif type_ == "controlplane.plugin.transitioned":
            report.differ(subject, "from", data["from"], folded.get(name), seq)
            decision = decide(Evidence.from_data(data["evidence"]), parse_time(data["tick"]))
            report.differ(subject, "to", data["to"], decision.state, seq)
            report.differ(subject, "reason_codes", list(codes), [decision.code], seq)
            folded[name] = data["to"]
        elif type_ == "controlplane.plugin.quarantined":
            report.differ(subject, "from", data["from"], folded.get(name), seq)
            folded[name] = "quarantined"
        else:
            folded[name] = "unknown"
    rows = Plugin.objects.all() if plugin is None else Plugin.objects.filter(name=plugin)
    for name, state in rows.values_list("name", "state"):
        report.checked += 1
        report.differ(f"plugin/{name}", "state", state, folded.get(name))
    return report


PLUGINS_REPLAYER = Replayer(name="plugins", verify=replay_verify, subject="plugin", every="plugins")
