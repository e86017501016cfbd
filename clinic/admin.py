from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from clinic import mpi
from clinic.admin_audit import AuditedPatientAdmin
from clinic.models import (
    BreakGlassAccess,
    CarePlan,
    CareThreshold,
    Consent,
    Enrolment,
    Hospital,
    MatchReview,
    Patient,
    PatientIdentifier,
    PatientMerge,
    Practitioner,
    Referral,
    SystemClient,
)


@admin.register(Hospital)
class HospitalAdmin(admin.ModelAdmin):
    list_display = ["name", "city", "is_pilot", "code"]
    list_filter = ["city", "is_pilot"]
    search_fields = ["name", "name_en", "code"]


@admin.register(Practitioner)
class PractitionerAdmin(admin.ModelAdmin):
    list_display = ["name", "role", "hospital", "user"]
    list_filter = ["role", "hospital"]
    search_fields = ["name", "user__username", "phone"]
    autocomplete_fields = ["user", "hospital"]


class PatientIdentifierInline(admin.TabularInline):
    model = PatientIdentifier
    extra = 0


class EnrolmentInline(admin.StackedInline):
    model = Enrolment
    extra = 0
    filter_horizontal = ["care_team"]


@admin.register(Patient)
class PatientAdmin(AuditedPatientAdmin):
    list_display = ["name", "sex", "birth_date", "city", "community", "resident_id"]
    list_filter = ["city", "sex", "community"]
    search_fields = ["name", "resident_id", "social_security_no", "phone", "identifiers__value"]
    inlines = [PatientIdentifierInline, EnrolmentInline]
    autocomplete_fields = ["user"]


@admin.register(PatientIdentifier)
class PatientIdentifierAdmin(AuditedPatientAdmin):
    list_display = ["value", "system", "patient", "assigner"]
    list_filter = ["system", "assigner"]
    search_fields = ["value", "patient__name"]


@admin.register(Enrolment)
class EnrolmentAdmin(AuditedPatientAdmin):
    list_display = ["patient", "start", "end", "hospital"]
    list_filter = ["hospital", "start"]
    search_fields = ["patient__name", "patient__resident_id"]
    filter_horizontal = ["care_team"]


class CareThresholdInline(admin.TabularInline):
    model = CareThreshold
    extra = 0


@admin.register(CarePlan)
class CarePlanAdmin(AuditedPatientAdmin):
    list_display = ["patient", "news2_scale", "updated_at"]
    list_filter = ["news2_scale"]
    search_fields = ["patient__name", "patient__resident_id"]
    inlines = [CareThresholdInline]


@admin.register(CareThreshold)
class CareThresholdAdmin(AuditedPatientAdmin):
    list_display = ["care_plan", "vital", "critical_low", "low", "high", "critical_high"]
    list_filter = ["vital"]
    search_fields = ["care_plan__patient__name"]


# --- patient index, consent, break-the-glass, hospital systems (docs/security.md) ------------


@admin.register(MatchReview)
class MatchReviewAdmin(AuditedPatientAdmin):
    list_display = ["created_at", "incoming", "candidate", "score", "source", "status"]
    list_filter = ["status", "source"]
    readonly_fields = [
        "incoming",
        "candidate",
        "score",
        "reasons",
        "source",
        "submitted",
        "status",
        "created_at",
        "decided_by",
        "decided_at",
    ]
    actions = ["accept", "reject"]

    @admin.action(description=_("Accept: one person (merge the incoming record)"))
    def accept(self, request, queryset):
        for review in queryset.filter(status=MatchReview.Status.PENDING):
            try:
                mpi.do_accept_review(review, by=request.user)
            except mpi.MpiError as exc:
                self.message_user(request, f"{review}: {exc}", messages.ERROR)

    @admin.action(description=_("Reject: different people (keep both)"))
    def reject(self, request, queryset):
        for review in queryset.filter(status=MatchReview.Status.PENDING):
            mpi.do_reject_review(review, by=request.user)

    def has_add_permission(self, request):
        return False


@admin.register(PatientMerge)
class PatientMergeAdmin(AuditedPatientAdmin):
    list_display = ["created_at", "source", "target", "reason", "undone_at"]
    readonly_fields = ["source", "target", "moved", "reason", "created_by", "undone_at"]
    actions = ["unmerge"]

    @admin.action(description=_("Unmerge (put back what the merge moved)"))
    def unmerge(self, request, queryset):
        for merge in queryset.filter(undone_at__isnull=True):
            mpi.do_unmerge(merge, by=request.user)

    def has_add_permission(self, request):
        return False


@admin.register(Consent)
class ConsentAdmin(AuditedPatientAdmin):
    list_display = ["patient", "status", "valid_from", "valid_to", "recorded_at"]
    list_filter = ["status"]
    search_fields = ["patient__name", "patient__resident_id"]
    autocomplete_fields = ["patient"]


@admin.register(Referral)
class ReferralAdmin(AuditedPatientAdmin):
    list_display = ["patient", "hospital", "status", "created_at"]
    list_filter = ["status", "hospital"]
    search_fields = ["patient__name", "patient__resident_id"]
    autocomplete_fields = ["patient"]


@admin.register(BreakGlassAccess)
class BreakGlassAccessAdmin(AuditedPatientAdmin):
    list_display = ["created_at", "user", "patient", "expires_at", "reviewed"]
    list_filter = ["reviewed"]
    readonly_fields = ["user", "patient", "reason", "created_at", "expires_at"]
    actions = ["mark_reviewed"]

    @admin.action(description=_("Mark as reviewed"))
    def mark_reviewed(self, request, queryset):
        queryset.update(reviewed=True)

    def has_add_permission(self, request):
        return False


@admin.register(SystemClient)
class SystemClientAdmin(admin.ModelAdmin):
    list_display = ["application", "hospital", "is_active", "created_at"]
    list_filter = ["hospital", "is_active"]
