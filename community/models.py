"""Communities, the dispatch hubs that serve them, hub membership, and the alerts they work."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from clinic.models import City, Practitioner


class Community(models.Model):
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    code = models.SlugField(_("code"), max_length=40, unique=True)
    city = models.CharField(_("city"), max_length=20, choices=City.choices)
    district = models.CharField(_("district"), max_length=50)

    class Meta:
        ordering = ["city", "district", "name"]
        verbose_name = _("community")
        verbose_name_plural = _("communities")

    def __str__(self) -> str:
        return self.name


class DispatchHub(models.Model):
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    code = models.SlugField(_("code"), max_length=40, unique=True)
    city = models.CharField(_("city"), max_length=20, choices=City.choices)
    communities = models.ManyToManyField(Community, related_name="hubs", blank=True)
    members = models.ManyToManyField(
        Practitioner, through="HubMembership", related_name="hubs", blank=True
    )

    class Meta:
        ordering = ["city", "name"]
        verbose_name = _("dispatch hub")
        verbose_name_plural = _("dispatch hubs")

    def __str__(self) -> str:
        return self.name


class HubMembership(models.Model):
    hub = models.ForeignKey(DispatchHub, on_delete=models.CASCADE, related_name="memberships")
    practitioner = models.ForeignKey(
        Practitioner, on_delete=models.CASCADE, related_name="hub_memberships"
    )
    is_duty_lead = models.BooleanField(_("duty lead"), default=False)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hub", "practitioner"], name="unique_hub_membership")
        ]
        verbose_name = _("hub membership")
        verbose_name_plural = _("hub memberships")

    def __str__(self) -> str:
        return f"{self.practitioner} @ {self.hub}"


# --- Alerts ----------------------------------------------------------------------------------


class Severity(models.TextChoices):
    WARNING = "warning", _("Warning")
    CRITICAL = "critical", _("Critical")


class AlertStatus(models.TextChoices):
    OPEN = "open", _("Open")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    DISPATCHED = "dispatched", _("Dispatched")
    ESCALATED = "escalated", _("Escalated")
    RESOLVED = "resolved", _("Resolved")
    DISMISSED = "dismissed", _("Dismissed")


CLOSED_STATUSES = (AlertStatus.RESOLVED, AlertStatus.DISMISSED)


class EscalationTier(models.IntegerChoices):
    DOCTORS = 0, _("Hub doctors")
    DUTY_LEAD = 1, _("Hub duty lead")
    HOSPITAL = 2, _("Pilot hospital on-call")


class Alert(models.Model):
    """Something a clinician should act on: one open alert per patient and rule.

    ``rule`` is the rule name of `clinic.rules` ("threshold:systolic_bp", "news2", "rate:weight",
    "no_data:glucose", "device_offline", "low_battery"). A re-trigger updates the open alert and
    bumps ``trigger_count``; after resolve/dismiss the next trigger opens a new alert whose
    ``reopens`` points at the closed one (see `community.actions.do_raise_or_update_alert`).
    """

    patient = models.ForeignKey("clinic.Patient", on_delete=models.CASCADE, related_name="alerts")
    hub = models.ForeignKey(
        DispatchHub,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="alerts",
        help_text=_("The hub serving the patient's community when the alert opened."),
    )
    rule = models.CharField(_("rule"), max_length=50)
    vital = models.CharField(_("vital"), max_length=30, blank=True)
    severity = models.CharField(_("severity"), max_length=10, choices=Severity.choices)
    status = models.CharField(
        _("status"), max_length=15, choices=AlertStatus.choices, default=AlertStatus.OPEN
    )
    message = models.CharField(_("message"), max_length=500)
    values = models.JSONField(_("values"), default=list, blank=True)
    reading_ids = models.JSONField(_("readings (VitalSign ids)"), default=list, blank=True)
    news2_total = models.PositiveSmallIntegerField(_("NEWS2 total"), null=True, blank=True)
    news2_risk = models.CharField(_("NEWS2 risk"), max_length=15, blank=True)
    news2_missing = models.JSONField(
        _("NEWS2 parameters missing"),
        default=list,
        blank=True,
        help_text=_("Not measured, so not scored: the total is a lower bound when any are listed."),
    )
    opened_at = models.DateTimeField(_("opened at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    cleared_at = models.DateTimeField(
        _("condition ended at"),
        null=True,
        blank=True,
        help_text=_("When the rule last reported the condition over (the alert may stay open)."),
    )
    acknowledged_by = models.ForeignKey(
        Practitioner, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(_("acknowledged at"), null=True, blank=True)
    assigned_to = models.ForeignKey(
        Practitioner, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    escalation_tier = models.PositiveSmallIntegerField(
        _("escalation tier"), choices=EscalationTier.choices, default=EscalationTier.DOCTORS
    )
    escalate_at = models.DateTimeField(
        _("escalates at"),
        null=True,
        blank=True,
        help_text=_("When an unacknowledged alert climbs to the next tier; empty when it won't."),
    )
    escalated_to = models.ForeignKey(
        "clinic.Hospital", on_delete=models.PROTECT, null=True, blank=True, related_name="alerts"
    )
    trigger_count = models.PositiveIntegerField(_("triggers"), default=1)
    reopens = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="reopened_by"
    )

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "rule"],
                condition=~models.Q(status__in=["resolved", "dismissed"]),
                name="one_open_alert_per_patient_rule",
            )
        ]
        indexes = [
            models.Index(fields=["hub", "status", "severity"]),
            models.Index(fields=["escalated_to", "status"]),
            models.Index(fields=["status", "escalate_at"]),
        ]
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")

    def __str__(self) -> str:
        return f"#{self.pk} {self.patient} {self.rule} {self.severity} {self.status}"

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_STATUSES


class AlertTransition(models.Model):
    """One step of an alert's lifecycle: who moved it, when and why (None = the system)."""

    NOTE_MAX_LENGTH = 2000  # a clinical note, not a document; checked by community.actions

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(_("from"), max_length=15, blank=True)
    to_status = models.CharField(_("to"), max_length=15)
    action = models.CharField(_("action"), max_length=20)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(_("at"), default=timezone.now)
    note = models.TextField(_("note"), blank=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("alert transition")
        verbose_name_plural = _("alert transitions")

    def __str__(self) -> str:
        return f"#{self.alert_id} {self.from_status or '∅'} → {self.to_status} ({self.action})"


class Snooze(models.Model):
    """Quiet one rule for one patient until a time; every doctor of the hub sees it."""

    patient = models.ForeignKey("clinic.Patient", on_delete=models.CASCADE, related_name="+")
    rule = models.CharField(_("rule"), max_length=50)
    hub = models.ForeignKey(DispatchHub, on_delete=models.CASCADE, related_name="snoozes")
    until = models.DateTimeField(_("until"))
    reason = models.TextField(_("reason"))
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-until"]
        indexes = [models.Index(fields=["patient", "rule", "until"])]
        verbose_name = _("snooze")
        verbose_name_plural = _("snoozes")

    def __str__(self) -> str:
        return f"{self.patient} {self.rule} until {self.until:%Y-%m-%d %H:%M}"


class DispatchTask(models.Model):
    """Work sent out for an alert: a call, a home visit or a teleconsultation."""

    class Kind(models.TextChoices):
        PHONE_CALL = "phone_call", _("Phone call")
        HOME_VISIT = "home_visit", _("Home visit")
        TELECONSULTATION = "teleconsultation", _("Teleconsultation")

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="dispatch_tasks")
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    assignee = models.ForeignKey(Practitioner, on_delete=models.PROTECT, related_name="+")
    due_at = models.DateTimeField(_("due at"))
    done_at = models.DateTimeField(_("done at"), null=True, blank=True)
    note = models.TextField(_("note"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at"]
        verbose_name = _("dispatch task")
        verbose_name_plural = _("dispatch tasks")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} → {self.assignee} (alert #{self.alert_id})"


class EscalationPolicy(models.Model):
    """How long each tier has to acknowledge before the alert climbs (per hub and severity).

    Without a row the defaults of `community.escalation.DEFAULT_TIMEOUTS` apply.
    """

    hub = models.ForeignKey(DispatchHub, on_delete=models.CASCADE, related_name="policies")
    severity = models.CharField(_("severity"), max_length=10, choices=Severity.choices)
    doctors_timeout_s = models.PositiveIntegerField(
        _("hub doctors: seconds to acknowledge"), default=300
    )
    duty_lead_timeout_s = models.PositiveIntegerField(
        _("duty lead: seconds to acknowledge"), default=600
    )
    enabled = models.BooleanField(_("escalate automatically"), default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hub", "severity"], name="one_policy_per_hub_severity")
        ]
        verbose_name = _("escalation policy")
        verbose_name_plural = _("escalation policies")

    def __str__(self) -> str:
        return f"{self.hub} {self.severity}: {self.doctors_timeout_s}s/{self.duty_lead_timeout_s}s"


class StreamCounter(models.Model):
    """The last sequence number handed out on one event stream; locked to allocate the next."""

    stream = models.CharField(max_length=60, primary_key=True)
    last_seq = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.stream}@{self.last_seq}"


class AlertEvent(models.Model):
    """One entry of a hub's or hospital's gap-free event stream, kept for replay on reconnect."""

    class Type(models.TextChoices):
        CREATED = "alert.created"
        UPDATED = "alert.updated"
        ACKNOWLEDGED = "alert.acknowledged"
        ASSIGNED = "alert.assigned"
        DISPATCHED = "alert.dispatched"
        ESCALATED = "alert.escalated"
        RESOLVED = "alert.resolved"
        DISMISSED = "alert.dismissed"
        REOPENED = "alert.reopened"

    stream = models.CharField(max_length=60)
    seq = models.PositiveBigIntegerField()
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    event = models.CharField(max_length=30, choices=Type.choices)
    payload = models.JSONField()
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["stream", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["stream", "seq"], name="unique_stream_seq"),
        ]
        verbose_name = _("alert event")
        verbose_name_plural = _("alert events")

    def __str__(self) -> str:
        return f"{self.stream}#{self.seq} {self.event}"


class CareMessage(models.Model):
    """A note from the patient's care team to the patient, shown on their own page (/me/).

    ``author`` is the user who wrote it, like ``AlertTransition.by``; ``read_at`` is set when the
    patient first opens their page after it arrived.
    """

    MAX_LENGTH = 2000

    patient = models.ForeignKey(
        "clinic.Patient",
        on_delete=models.CASCADE,
        related_name="care_messages",
        verbose_name=_("patient"),
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("author"),
    )
    body = models.TextField(_("message"), max_length=MAX_LENGTH)
    created_at = models.DateTimeField(_("sent at"), default=timezone.now)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)
    alert = models.ForeignKey(
        Alert,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="care_messages",
        verbose_name=_("about alert"),
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["patient", "-created_at"])]
        verbose_name = _("care message")
        verbose_name_plural = _("care messages")

    def __str__(self) -> str:
        return f"{self.patient} ← {self.author_name} {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def author_name(self) -> str:
        """The practitioner's name when the author is one, else the user's name."""
        practitioner = getattr(self.author, "practitioner", None)
        if practitioner is not None:
            return practitioner.name
        return self.author.get_full_name() or self.author.get_username()
