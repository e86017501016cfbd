"""People and places: hospitals, practitioners, patients, their enrolment and care plans."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from clinic.identity import InvalidResidentId, parse_resident_id


class City(models.TextChoices):
    GUANGZHOU = "guangzhou", _("Guangzhou")
    SHENZHEN = "shenzhen", _("Shenzhen")
    FOSHAN = "foshan", _("Foshan")
    DONGGUAN = "dongguan", _("Dongguan")


class Sex(models.TextChoices):
    MALE = "male", _("Male")
    FEMALE = "female", _("Female")
    OTHER = "other", _("Other")
    UNKNOWN = "unknown", _("Unknown")


class Vital(models.TextChoices):
    """The vitals the rules reason about; keys match `clinic.rules`."""

    SYSTOLIC_BP = "systolic_bp", _("Systolic blood pressure")
    DIASTOLIC_BP = "diastolic_bp", _("Diastolic blood pressure")
    HEART_RATE = "heart_rate", _("Heart rate")
    SPO2 = "spo2", _("SpO2")
    TEMPERATURE = "temperature", _("Body temperature")
    GLUCOSE = "glucose", _("Blood glucose")
    WEIGHT = "weight", _("Body weight")
    RESPIRATORY_RATE = "respiratory_rate", _("Respiratory rate")


class Condition(models.TextChoices):
    HYPERTENSION = "hypertension", _("Hypertension")
    DIABETES = "diabetes", _("Diabetes")
    COPD = "copd", _("COPD")
    HEART_FAILURE = "heart_failure", _("Heart failure")


def validate_resident_id(value: str) -> None:
    """Django validator wrapping the pure GB 11643 check."""
    try:
        parse_resident_id(value)
    except InvalidResidentId as exc:
        raise ValidationError(
            _("Invalid resident identity number: %(reason)s"),
            code="invalid_resident_id",
            params={"reason": str(exc)},
        ) from None


class Hospital(models.Model):
    name = models.CharField(_("name"), max_length=200)
    name_en = models.CharField(_("English name"), max_length=200, blank=True)
    code = models.SlugField(_("code"), max_length=40, unique=True)
    city = models.CharField(_("city"), max_length=20, choices=City.choices)
    is_pilot = models.BooleanField(_("pilot hospital"), default=False)
    identifiers = models.JSONField(
        _("identifiers"), default=list, blank=True, help_text=_('[{"system": ..., "value": ...}]')
    )
    mllp_host = models.CharField(_("HL7 MLLP host"), max_length=200, blank=True)
    mllp_port = models.PositiveIntegerField(_("HL7 MLLP port"), null=True, blank=True)

    class Meta:
        ordering = ["city", "name"]
        verbose_name = _("hospital")
        verbose_name_plural = _("hospitals")

    def __str__(self) -> str:
        return self.name


class Practitioner(models.Model):
    class Role(models.TextChoices):
        COMMUNITY_DOCTOR = "community_doctor", _("Community doctor")
        DUTY_LEAD = "duty_lead", _("Hub duty lead")
        HOSPITAL_CLINICIAN = "hospital_clinician", _("Hospital clinician")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="practitioner"
    )
    name = models.CharField(_("name"), max_length=100)
    role = models.CharField(_("role"), max_length=30, choices=Role.choices)
    hospital = models.ForeignKey(
        Hospital, on_delete=models.PROTECT, null=True, blank=True, related_name="practitioners"
    )
    phone = models.CharField(_("phone"), max_length=30, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("practitioner")
        verbose_name_plural = _("practitioners")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.role == self.Role.HOSPITAL_CLINICIAN and not self.hospital_id:
            raise ValidationError({"hospital": _("A hospital clinician belongs to a hospital.")})


class Patient(models.Model):
    name = models.CharField(_("name"), max_length=100)
    family_name = models.CharField(_("family name"), max_length=50, blank=True)
    given_name = models.CharField(_("given name"), max_length=50, blank=True)
    sex = models.CharField(_("sex"), max_length=10, choices=Sex.choices)
    birth_date = models.DateField(_("birth date"))
    resident_id = models.CharField(
        _("resident identity number"),
        max_length=18,
        unique=True,
        null=True,
        blank=True,
        validators=[validate_resident_id],
    )
    social_security_no = models.CharField(
        _("social security card number"), max_length=30, unique=True, null=True, blank=True
    )
    phone = models.CharField(_("phone"), max_length=30, blank=True)
    address = models.CharField(_("address"), max_length=300, blank=True)
    city = models.CharField(_("city"), max_length=20, choices=City.choices)
    community = models.ForeignKey(
        "community.Community",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="patients",
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="patient",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    merged_into = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="merged_from",
        verbose_name=_("merged into"),
        help_text=_(
            "Set when the patient index merged this record into another (FHIR replaced-by)."
        ),
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("patient")
        verbose_name_plural = _("patients")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """The identity number embeds birth date and sex; they must agree with the record."""
        if not self.resident_id:
            return
        self.resident_id = self.resident_id.strip().upper()
        try:
            parsed = parse_resident_id(self.resident_id)
        except InvalidResidentId:
            return  # the field validator reports it
        errors = {}
        if self.birth_date and parsed.birth_date != self.birth_date:
            errors["birth_date"] = _("Birth date does not match the resident identity number.")
        if self.sex in (Sex.MALE, Sex.FEMALE) and parsed.sex != self.sex:
            errors["sex"] = _("Sex does not match the resident identity number.")
        if errors:
            raise ValidationError(errors)


class PatientIdentifier(models.Model):
    """Further identifiers (hospital MRNs, insurance numbers): any one finds the patient."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="identifiers")
    system = models.CharField(_("system"), max_length=200)
    value = models.CharField(_("value"), max_length=100)
    assigner = models.ForeignKey(
        Hospital, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["system", "value"], name="unique_patient_identifier")
        ]
        verbose_name = _("patient identifier")
        verbose_name_plural = _("patient identifiers")

    def __str__(self) -> str:
        return f"{self.system}|{self.value}"


class Enrolment(models.Model):
    """A period of remote monitoring: what is watched, who watches, where escalations go."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="enrolments")
    start = models.DateField(_("start"))
    end = models.DateField(_("end"), null=True, blank=True)
    conditions = models.JSONField(_("conditions monitored"), default=list)
    care_team = models.ManyToManyField(Practitioner, blank=True, related_name="enrolments")
    hospital = models.ForeignKey(
        Hospital,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="enrolments",
        help_text=_("Pilot hospital that receives this patient's escalations."),
    )

    class Meta:
        ordering = ["-start"]
        verbose_name = _("monitoring enrolment")
        verbose_name_plural = _("monitoring enrolments")

    def __str__(self) -> str:
        return f"{self.patient} {self.start}"

    def clean(self) -> None:
        unknown = set(self.conditions or []) - set(Condition.values)
        if unknown:
            raise ValidationError(
                {"conditions": _("Unknown conditions: %s") % ", ".join(sorted(unknown))}
            )
        if self.end and self.end < self.start:
            raise ValidationError({"end": _("The end is before the start.")})


class CarePlan(models.Model):
    patient = models.OneToOneField(Patient, on_delete=models.CASCADE, related_name="care_plan")
    news2_scale = models.PositiveSmallIntegerField(
        _("NEWS2 SpO2 scale"),
        choices=[(1, _("Scale 1")), (2, _("Scale 2 (hypercapnic respiratory failure)"))],
        default=1,
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("care plan")
        verbose_name_plural = _("care plans")

    def __str__(self) -> str:
        return f"{_('Care plan')}: {self.patient}"


class CareThreshold(models.Model):
    care_plan = models.ForeignKey(CarePlan, on_delete=models.CASCADE, related_name="thresholds")
    vital = models.CharField(_("vital"), max_length=30, choices=Vital.choices)
    low = models.FloatField(_("low"), null=True, blank=True)
    high = models.FloatField(_("high"), null=True, blank=True)
    critical_low = models.FloatField(_("critical low"), null=True, blank=True)
    critical_high = models.FloatField(_("critical high"), null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["care_plan", "vital"], name="one_threshold_per_vital")
        ]
        verbose_name = _("care-plan threshold")
        verbose_name_plural = _("care-plan thresholds")

    def __str__(self) -> str:
        return f"{self.vital}: {self.low}–{self.high}"

    def clean(self) -> None:
        ordered = [
            v for v in (self.critical_low, self.low, self.high, self.critical_high) if v is not None
        ]
        if ordered != sorted(ordered):
            raise ValidationError(
                _("Limits must satisfy critical low ≤ low ≤ high ≤ critical high.")
            )


class Referral(models.Model):
    """A patient referred (or escalated) to a hospital: while active, that hospital sees the record."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        ACCEPTED = "accepted", _("Accepted")
        HANDED_BACK = "handed_back", _("Handed back")
        CLOSED = "closed", _("Closed")

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="referrals")
    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="referrals")
    reason = models.TextField(_("reason"))
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.ACTIVE
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    alert_id = models.BigIntegerField(_("alert"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("referral")
        verbose_name_plural = _("referrals")

    def __str__(self) -> str:
        return f"{self.patient} → {self.hospital}"


class Consent(models.Model):
    """The patient's consent to province-wide sharing of their record (FHIR Consent)."""

    class Status(models.TextChoices):
        GIVEN = "given", _("Given")
        REFUSED = "refused", _("Refused")
        REVOKED = "revoked", _("Revoked")

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="consents")
    status = models.CharField(_("status"), max_length=10, choices=Status.choices)
    recorded_at = models.DateTimeField(auto_now_add=True)
    valid_from = models.DateField(_("valid from"))
    valid_to = models.DateField(_("valid to"), null=True, blank=True)

    class Meta:
        ordering = ["-recorded_at"]
        verbose_name = _("consent to province-wide sharing")
        verbose_name_plural = _("consents to province-wide sharing")

    def __str__(self) -> str:
        return f"{self.patient}: {self.status}"


class BreakGlassAccess(models.Model):
    """An emergency look at a record without consent or referral: reasoned, time-boxed, reviewed."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="break_glass")
    reason = models.TextField(_("reason"))
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"))
    reviewed = models.BooleanField(_("reviewed"), default=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("break-the-glass access")
        verbose_name_plural = _("break-the-glass accesses")

    def __str__(self) -> str:
        return f"{self.user} → {self.patient}"


class MatchReview(models.Model):
    """A probable duplicate found by the master patient index (clinic.mpi), waiting for a person.

    The incoming record was registered as its own patient so the sender got an id at once;
    accepting merges it into the candidate, rejecting keeps the two apart for good.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        ACCEPTED = "accepted", _("Accepted (merged)")
        REJECTED = "rejected", _("Rejected (different people)")

    incoming = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="match_reviews_as_incoming"
    )
    candidate = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="match_reviews_as_candidate"
    )
    score = models.IntegerField(_("score"))
    reasons = models.JSONField(_("reasons"), default=list)
    source = models.ForeignKey(
        Hospital, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    submitted = models.JSONField(_("submitted record"), default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    created_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("patient match review")
        verbose_name_plural = _("patient match reviews")

    def __str__(self) -> str:
        return f"{self.incoming} ≟ {self.candidate} ({self.score})"


class PatientMerge(models.Model):
    """One merge of `source` into `target`, with what moved, so unmerge can put it back."""

    source = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    target = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    moved = models.JSONField(_("what moved"), default=dict)
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("patient merge")
        verbose_name_plural = _("patient merges")

    def __str__(self) -> str:
        return f"{self.source_id} → {self.target_id}"


class SystemClient(models.Model):
    """A hospital system (HIS/EMR) registered for SMART Backend Services.

    The OAuth2 client itself is a django-oauth-toolkit Application (client credentials grant);
    this row binds it to a hospital, holds the public keys (JWKS) its JWT client assertions are
    signed with, and the SMART v2 scopes it may ask for.
    """

    application = models.OneToOneField(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="system_client",
    )
    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="system_clients")
    jwks = models.JSONField(_("public keys (JWKS)"), help_text=_('{"keys": [...]}'))
    allowed_scopes = models.TextField(
        _("allowed scopes"), help_text=_("Space-separated SMART v2 system scopes.")
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("hospital system client")
        verbose_name_plural = _("hospital system clients")

    def __str__(self) -> str:
        return f"{self.application.name} ({self.hospital})"


class UsedClientAssertion(models.Model):
    """A JWT client assertion already spent: its jti may not be replayed before it expires."""

    client = models.ForeignKey(SystemClient, on_delete=models.CASCADE, related_name="+")
    jti = models.CharField(max_length=255)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "jti"], name="unique_client_assertion_jti")
        ]

    def __str__(self) -> str:
        return self.jti
