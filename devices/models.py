"""Home bridges and the monitors they serve, as the server knows them.

A bridge serves one household; it authenticates with a token that is shown once and stored as a
SHA-256 hash (tokens are 256-bit random, so a fast hash is enough and lets the lookup be indexed).
Each monitor, or each user id of a multi-user monitor, is bound to one patient; bindings keep their
history when a monitor changes hands.
"""

from __future__ import annotations

import hashlib
import secrets

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

TOKEN_PREFIX = "sgb_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Bridge(models.Model):
    name = models.CharField(_("name"), max_length=100)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_hint = models.CharField(_("token starts with"), max_length=12, editable=False)
    patients = models.ManyToManyField(
        "clinic.Patient", related_name="bridges", verbose_name=_("household patients")
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    last_upload_at = models.DateTimeField(_("last upload"), null=True, blank=True)
    outbox_depth = models.PositiveIntegerField(_("outbox depth"), null=True, blank=True)
    last_status = models.JSONField(_("last status report"), default=dict, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("home bridge")
        verbose_name_plural = _("home bridges")

    def __str__(self) -> str:
        return self.name

    def issue_token(self) -> str:
        """Make a new token, keep only its hash, and return it (to be shown once)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.token_hash = hash_token(token)
        self.token_hint = token[:10]
        return token

    @classmethod
    def authenticate(cls, token: str) -> Bridge | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        bridge = cls.objects.filter(token_hash=hash_token(token), revoked_at=None).first()
        return bridge

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None or self.revoked_at > timezone.now()


class Monitor(models.Model):
    """A Bluetooth monitor seen by a bridge, with its health (battery, last reading)."""

    bridge = models.ForeignKey(Bridge, on_delete=models.CASCADE, related_name="monitors")
    identifier = models.CharField(_("identifier (EUI-64 or address)"), max_length=64)
    kind = models.CharField(_("kind"), max_length=40, blank=True)
    model = models.CharField(_("model"), max_length=100, blank=True)
    battery = models.PositiveSmallIntegerField(_("battery %"), null=True, blank=True)
    connected = models.BooleanField(_("connected"), default=False)
    last_seen = models.DateTimeField(_("last seen"), null=True, blank=True)
    last_reading_at = models.DateTimeField(_("last reading"), null=True, blank=True)
    expected_interval_s = models.PositiveIntegerField(
        _("expected interval (s)"),
        null=True,
        blank=True,
        help_text=_("For continuous monitors: silent longer than this means offline."),
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["bridge", "identifier"], name="unique_monitor_per_bridge"
            )
        ]
        verbose_name = _("monitor")
        verbose_name_plural = _("monitors")

    def __str__(self) -> str:
        return f"{self.kind or 'monitor'} {self.identifier}"


class MonitorBinding(models.Model):
    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="bindings")
    user_id = models.PositiveSmallIntegerField(_("user id on the monitor"), null=True, blank=True)
    patient = models.ForeignKey("clinic.Patient", on_delete=models.CASCADE, related_name="+")
    valid_from = models.DateTimeField(default=timezone.now)
    valid_to = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-valid_from"]
        verbose_name = _("monitor binding")
        verbose_name_plural = _("monitor bindings")

    def __str__(self) -> str:
        return f"{self.monitor} u{self.user_id} → {self.patient}"


class Hl7Message(models.Model):
    """One HL7 v2 message we received or send, with its ACK: the message store.

    Inbound rows are written in the same transaction as the Observations they carry (status
    ``stored``) or, when a message is refused, after the rollback (``error``/``rejected``).
    The unique constraint on the sender and MSH-10 is what makes a replay store nothing new.
    Outbound rows are created ``queued`` and moved on by `devices.hl7.outbound.deliver`.
    """

    class Direction(models.TextChoices):
        IN = "in", _("Inbound")
        OUT = "out", _("Outbound")

    class Status(models.TextChoices):
        STORED = "stored", _("Stored (AA)")
        ERROR = "error", _("Error (AE)")
        REJECTED = "rejected", _("Rejected (AR)")
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        DELIVERED = "delivered", _("Delivered (AA)")
        REFUSED = "refused", _("Refused by receiver (AE/AR)")
        FAILED = "failed", _("Failed (retries exhausted)")
        HELD = "held", _("Held (no MLLP endpoint)")

    direction = models.CharField(_("direction"), max_length=3, choices=Direction.choices)
    control_id = models.CharField(_("control id (MSH-10)"), max_length=199, blank=True)
    sending_application = models.CharField(
        _("sending application (MSH-3)"), max_length=227, blank=True
    )
    sending_facility = models.CharField(_("sending facility (MSH-4)"), max_length=227, blank=True)
    receiving_application = models.CharField(
        _("receiving application (MSH-5)"), max_length=227, blank=True
    )
    receiving_facility = models.CharField(
        _("receiving facility (MSH-6)"), max_length=227, blank=True
    )
    message_type = models.CharField(_("message type (MSH-9)"), max_length=40, blank=True)
    raw = models.TextField(_("message"), blank=True)
    received_at = models.DateTimeField(
        _("received / queued at"), default=timezone.now, db_index=True
    )
    ack_code = models.CharField(_("ACK code"), max_length=2, blank=True)
    ack_text = models.TextField(_("ACK text"), blank=True)
    ack_raw = models.TextField(_("ACK message"), blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices)
    error = models.TextField(_("error"), blank=True)
    hospital = models.ForeignKey(
        "clinic.Hospital",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="hl7_messages",
        verbose_name=_("hospital"),
    )
    patient = models.ForeignKey(
        "clinic.Patient",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("patient"),
    )
    resources = models.JSONField(_("FHIR resources written"), default=list, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_attempt_at = models.DateTimeField(_("last attempt"), null=True, blank=True)
    alert_id = models.BigIntegerField(_("alert"), null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-received_at", "-pk"]
        constraints = [
            # MSH-10 is unique per sending system (application + facility), not per facility
            # alone: PCD-01 gateways leave MSH-4 empty and name themselves in MSH-3.
            models.UniqueConstraint(
                fields=["direction", "sending_application", "sending_facility", "control_id"],
                condition=~models.Q(control_id=""),
                name="unique_hl7_message_per_sender",
            )
        ]
        indexes = [models.Index(fields=["direction", "status"])]
        verbose_name = _("HL7 v2 message")
        verbose_name_plural = _("HL7 v2 messages")

    def __str__(self) -> str:
        return f"{self.direction} {self.message_type} {self.control_id}"
