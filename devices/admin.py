from django.contrib import admin, messages

from devices.models import Bridge, Monitor, MonitorBinding


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
class MonitorBindingAdmin(admin.ModelAdmin):
    list_display = ["monitor", "user_id", "patient", "valid_from", "valid_to"]
    search_fields = ["monitor__identifier", "patient__name"]
