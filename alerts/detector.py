"""One elevator's detector: rules in, alert signals out, with hysteresis and inhibition.

`ElevatorDetector` feeds each sample to the rules (`alerts.rules`), adds what events, status
messages and silence say, and turns "rule holds / does not hold" into `AlertSignal`s:

- `raise` when a rule starts to hold (or holds at a higher severity than was raised);
- `clear` only after the rule has stopped holding for `hysteresis_s` of device time, so a
  condition that flaps inside that window keeps one active alert instead of a stream of
  cleared/reactivated notices (SPEC §4 hysteresis);
- nothing is raised from telemetry while the elevator is offline (its Last Will arrived and
  no `online` status since; an `alarm_button` or `fault_code` event still is), and in
  `inspection` / `maintenance` mode only critical conditions
  are raised; a condition that still holds when the inhibition ends is raised then.

Alert times are the platform's receive times (device clocks can be wrong: `clock_skew`);
the device time goes into the details. Pure: no I/O and no clock; the caller passes times in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from alerts.rules import ElevatorLimits, Finding, Reading, RuleMemory, count_reopens, evaluate
from core.faults import SEVERITY_RANK, Severity, controller_fault_severity, fault_names

SignalAction = Literal["raise", "clear"]
INHIBITING_MODES: Final = frozenset({"inspection", "maintenance"})
# Rules that hold only at the instant of an event; they clear after `hysteresis_s` without one.
EVENT_TYPES: Final = fault_names("event")
# Every type judged from an elevator's messages and silence, i.e. all but those swept from
# the maintenance records (`alerts.maintenance`).
STREAM_TYPES: Final = fault_names("telemetry", "event", "status")


@dataclass(frozen=True, slots=True)
class AlertSignal:
    """A change the alert store must apply: raise or clear one (elevator, type)."""

    elevator: str
    site: str
    type: str
    action: SignalAction
    severity: Severity
    at: dt.datetime
    details: Mapping[str, Any] = field(default_factory=dict)


# Rules whose memory reaches further back than a rebuild's replay: after a restart their
# alert stays active until the new data is enough to judge them again.
EVIDENCE_TYPES: Final = frozenset({"levelling_error", "abnormal_vibration"})


@dataclass(slots=True)
class _Raised:
    severity: Severity
    clear_since_s: float | None = None  # device time the rule stopped holding
    awaiting_evidence: bool = False


class ElevatorDetector:
    """Detection state of one elevator; feed it that elevator's messages in order."""

    def __init__(self, *, elevator: str, site: str, limits: ElevatorLimits) -> None:
        self.elevator = elevator
        self.site = site
        self.limits = limits
        self.memory = RuleMemory()
        self.holding: dict[str, Finding] = {}
        self.raised: dict[str, _Raised] = {}
        self.online = True
        self.mode = "normal"
        self.last_device_s: float | None = None
        self.last_received: dt.datetime | None = None
        # When each cleared alert's rule had stopped holding (for a rebuild to adopt).
        self.stopped_holding_s: dict[str, float | None] = {}

    # -- inputs ---------------------------------------------------------------------------------

    def on_sample(self, reading: Reading, received_at: dt.datetime) -> list[AlertSignal]:
        """A telemetry sample; returns the signals it causes."""
        self._seen(received_at)
        self.mode = reading.mode
        self.last_device_s = reading.t_s
        found = evaluate(reading, self.memory, self.limits)
        # `offline` is not a sample rule; keep it as the status and silence left it.
        if "offline" in self.holding:
            found["offline"] = self.holding["offline"]
        self.holding = found
        return self._reconcile(reading.t_s, received_at, {"device_time_s": reading.t_s})

    def on_event(
        self, kind: str, body: Mapping[str, Any], t_s: float, received_at: dt.datetime
    ) -> list[AlertSignal]:
        """A device event (`alarm_button`, `fault_code`, `door_cycle`, `mode_change`, …)."""
        self._seen(received_at)
        signals: list[AlertSignal] = []
        if kind == "alarm_button":
            signals += self._instant(Finding("alarm_button", Severity.CRITICAL), t_s, received_at)
        elif kind == "fault_code":
            code = body.get("code")
            finding = Finding("controller_fault", controller_fault_severity(code), {"code": code})
            signals += self._instant(finding, t_s, received_at)
        elif kind == "door_cycle":
            reopens = body.get("reopens")
            if isinstance(reopens, int) and not isinstance(reopens, bool):
                count_reopens(self.memory, reopens)
        elif kind == "mode_change":
            new_mode = body.get("to")
            if isinstance(new_mode, str):
                self.mode = new_mode
        return signals + self._reconcile(t_s, received_at, {})

    def on_status(self, online: bool, received_at: dt.datetime) -> list[AlertSignal]:
        """A status message: the device's `online`, or its Last Will `offline`."""
        self._seen(received_at)
        self.online = online
        if online:
            self.holding.pop("offline", None)
        else:
            self.holding["offline"] = Finding("offline", Severity.MAJOR, {"cause": "last_will"})
        return self._reconcile(self.last_device_s, received_at, {})

    def on_silence(self, now: dt.datetime, grace_until: dt.datetime) -> list[AlertSignal]:
        """The clock ticked: raise `offline` when nothing arrived for too long."""
        if not self.online or self.last_received is None:
            return []
        window = self.limits["offline_intervals"] * self.limits["idle_interval_s"]
        silent_s = (now - self.last_received).total_seconds()
        if silent_s < window or now < grace_until:
            return []
        self.online = False
        self.holding["offline"] = Finding(
            "offline", Severity.MAJOR, {"cause": "silence", "silent_s": round(silent_s, 1)}
        )
        return self._reconcile(self.last_device_s, now, {})

    def on_future_timestamp(self, received_at: dt.datetime) -> list[AlertSignal]:
        """A message was refused for a device time too far ahead: the clock runs fast."""
        self._seen(received_at)
        finding = Finding("clock_skew", Severity.INFO, {"cause": "future_timestamp"})
        return self._instant(finding, self.last_device_s, received_at)

    # -- state changes --------------------------------------------------------------------------

    def _seen(self, received_at: dt.datetime) -> None:
        if self.last_received is None or received_at > self.last_received:
            self.last_received = received_at
        if "offline" in self.holding and self.holding["offline"].details.get("cause") == "silence":
            # A message after silence: it is back (a Last Will needs an `online` status).
            self.holding.pop("offline")
            self.online = True

    def _instant(
        self, finding: Finding, t_s: float | None, received_at: dt.datetime
    ) -> list[AlertSignal]:
        """Raise an event-driven finding; it clears after `hysteresis_s` without a repeat."""
        self.holding[finding.type] = finding
        signals = self._reconcile(t_s, received_at, {"device_time_s": t_s})
        self.holding.pop(finding.type, None)
        raised = self.raised.get(finding.type)
        if raised is not None:
            raised.clear_since_s = t_s
        return signals

    def inhibited(self, finding: Finding) -> bool:
        """True while this finding must not be raised (offline, or a technician's mode)."""
        if finding.type == "offline":
            return False
        # An event proves the device is talking; a passenger's alarm is never held back.
        if not self.online and finding.type not in EVENT_TYPES:
            return True
        return self.mode in INHIBITING_MODES and finding.severity is not Severity.CRITICAL

    def _reconcile(
        self, t_s: float | None, at: dt.datetime, context: Mapping[str, Any]
    ) -> list[AlertSignal]:
        signals: list[AlertSignal] = []
        for kind, finding in self.holding.items():
            raised = self.raised.get(kind)
            if raised is not None:
                raised.clear_since_s = None
                if SEVERITY_RANK[finding.severity] <= SEVERITY_RANK[raised.severity]:
                    continue
            if self.inhibited(finding):
                continue
            self.raised[kind] = _Raised(finding.severity)
            signals.append(self._signal(kind, "raise", finding.severity, at, finding, context))
        hysteresis_s = self.limits["hysteresis_s"]
        for kind, raised in list(self.raised.items()):
            if kind in self.holding:
                continue
            if raised.awaiting_evidence:
                if not self._has_evidence(kind):
                    continue
                raised.awaiting_evidence = False
            if raised.clear_since_s is None:
                raised.clear_since_s = t_s
            clear_now = kind == "offline" or (
                t_s is not None
                and raised.clear_since_s is not None
                and t_s - raised.clear_since_s >= hysteresis_s
            )
            if clear_now:
                self.stopped_holding_s[kind] = raised.clear_since_s
                del self.raised[kind]
                signals.append(self._signal(kind, "clear", raised.severity, at, None, context))
        return signals

    def _signal(  # noqa: PLR0917 - private, called from one place
        self,
        kind: str,
        action: SignalAction,
        severity: Severity,
        at: dt.datetime,
        finding: Finding | None,
        context: Mapping[str, Any],
    ) -> AlertSignal:
        details: dict[str, Any] = dict(finding.details) if finding is not None else {}
        details.update({k: v for k, v in context.items() if v is not None})
        return AlertSignal(self.elevator, self.site, kind, action, severity, at, details)

    def _has_evidence(self, kind: str) -> bool:
        memory = self.memory
        if kind == "levelling_error":
            return len(memory.stop_levels_mm) >= self.limits["levelling_stops"]
        if kind == "abnormal_vibration":
            return memory.last_trip_a95_mg is not None
        return True

    # -- restart --------------------------------------------------------------------------------

    def adopt_raised(self, raised: Mapping[str, Severity]) -> None:
        """After a rebuild: the alerts the database holds as active are the raised ones.

        A rule that the replay saw stop holding keeps that moment, so its hysteresis runs on
        from there; one the replay never saw keeps its alert until data shows it cleared.
        """
        adopted: dict[str, _Raised] = {}
        for kind, severity in raised.items():
            if kind in self.holding:
                since = None
            elif kind in self.raised:
                since = self.raised[kind].clear_since_s
            elif kind in self.stopped_holding_s:
                since = self.stopped_holding_s[kind]
            elif kind in EVIDENCE_TYPES and not self._has_evidence(kind):
                adopted[kind] = _Raised(severity, None, awaiting_evidence=True)
                continue
            else:
                since = self.last_device_s
            adopted[kind] = _Raised(severity, since)
        self.raised = adopted
