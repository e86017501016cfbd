from django.contrib import admin, messages

from clinic.admin_audit import AuditedPatientAdmin
from devices.hl7 import outbound
from devices.models import Bridge, Hl7Message, Monitor, MonitorBinding


class MonitorInline(admin.TabularInline):
    model = Monitor
    extra = 0
    readonly_fields = ["battery", "connected", "last_seen", "last_reading_at"]


@admin.register(Bridge)
class BridgeAdmin(admin.ModelAdmin):
    list_display = ["name", "token_hint", "last_upload_at", "outbox_depth", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "patients__name", "patients__resident_id", "token_hint"]
    filter_horizontal = ["patients"]
    readonly_fields = ["token_hint", "last_upload_at", "outbox_depth", "last_status"]
    inlines = [MonitorInline]

    def save_model(self, request, obj, form, change):
        """A new bridge gets a token, shown once in the confirmation message."""
        token = obj.issue_token() if not change else None
        super().save_model(request, obj, form, change)
        if token:
            messages.warning(request, f"Bridge token (shown once, copy it now): {token}")


@admin.register(Monitor)
class MonitorAdmin(admin.ModelAdmin):
    list_display = ["identifier", "kind", "bridge", "battery", "last_reading_at", "connected"]
    list_filter = ["kind", "connected"]
    search_fields = ["identifier", "bridge__name"]


@admin.register(MonitorBinding)
class MonitorBindingAdmin(AuditedPatientAdmin):
    list_display = ["monitor", "user_id", "patient", "valid_from", "valid_to"]
    search_fields = ["monitor__identifier", "patient__name"]


@admin.register(Hl7Message)
class Hl7MessageAdmin(AuditedPatientAdmin):
    """The HL7 v2 message store: every message in and out, its ACK, and a resend for outbound."""

    list_display = [
        "received_at",
        "direction",
        "message_type",
        "control_id",
        "sending_application",
        "sending_facility",
        "hospital",
        "status",
        "ack_code",
        "attempts",
        "alert_id",
    ]
    list_filter = ["direction", "status", "ack_code", "message_type", "hospital"]
    search_fields = [
        "control_id",
        "sending_application",
        "sending_facility",
        "receiving_facility",
        "error",
        "raw",
        "=alert_id",
    ]
    date_hierarchy = "received_at"
    list_select_related = ["hospital"]
    actions = ["resend"]
    readonly_fields = [f.name for f in Hl7Message._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Resend the selected outbound messages")
    def resend(self, request, queryset):
        sent = sum(outbound.requeue(message) for message in queryset)
        skipped = queryset.count() - sent
        messages.success(request, f"{sent} outbound message(s) queued for sending.")
        if skipped:
            messages.warning(
                request, f"{skipped} inbound message(s) skipped: only outbound resend."
            )
