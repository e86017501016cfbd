from django.contrib import admin

from clinic.models import (
    CarePlan,
    CareThreshold,
    Enrolment,
    Hospital,
    Patient,
    PatientIdentifier,
    Practitioner,
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
class PatientAdmin(admin.ModelAdmin):
    list_display = ["name", "sex", "birth_date", "city", "community", "resident_id"]
    list_filter = ["city", "sex", "community"]
    search_fields = ["name", "resident_id", "social_security_no", "phone", "identifiers__value"]
    inlines = [PatientIdentifierInline, EnrolmentInline]
    autocomplete_fields = ["user"]


@admin.register(PatientIdentifier)
class PatientIdentifierAdmin(admin.ModelAdmin):
    list_display = ["value", "system", "patient", "assigner"]
    list_filter = ["system", "assigner"]
    search_fields = ["value", "patient__name"]


@admin.register(Enrolment)
class EnrolmentAdmin(admin.ModelAdmin):
    list_display = ["patient", "start", "end", "hospital"]
    list_filter = ["hospital", "start"]
    search_fields = ["patient__name", "patient__resident_id"]
    filter_horizontal = ["care_team"]


class CareThresholdInline(admin.TabularInline):
    model = CareThreshold
    extra = 0


@admin.register(CarePlan)
class CarePlanAdmin(admin.ModelAdmin):
    list_display = ["patient", "news2_scale", "updated_at"]
    list_filter = ["news2_scale"]
    search_fields = ["patient__name", "patient__resident_id"]
    inlines = [CareThresholdInline]


@admin.register(CareThreshold)
class CareThresholdAdmin(admin.ModelAdmin):
    list_display = ["care_plan", "vital", "critical_low", "low", "high", "critical_high"]
    list_filter = ["vital"]
    search_fields = ["care_plan__patient__name"]
