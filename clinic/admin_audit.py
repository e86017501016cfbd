"""Django admin pages that show patient data leave audit records, like every other page.

An administrator may see any patient (DESIGN.md), but every look is on the record: opening an
object (R), saving it (U), deleting it (D), and listing a model's rows (R, no single patient).
"""

from __future__ import annotations

from django.contrib import admin
from django.db import transaction

from clinic.access import actor_for_user
from fhir import audit


def patient_id_of(obj) -> int | None:
    """The patient an admin object belongs to: itself, its `patient`, or its alert's or care
    plan's patient (a care threshold); None for rows of no single patient."""
    from clinic.models import Patient

    if isinstance(obj, Patient):
        return obj.pk
    if getattr(obj, "patient_id", None) is not None:
        return obj.patient_id
    for parent in ("alert", "care_plan"):
        if getattr(obj, f"{parent}_id", None) is not None:
            return getattr(obj, parent).patient_id
    return None


class AuditedPatientAdmin(admin.ModelAdmin):
    """A ModelAdmin whose change, delete and list pages are audited (channel "page")."""

    def _record(
        self, request, action: str, obj=None, detail: str = "", *, patient_id: int | None = None
    ) -> None:
        meta = self.model._meta
        audit.record(
            actor_for_user(request.user),
            action=action,
            channel="page",
            patient_id=patient_id,
            entity=f"admin:{meta.app_label}.{meta.model_name}"
            + (f"/{obj.pk}" if obj is not None else ""),
            detail=detail or f"admin {meta.verbose_name}",
        )

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            self._record(request, "C", obj, patient_id=patient_id_of(obj))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        obj = self.get_object(request, object_id)
        if obj is not None and response.status_code < 400:
            saved = request.method == "POST" and response.status_code in (301, 302)
            # A rejected form was still seen.
            self._record(request, "U" if saved else "R", obj, patient_id=patient_id_of(obj))
        return response

    def delete_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, object_id)
        patient_id = patient_id_of(obj) if obj is not None else None
        response = super().delete_view(request, object_id, extra_context)
        if obj is not None and response.status_code < 400:
            deleted = request.method == "POST" and response.status_code in (301, 302)
            if deleted and patient_id == obj.pk and self.model._meta.model_name == "patient":
                patient_id = None  # the patient row is gone; the entity still names it
            self._record(request, "D" if deleted else "R", obj, patient_id=patient_id)
        return response

    def delete_queryset(self, request, queryset) -> None:
        """The list's "delete selected" action: one D record per deleted row, on its patient,
        in the same transaction as the delete (no delete without its record)."""
        meta = self.model._meta
        doomed = [(obj.pk, patient_id_of(obj)) for obj in queryset]
        with transaction.atomic():
            super().delete_queryset(request, queryset)
            audit.record_many(
                actor_for_user(request.user),
                [
                    audit.Access(
                        "D",
                        "page",
                        None if meta.model_name == "patient" else patient_id,
                        f"admin:{meta.app_label}.{meta.model_name}/{pk}",
                        detail=f"admin bulk delete of {meta.verbose_name}",
                    )
                    for pk, patient_id in doomed
                ],
            )

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        if response.status_code < 400:
            self._record(request, "R", detail=f"admin list of {self.model._meta.verbose_name}")
        return response
