"""The patient timeline (for doctors and clinicians) and the patient's own view."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from clinic import roles
from clinic.access import Actor, can_write_patient
from clinic.models import CarePlan, CareThreshold, Patient, Vital
from community.models import Alert, CareMessage
from devices.models import Monitor
from fhir import audit, charts
from fhir.ecg import ecg_traces
from frontend.forms import CareMessageForm
from frontend.views.access import patient_for_page

VITAL_LABELS = {
    **dict(Vital.choices),
    "mean_bp": gettext_lazy("Mean arterial pressure"),
    "height": gettext_lazy("Height"),
    "bmi": gettext_lazy("Body mass index"),
}
RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
LIMITS = ("critical_low", "low", "high", "critical_high")
MESSAGES_SHOWN = 50


def _may_act_for(actor: Actor, patient: Patient) -> bool:
    """The patient's care team: their hub's doctors (and admins) edit the plan and write to them."""
    return actor.role in (roles.COMMUNITY_DOCTOR, roles.ADMIN) and can_write_patient(actor, patient)


def _care_team_patient(request, pk: int, purpose: str) -> tuple[Patient, Actor]:
    """The patient of a care-team action, read (and audited) as a page; 403 for anyone else."""
    patient, actor = patient_for_page(request, pk, purpose=purpose)
    if not _may_act_for(actor, patient):
        raise PermissionDenied
    return patient, actor


def _thresholds(patient) -> dict[str, dict]:
    plan = CarePlan.objects.filter(patient=patient).first()
    if plan is None:
        return {}
    return {t.vital: {k: getattr(t, k) for k in LIMITS} for t in plan.thresholds.all()}


def _context(request, patient, actor) -> dict:
    traces = ecg_traces(patient, limit=3)
    monitors = Monitor.objects.filter(bridge__patients=patient).select_related("bridge").distinct()
    bridges = {m.bridge for m in monitors} | set(patient.bridges.all())
    thresholds = _thresholds(patient)
    return {
        "patient": patient,
        "latest": [
            {
                "row": row,
                "label": Vital(row.vital).label if row.vital in Vital.values else row.vital,
            }
            for row in charts.latest_vitals(patient.pk)
        ],
        "monitors": monitors,
        "bridges": sorted(bridges, key=lambda b: b.pk),
        "record": charts.record_summary(patient.pk),
        "threshold_rows": [
            {"vital": v, "label": label, **thresholds.get(v, {})} for v, label in Vital.choices
        ],
        # The care team edits the plan and writes to the patient; others only read.
        "care_team": _may_act_for(actor, patient),
        "message_form": CareMessageForm(patient=patient),
        "care_messages": list(
            CareMessage.objects.filter(patient=patient).select_related(
                "author__practitioner", "alert"
            )[:MESSAGES_SHOWN]
        ),
        "can_upload_ecg": actor.kind == "user" and can_write_patient(actor, patient),
        "alerts": Alert.objects.filter(patient=patient)
        .select_related("acknowledged_by")
        .order_by("-opened_at")[:30],
        "ecgs": traces,
        "ecg_json": [t.as_json() for t in traces],
        "chart_labels": {
            "systolic_bp": _("Systolic"),
            "diastolic_bp": _("Diastolic"),
            "heart_rate": _("Heart rate"),
            "spo2": _("SpO2"),
            "temperature": _("Temperature"),
            "glucose": _("Glucose"),
            "weight": _("Weight"),
            "no_data": _("No readings in this range."),
        },
    }


@login_required
def timeline(request, pk: int):
    patient, actor = patient_for_page(request, pk, purpose="timeline")
    if actor.role == roles.PATIENT:
        return redirect("frontend:patient-home")
    return render(request, "frontend/patient_timeline.html", _context(request, patient, actor))


@login_required
def patient_home(request):
    """The patient's own readings, monitors and bridge status."""
    if roles.role_of(request.user) != roles.PATIENT or not hasattr(request.user, "patient"):
        raise PermissionDenied
    patient, actor = patient_for_page(request, request.user.patient.pk, purpose="own record")
    context = _context(request, patient, actor)
    _mark_read(actor, patient, context["care_messages"])
    return render(request, "frontend/patient_home.html", context)


def _mark_read(actor: Actor, patient: Patient, shown: list[CareMessage]) -> None:
    """Messages shown to the patient count as read; the page still marks them new this once."""
    unread = [m.pk for m in shown if m.read_at is None]
    if not unread:
        return
    with transaction.atomic():
        marked = CareMessage.objects.filter(pk__in=unread, read_at__isnull=True).update(
            read_at=timezone.now()
        )
        if marked:
            audit.record(
                actor,
                action="U",
                channel="page",
                patient_id=patient.pk,
                entity="CareMessage",
                detail=f"{marked} care message(s) read",
            )


def _parse_range(request) -> tuple[datetime, datetime | None]:
    now = timezone.now()
    if "from" not in request.GET:
        key = request.GET.get("range", "7d")
        if key not in RANGES:
            raise ValueError("range must be 24h, 7d, 30d, or from=…&to=… ISO dates")
        return now - RANGES[key], None
    try:
        start = datetime.fromisoformat(request.GET["from"])
        end = datetime.fromisoformat(request.GET["to"])
    except (KeyError, ValueError):
        raise ValueError("range must be 24h, 7d, 30d, or from=…&to=… ISO dates") from None
    tz = timezone.get_current_timezone()
    start = start if start.tzinfo else start.replace(tzinfo=tz)
    end = end if end.tzinfo else end.replace(tzinfo=tz)
    if end <= start or end - start > timedelta(days=366):
        raise ValueError("the range must be forward and at most a year")
    return start, end


@login_required
def vitals_json(request, pk: int):
    """Chart data: series per vital, thresholds and alert markers; polled by the timeline."""
    patient, _actor = patient_for_page(request, pk, purpose="chart")
    try:
        since, until = _parse_range(request)
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc))
    return JsonResponse(
        {
            "patient": patient.pk,
            "series": charts.vital_series(patient.pk, since, until),
            "thresholds": _thresholds(patient),
            "alerts": _alert_markers(patient, since),
            "from": int(since.timestamp()),
            "to": int((until or timezone.now()).timestamp()),
        }
    )


def _alert_markers(patient, since) -> list[dict]:
    """Where alerts opened, for the chart of the vital that raised them."""
    rows = Alert.objects.filter(patient=patient, opened_at__gte=since).values_list(
        "opened_at", "vital", "severity"
    )
    return [
        {"at": int(at.timestamp()), "vital": vital, "severity": severity}
        for at, vital, severity in rows
    ]


def _number(raw: str) -> float | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    return float(raw)


@login_required
@require_POST
def edit_thresholds(request, pk: int):
    """Doctors adjust the care plan's limits; every change is validated and audited."""
    patient, actor = _care_team_patient(request, pk, purpose="edit care plan")
    errors = []
    with transaction.atomic():
        plan, _created = CarePlan.objects.get_or_create(patient=patient)
        for vital, label in Vital.choices:
            try:
                values = {k: _number(request.POST.get(f"{vital}-{k}", "")) for k in LIMITS}
            except ValueError:
                errors.append(f"{label}: {_('limits must be numbers')}")
                continue
            row = CareThreshold.objects.filter(care_plan=plan, vital=vital).first()
            if all(v is None for v in values.values()):
                if row:
                    row.delete()
                continue
            row = row or CareThreshold(care_plan=plan, vital=vital)
            for k, v in values.items():
                setattr(row, k, v)
            try:
                row.full_clean()
            except ValidationError as exc:
                errors.append(f"{label}: {' '.join(exc.messages)}")
                continue
            row.save()
        if errors:
            transaction.set_rollback(True)
        else:
            audit.record(
                actor,
                action="U",
                channel="page",
                patient_id=patient.pk,
                entity=f"CarePlan/{plan.pk}",
                detail="care-plan thresholds edited",
            )
    if errors:
        context = _context(request, patient, actor)
        context["threshold_errors"] = errors
        return render(request, "frontend/patient_timeline.html", context, status=400)
    return redirect("frontend:patient-timeline", pk=patient.pk)


@login_required
@require_POST
def send_message(request, pk: int):
    """The care team writes to the patient, who reads it on /me/; validated and audited."""
    patient, actor = _care_team_patient(request, pk, purpose="message patient")
    form = CareMessageForm(request.POST, patient=patient)
    if not form.is_valid():
        context = _context(request, patient, actor)
        context["message_form"] = form
        return render(request, "frontend/patient_timeline.html", context, status=400)
    with transaction.atomic():
        message = form.save(commit=False)
        message.author = request.user
        message.save()
        audit.record(
            actor,
            action="C",
            channel="page",
            patient_id=patient.pk,
            entity=f"CareMessage/{message.pk}",
            detail="message to patient sent",
        )
    return redirect(reverse("frontend:patient-timeline", args=[patient.pk]) + "#messages-title")
