"""The resource store: versioned FHIR resources, their search index, and the typed vitals table.

`Resource` holds the current version of each stored resource; `ResourceVersion` every version
it replaced (for vread and `_history`), so the current body is stored once: a reading that is
never updated, nearly all of them, has no version row at all. Search runs on small index tables written in the same transaction as
the resource. `ResourceIdentifier` carries a unique constraint on (type, system, value): it is what
makes a replayed bridge upload create nothing new, even when replays race.
"""

from __future__ import annotations

from django.db import models


class Resource(models.Model):
    resource_type = models.CharField(max_length=64)
    logical_id = models.CharField(max_length=64)
    version_id = models.PositiveIntegerField(default=1)
    last_updated = models.DateTimeField(db_index=True)
    deleted = models.BooleanField(default=False)
    body = models.JSONField()
    patient = models.ForeignKey(
        "clinic.Patient",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="fhir_resources",
        help_text="The patient compartment the resource belongs to (for access checks).",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["resource_type", "logical_id"], name="unique_logical_id"
            )
        ]
        indexes = [models.Index(fields=["resource_type", "patient", "last_updated"])]

    def __str__(self) -> str:
        return f"{self.resource_type}/{self.logical_id}"

    @property
    def method(self) -> str:
        """How the current version came to be: version 1 is always a create (there is no
        update-as-create), a deletion is a version of its own, anything else an update."""
        if self.deleted:
            return "DELETE"
        return "POST" if self.version_id == 1 else "PUT"

    def as_version(self) -> ResourceVersion:
        """The current version as a history row (unsaved until it is superseded)."""
        return ResourceVersion(
            resource=self,
            version_id=self.version_id,
            last_updated=self.last_updated,
            deleted=self.deleted,
            method=self.method,
            body=self.body,
        )


class ResourceVersion(models.Model):
    """A version that a later one replaced (the current one lives in `Resource`)."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="versions")
    version_id = models.PositiveIntegerField()
    last_updated = models.DateTimeField()
    deleted = models.BooleanField(default=False)
    method = models.CharField(max_length=10)
    body = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["resource", "version_id"], name="unique_version")
        ]

    def __str__(self) -> str:
        return f"{self.resource}/_history/{self.version_id}"


class ResourceIdentifier(models.Model):
    """Business identifiers; unique per type so conditional creates are race-free.

    The unique index leads with the value. Every look-up gives all three columns, but with
    (type, system, value) PostgreSQL could read the index by its first two alone and filter on
    the value, which it does whenever its statistics say a system is rare: true of a new
    hospital feed until the next ANALYZE, and of every system when autovacuum is off. Each
    upload then read every identifier of its system. Led by the value, the only way into the
    index is the value: a few index probes, whatever the statistics.
    """

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="identifier_rows")
    resource_type = models.CharField(max_length=64)
    system = models.CharField(max_length=255)
    value = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["value", "system", "resource_type"], name="unique_identifier_by_value"
            )
        ]

    def __str__(self) -> str:
        return f"{self.system}|{self.value}"


class SearchIndex(models.Model):
    """Common columns of the search-index tables: which resource, which parameter."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="+")
    resource_type = models.CharField(max_length=64)
    param = models.CharField(max_length=64)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.resource_type}.{self.param}"


class SearchToken(SearchIndex):
    system = models.CharField(max_length=255, blank=True)
    code = models.CharField(max_length=255)

    class Meta:
        indexes = [models.Index(fields=["resource_type", "param", "code", "system"])]


class SearchDate(SearchIndex):
    start = models.DateTimeField()
    end = models.DateTimeField()
    # The resource's patient, copied here so "this patient's observations of that day" is one
    # index range instead of a walk over every observation the patient has.
    patient = models.ForeignKey(
        "clinic.Patient",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )

    class Meta:
        indexes = [
            models.Index(fields=["resource_type", "param", "start"]),
            models.Index(fields=["resource_type", "param", "end"]),
            # Covering (PostgreSQL): a date range is tested on the index alone. Without
            # INCLUDE, every earlier row of the patient was fetched from the heap to test "end".
            models.Index(
                fields=["resource_type", "param", "patient", "start"],
                include=["end", "resource"],
                name="searchdate_patient_start_cov",
            ),
        ]


class SearchReference(SearchIndex):
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)

    class Meta:
        indexes = [models.Index(fields=["resource_type", "param", "target_type", "target_id"])]


class SearchQuantity(SearchIndex):
    value = models.FloatField()
    system = models.CharField(max_length=255, blank=True)
    code = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes = [models.Index(fields=["resource_type", "param", "value"])]


class SearchString(SearchIndex):
    value = models.CharField(max_length=255)

    class Meta:
        indexes = [models.Index(fields=["resource_type", "param", "value"])]


class VitalSign(models.Model):
    """One typed reading per Observation (or per panel), for charts and rules.

    Written in the same transaction as its Observation. `vital` uses the rule keys of
    `clinic.rules` ("systolic_bp", "spo2", ...); a blood-pressure panel gives one row per
    component so rules and charts need no JSON parsing.
    """

    # Indexed with the time (Meta), not alone: "her newest reading" is then one probe per
    # partition, where an index on the patient alone read her whole history on every upload.
    patient = models.ForeignKey(
        "clinic.Patient", on_delete=models.CASCADE, related_name="vitals", db_index=False
    )
    observation = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="vitals")
    vital = models.CharField(max_length=32)
    loinc = models.CharField(max_length=20, blank=True)
    mdc = models.PositiveIntegerField(null=True, blank=True)
    effective_at = models.DateTimeField()
    value = models.FloatField(null=True, blank=True)
    unit = models.CharField(max_length=32, blank=True)
    data_absent = models.CharField(max_length=32, blank=True)
    device = models.CharField(max_length=255, blank=True, help_text="The monitor's identifier.")
    source = models.CharField(max_length=16, default="ble")
    status = models.CharField(max_length=16, default="final")
    flags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    evaluated_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the alert rules ran over this row; a sweep re-queues rows left unevaluated.",
    )

    class Meta:
        indexes = [
            models.Index(fields=["patient", "vital", "-effective_at"]),
            models.Index(fields=["patient", "-effective_at"], name="vitals_patient_newest"),
            models.Index(fields=["effective_at"]),
            models.Index(
                fields=["created_at"],
                condition=models.Q(evaluated_at__isnull=True),
                name="vitals_unevaluated",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vital}={self.value}{self.unit} @ {self.effective_at:%Y-%m-%d %H:%M}"


class AuditEvent(models.Model):
    """Who read or wrote whose data, when and why; chained by hash so tampering shows."""

    recorded = models.DateTimeField(db_index=True)
    action = models.CharField(max_length=1)  # C R U D E (FHIR AuditEvent.action)
    outcome = models.CharField(max_length=2, default="0")  # 0 success, 4 minor failure, 8 serious
    agent_type = models.CharField(max_length=32)  # user | bridge | system | anonymous
    agent_id = models.CharField(max_length=150)
    agent_role = models.CharField(max_length=32, blank=True)
    patient = models.ForeignKey(
        "clinic.Patient", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    entity = models.CharField(max_length=200, blank=True)
    purpose = models.CharField(max_length=200, blank=True)
    channel = models.CharField(max_length=16)  # page | fhir | websocket | hl7 | export | cli
    detail = models.CharField(max_length=500, blank=True)
    previous_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.recorded:%Y-%m-%d %H:%M:%S} {self.agent_id} {self.action} {self.entity}"
