from django.contrib import admin

from clinic.admin_audit import AuditedPatientAdmin
from community.models import (
    Alert,
    AlertEvent,
    AlertTransition,
    CareMessage,
    Community,
    DispatchHub,
    DispatchTask,
    EscalationPolicy,
    HubMembership,
    Snooze,
    StreamCounter,
)


@admin.register(Community)
class CommunityAdmin(admin.ModelAdmin):
    list_display = ["name", "district", "city", "code"]
    list_filter = ["city", "district"]
    search_fields = ["name", "name_en", "code"]


class HubMembershipInline(admin.TabularInline):
    model = HubMembership
    extra = 0
    autocomplete_fields = ["practitioner"]


@admin.register(DispatchHub)
class DispatchHubAdmin(admin.ModelAdmin):
    list_display = ["name", "city", "code"]
    list_filter = ["city"]
    search_fields = ["name", "name_en", "code"]
    filter_horizontal = ["communities"]
    inlines = [HubMembershipInline]


@admin.register(HubMembership)
class HubMembershipAdmin(admin.ModelAdmin):
    list_display = ["practitioner", "hub", "is_duty_lead", "joined_at"]
    list_filter = ["hub", "is_duty_lead"]
    search_fields = ["practitioner__name", "hub__name"]


class AlertTransitionInline(admin.TabularInline):
    model = AlertTransition
    extra = 0
    can_delete = False
    readonly_fields = ["from_status", "to_status", "action", "by", "at", "note"]


class DispatchTaskInline(admin.TabularInline):
    model = DispatchTask
    extra = 0
    autocomplete_fields = ["assignee"]
    readonly_fields = ["created_by", "created_at"]


@admin.register(Alert)
class AlertAdmin(AuditedPatientAdmin):
    list_display = [
        "id",
        "patient",
        "rule",
        "severity",
        "status",
        "hub",
        "opened_at",
        "trigger_count",
    ]
    list_filter = ["status", "severity", "hub", "escalation_tier", "escalated_to"]
    search_fields = ["patient__name", "patient__resident_id", "rule", "message"]
    date_hierarchy = "opened_at"
    raw_id_fields = ["patient", "reopens"]
    autocomplete_fields = ["acknowledged_by", "assigned_to"]
    readonly_fields = ["opened_at", "updated_at", "closed_at", "cleared_at", "reading_ids"]
    inlines = [AlertTransitionInline, DispatchTaskInline]


@admin.register(AlertTransition)
class AlertTransitionAdmin(AuditedPatientAdmin):
    list_display = ["alert", "from_status", "to_status", "action", "by", "at"]
    list_filter = ["action", "to_status"]
    search_fields = ["alert__patient__name", "note", "by__username"]
    raw_id_fields = ["alert"]


@admin.register(CareMessage)
class CareMessageAdmin(AuditedPatientAdmin):
    list_display = ["patient", "author", "created_at", "read_at"]
    list_filter = ["read_at"]
    search_fields = ["patient__name", "patient__resident_id", "author__username", "body"]
    date_hierarchy = "created_at"
    raw_id_fields = ["patient", "author", "alert"]
    readonly_fields = ["created_at", "read_at"]


@admin.register(Snooze)
class SnoozeAdmin(AuditedPatientAdmin):
    list_display = ["patient", "rule", "hub", "until", "by"]
    list_filter = ["hub", "rule"]
    search_fields = ["patient__name", "rule", "reason"]
    raw_id_fields = ["patient"]


@admin.register(DispatchTask)
class DispatchTaskAdmin(AuditedPatientAdmin):
    list_display = ["alert", "kind", "assignee", "due_at", "done_at"]
    list_filter = ["kind", "done_at"]
    search_fields = ["alert__patient__name", "assignee__name", "note"]
    raw_id_fields = ["alert"]
    autocomplete_fields = ["assignee"]


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(admin.ModelAdmin):
    list_display = ["hub", "severity", "doctors_timeout_s", "duty_lead_timeout_s", "enabled"]
    list_filter = ["severity", "enabled", "hub"]
    search_fields = ["hub__name", "hub__code"]


@admin.register(AlertEvent)
class AlertEventAdmin(AuditedPatientAdmin):
    list_display = ["stream", "seq", "event", "alert", "at"]
    list_filter = ["event", "stream"]
    search_fields = ["stream", "alert__patient__name"]
    raw_id_fields = ["alert"]


@admin.register(StreamCounter)
class StreamCounterAdmin(admin.ModelAdmin):
    list_display = ["stream", "last_seq"]
    search_fields = ["stream"]
