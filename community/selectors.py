"""Reads for the pages and the consumers: queues, counts, payloads, replays. No writes here."""

from __future__ import annotations

from django.db.models import Case, Count, IntegerField, QuerySet, Value, When
from django.utils import timezone

from clinic import roles
from clinic.access import actor_for_user
from clinic.models import Hospital, Patient
from community.models import (
    CLOSED_STATUSES,
    Alert,
    AlertEvent,
    AlertStatus,
    DispatchHub,
    Severity,
    Snooze,
    StreamCounter,
)

# How many missed events a reconnecting client may ask for; beyond it the client reloads.
REPLAY_LIMIT = 500


def hub_stream(hub: DispatchHub | str) -> str:
    return f"hub:{hub if isinstance(hub, str) else hub.code}"


def hospital_stream(hospital: Hospital | str) -> str:
    return f"hospital:{hospital if isinstance(hospital, str) else hospital.code}"


def group_name(stream: str) -> str:
    """The Channels group of a stream: "hub:hub-tianhe" → "hub.hub-tianhe"."""
    return stream.replace(":", ".", 1)


def patient_hub(patient: Patient) -> DispatchHub | None:
    """The hub that serves the patient's community (the first by id if several do)."""
    if patient.community_id is None:
        return None
    return DispatchHub.objects.filter(communities=patient.community_id).order_by("pk").first()


def hubs_for_user(user) -> QuerySet[DispatchHub]:
    """The hubs whose board ``user`` may watch (all of them for an admin)."""
    if actor_for_user(user).role == roles.ADMIN:
        return DispatchHub.objects.all()
    return DispatchHub.objects.filter(memberships__practitioner__user=user).distinct()


def _by_priority(qs: QuerySet[Alert]) -> QuerySet[Alert]:
    """Critical first, then the oldest: the alert waiting longest at the top of its severity."""
    return qs.annotate(
        severity_rank=Case(
            When(severity=Severity.CRITICAL, then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        )
    ).order_by("severity_rank", "opened_at", "pk")


def hub_queue(
    hub: DispatchHub,
    *,
    status: str | list[str] | None = None,
    community: str | None = None,
    rule: str | None = None,
    severity: str | None = None,
) -> QuerySet[Alert]:
    """A hub's alerts, open ones by default, sorted by severity then age.

    ``status`` one status or a list; ``community`` a community code; ``rule`` an exact rule name
    or a family prefix ending in ":" ("threshold:").
    """
    qs = Alert.objects.filter(hub=hub).select_related(
        "patient", "acknowledged_by", "assigned_to", "escalated_to", "hub"
    )
    if status is None:
        qs = qs.exclude(status__in=CLOSED_STATUSES)
    elif isinstance(status, str):
        qs = qs.filter(status=status)
    else:
        qs = qs.filter(status__in=status)
    if community:
        qs = qs.filter(patient__community__code=community)
    if rule:
        qs = qs.filter(rule__startswith=rule) if rule.endswith(":") else qs.filter(rule=rule)
    if severity:
        qs = qs.filter(severity=severity)
    return _by_priority(qs)


def hub_counts(hub: DispatchHub) -> dict[str, int]:
    """Open alerts per status and per severity, for the board's header."""
    open_alerts = Alert.objects.filter(hub=hub).exclude(status__in=CLOSED_STATUSES)
    counts = {s: 0 for s in AlertStatus.values if s not in CLOSED_STATUSES}
    counts.update({s: 0 for s in Severity.values})
    for row in open_alerts.values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    for row in open_alerts.values("severity").annotate(n=Count("pk")):
        counts[row["severity"]] = row["n"]
    counts["total"] = sum(counts[s] for s in Severity.values)
    return counts


def hospital_inbox(hospital: Hospital, *, include_closed: bool = False) -> QuerySet[Alert]:
    """Alerts escalated to ``hospital``, sorted by severity then age."""
    qs = Alert.objects.filter(escalated_to=hospital).select_related(
        "patient", "acknowledged_by", "assigned_to", "hub"
    )
    if not include_closed:
        qs = qs.exclude(status__in=CLOSED_STATUSES)
    return _by_priority(qs)


def hub_snoozes(hub: DispatchHub, *, now=None) -> QuerySet[Snooze]:
    """Snoozes still running in ``hub``, visible to every doctor of it."""
    return Snooze.objects.filter(hub=hub, until__gt=now or timezone.now()).select_related(
        "patient", "by"
    )


def active_snooze(patient_id: int, rule: str, *, now=None) -> Snooze | None:
    return (
        Snooze.objects.filter(patient_id=patient_id, rule=rule, until__gt=now or timezone.now())
        .order_by("-until")
        .first()
    )


def _iso(value) -> str | None:
    return timezone.localtime(value).isoformat() if value else None


def alert_payload(alert: Alert) -> dict:
    """The alert as every client sees it, in frames, replays and the pages' JSON."""
    snooze = active_snooze(alert.patient_id, alert.rule) if alert.is_open else None
    return {
        "id": alert.pk,
        "patient_id": alert.patient_id,
        "patient_name": alert.patient.name,
        "hub": alert.hub.code if alert.hub_id else None,
        "rule": alert.rule,
        "vital": alert.vital or None,
        "severity": alert.severity,
        "status": alert.status,
        "message": alert.message,
        "values": alert.values,
        "news2": (
            {
                "total": alert.news2_total,
                "risk": alert.news2_risk,
                "missing": alert.news2_missing,
                "complete": not alert.news2_missing,
            }
            if alert.news2_total is not None
            else None
        ),
        "opened_at": _iso(alert.opened_at),
        "updated_at": _iso(alert.updated_at),
        "closed_at": _iso(alert.closed_at),
        "acknowledged_by": alert.acknowledged_by.name if alert.acknowledged_by_id else None,
        "assigned_to": alert.assigned_to.name if alert.assigned_to_id else None,
        "escalation_tier": alert.escalation_tier,
        "escalated_to": alert.escalated_to.code if alert.escalated_to_id else None,
        "escalate_at": _iso(alert.escalate_at),
        "trigger_count": alert.trigger_count,
        "snoozed_until": _iso(snooze.until) if snooze else None,
        "reopens": alert.reopens_id,
        "last_action": _last_action(alert),
    }


def _last_action(alert: Alert) -> dict | None:
    """The latest transition with its note: how a hospital's question reaches the hub's board."""
    last = alert.transitions.select_related("by").order_by("-at", "-pk").first()
    if last is None:
        return None
    return {
        "action": last.action,
        "note": last.note,
        "by": (last.by.get_full_name() or last.by.get_username()) if last.by_id else None,
        "at": _iso(last.at),
    }


def event_frame(event: AlertEvent) -> dict:
    """The WebSocket frame of one stream event: the alert's state after it, flat."""
    return {
        "type": "alert",
        "stream": event.stream,
        "seq": event.seq,
        "event": event.event,
        "at": _iso(event.at),
        **event.payload,
    }


def stream_head(stream: str) -> int:
    """The last sequence number handed out on ``stream`` (0 before the first event)."""
    return (
        StreamCounter.objects.filter(stream=stream).values_list("last_seq", flat=True).first() or 0
    )


def events_since(stream: str, seq: int, *, limit: int = REPLAY_LIMIT) -> list[AlertEvent]:
    """The events after ``seq``, in order, at most ``limit`` of them."""
    return list(AlertEvent.objects.filter(stream=stream, seq__gt=seq).order_by("seq")[:limit])


def oldest_kept_seq(stream: str) -> int | None:
    """The first seq still stored (events may be pruned); None for an empty stream."""
    return (
        AlertEvent.objects.filter(stream=stream)
        .order_by("seq")
        .values_list("seq", flat=True)
        .first()
    )


def alert_history(alert: Alert) -> QuerySet:
    """Transitions, oldest first, for the alert's detail page."""
    return alert.transitions.select_related("by")


def alert_markers(patient: Patient, since) -> list[dict]:
    """The patient's alerts opened since ``since``, as markers for the timeline chart.

    The caller has already checked that the user may read the patient.
    """
    return [
        {
            "id": alert.pk,
            "at": _iso(alert.opened_at),
            "rule": alert.rule,
            "vital": alert.vital or None,
            "severity": alert.severity,
            "status": alert.status,
            "message": alert.message,
        }
        for alert in Alert.objects.filter(patient=patient, opened_at__gte=since).order_by(
            "opened_at"
        )
    ]
