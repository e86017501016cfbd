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
