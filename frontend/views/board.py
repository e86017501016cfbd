"""The hub triage board and the hospital escalation inbox, and the alert actions they post.

Views stay thin: pick the stream the user may watch, render the queue from
`community.selectors`, and turn posted actions into `community.actions.check_*` calls. Every
connected board learns of an action through the alert stream, including the one that posted it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from django.views.decorators.http import require_POST

from clinic import roles
from clinic.access import actor_for_user
from clinic.models import Hospital
from community import actions, hospital_actions, selectors
from community.access import can_watch_hospital, can_watch_hub
from community.errors import AlertError
from community.models import AlertStatus, DispatchTask, Severity
from fhir import audit

ACTIONS = (
    "acknowledge",
    "assign",
    "dispatch",
    "escalate",
    "resolve",
    "dismiss",
    "snooze",
    "accept",
    "request_info",
    "hand_back",
)


def _labels() -> dict[str, str]:
    """Words the board's script needs, in the page's language."""
    return {
        "critical": _("critical"),
        "warning": _("warning"),
        "open": _("open"),
        "acknowledged": _("acknowledged"),
        "dispatched": _("dispatched"),
        "escalated": _("escalated"),
        "resolved": _("resolved"),
        "dismissed": _("dismissed"),
        "acknowledge": _("Acknowledge"),
        "connected": _("Live"),
        "disconnected": _("Reconnecting…"),
        "empty": _("No open alerts."),
        "action_failed": _("The action failed"),
        "low": pgettext("NEWS2 risk", "low"),
        "low-medium": pgettext("NEWS2 risk", "low-medium"),
        "medium": pgettext("NEWS2 risk", "medium"),
        "high": pgettext("NEWS2 risk", "high"),
        # NEWS2 from home monitors lacks what is only observed at the bedside: say so.
        "news2_partial": _("at least; not measured: %(missing)s"),
        "respiratory_rate": _("respiration"),
        "spo2": _("SpO₂"),
        "air_or_oxygen": _("air or oxygen"),
        "systolic_bp": _("systolic BP"),
        "pulse": _("pulse"),
        "consciousness": _("consciousness"),
        "temperature": _("temperature"),
    }


@login_required
def hub_board(request):
    if roles.role_of(request.user) not in (roles.COMMUNITY_DOCTOR, roles.ADMIN):
        raise PermissionDenied
    hubs = list(selectors.hubs_for_user(request.user))
    if roles.role_of(request.user) == roles.ADMIN and not hubs:
        from community.models import DispatchHub

        hubs = list(DispatchHub.objects.all())
    if not hubs:
        raise PermissionDenied("You are not a member of any dispatch hub.")
    hub = next((h for h in hubs if h.code == request.GET.get("hub")), hubs[0])
    if not can_watch_hub(request.user, hub):
        raise PermissionDenied
    filters = {k: request.GET.get(k) or None for k in ("status", "community", "rule", "severity")}
    queue = list(selectors.hub_queue(hub, **filters))
    _audit_listed(request, queue, "triage board")
    return render(
        request,
        "frontend/hub_board.html",
        {
            "hub": hub,
            "hubs": hubs,
            "queue": queue,
            "counts": selectors.hub_counts(hub),
            "filters": filters,
            "statuses": [s for s in AlertStatus.choices],
            "severities": Severity.choices,
            "communities": hub.communities.all(),
            "rules": sorted({a.rule for a in queue}),
            "members": hub.members.select_related("user"),
            "hospitals": Hospital.objects.filter(is_pilot=True),
            "tasks": DispatchTask.objects.filter(alert__hub=hub, done_at__isnull=True)
            .select_related("alert__patient", "assignee")
            .order_by("due_at")[:50],
            "snoozes": selectors.hub_snoozes(hub),
            "dispatch_kinds": DispatchTask.Kind.choices,
            "socket_path": f"/ws/hub/{hub.code}/",
            "head": selectors.stream_head(selectors.hub_stream(hub)),
            "initial": [selectors.alert_payload(a) for a in queue],
            "labels": _labels(),
        },
    )


@login_required
def hospital_inbox(request):
    if roles.role_of(request.user) != roles.HOSPITAL_CLINICIAN:
        raise PermissionDenied
    practitioner = request.user.practitioner
    hospital = practitioner.hospital
    if hospital is None or not can_watch_hospital(request.user, hospital):
        raise PermissionDenied
    queue = list(selectors.hospital_inbox(hospital))
    _audit_listed(request, queue, "escalation inbox")
    return render(
        request,
        "frontend/hospital_inbox.html",
        {
            "practitioner": practitioner,
            "hospital": hospital,
            "queue": queue,
            "socket_path": f"/ws/hospital/{hospital.code}/",
            "hospital_code": hospital.code,
            "head": selectors.stream_head(selectors.hospital_stream(hospital)),
            "initial": [selectors.alert_payload(a) for a in queue],
            "labels": _labels(),
        },
    )


def _audit_listed(request, queue, purpose: str) -> None:
    """A queue shows patients' data: one audit record per patient on the page."""
    actor = actor_for_user(request.user)
    for patient_id in sorted({a.patient_id for a in queue}):
        audit.record(
            actor,
            action="R",
            channel="page",
            patient_id=patient_id,
            entity=request.path,
            purpose=purpose,
        )


def _datetime(raw: str | None) -> datetime | None:
    if not raw:
        return None
    value = datetime.fromisoformat(raw)
    return value if value.tzinfo else timezone.make_aware(value)


@login_required
@require_POST
def alert_action(request, alert_id: int, action: str):
    """One action on one alert; JSON in and out for the board's script."""
    if action not in ACTIONS:
        raise Http404
    data = request.POST
    user = request.user
    try:
        if action == "acknowledge":
            alert = actions.check_acknowledge_alert(user, alert_id)
        elif action == "assign":
            alert = actions.check_assign_alert(user, alert_id, int(data.get("assignee") or 0))
        elif action == "dispatch":
            task = actions.check_dispatch_alert(
                user,
                alert_id,
                kind=data.get("kind", ""),
                assignee_id=int(data.get("assignee") or 0),
                due_at=_datetime(data.get("due_at")),
                note=data.get("note", ""),
            )
            alert = task.alert
        elif action == "escalate":
            hospital = data.get("hospital")
            alert = actions.check_escalate_alert(
                user,
                alert_id,
                reason=data.get("reason", ""),
                hospital_id=int(hospital) if hospital else None,
            )
        elif action == "accept":
            alert = hospital_actions.check_accept_escalation(
                user, alert_id, note=data.get("note", "")
            )
        elif action == "request_info":
            alert = hospital_actions.check_request_information(
                user, alert_id, note=data.get("note", "")
            )
        elif action == "hand_back":
            alert = hospital_actions.check_hand_back(user, alert_id, note=data.get("note", ""))
        elif action == "resolve":
            alert = actions.check_resolve_alert(user, alert_id, note=data.get("note", ""))
        elif action == "dismiss":
            alert = actions.check_dismiss_alert(user, alert_id, note=data.get("note", ""))
        else:
            hours = float(data.get("hours") or 0)
            if not 0 < hours <= 72:
                return JsonResponse(
                    {"error": "invalid_request", "message": _("Snooze for 1 to 72 hours.")},
                    status=400,
                )
            snooze = actions.check_snooze_alert(
                user,
                alert_id,
                until=timezone.now() + timedelta(hours=hours),
                reason=data.get("reason", ""),
            )
            return JsonResponse({"ok": True, "snoozed_until": snooze.until.isoformat()})
    except AlertError as exc:
        return JsonResponse({"error": exc.code, "message": str(exc)}, status=exc.http_status)
    except ValueError as exc:
        return JsonResponse({"error": "invalid_request", "message": str(exc)}, status=400)
    return JsonResponse({"ok": True, "alert": selectors.alert_payload(alert)})
