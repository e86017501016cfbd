"""``python manage.py import_dicom PATH --patient IDENTIFIER``: file an ECG from a cart or a PACS.

Thin: read the file, call ``fhir.ecg.import_ecg`` as the DICOM interface, print what was stored.
Every refusal is a ``CommandError`` with one clear line, and the exit status is non-zero.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from clinic.access import actor_for_interface
from fhir.ecg import import_ecg, max_upload_bytes
from fhir.errors import FhirError


class Command(BaseCommand):
    help = (
        "Import a DICOM ECG (12-lead or General ECG Waveform Storage) into a patient's record: "
        "keeps the file and stores an Observation per ECG, its heart rate and a DocumentReference."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="The DICOM file (.dcm).")
        parser.add_argument(
            "--patient",
            required=True,
            help="The patient's resident identity number (or another registered identifier).",
        )

    def handle(self, *args, path: str, patient: str, **options):
        data = _read_file(Path(path))
        self.stdout.write(f"reading {path} ({len(data):,} bytes) for patient {patient} ...")
        try:
            result = import_ecg(
                actor_for_interface("import_dicom"), data, patient_identifier=patient
            )
        except FhirError as exc:
            raise CommandError(f"{path}: {exc.diagnostics}") from None

        verb = "imported" if result.created else "already imported, nothing new stored:"
        self.stdout.write(
            f"{verb} {result.kind} {result.sop_instance_uid}: {result.leads} leads, "
            f"{result.duration_s:g} s at {result.sampling_frequency:g} Hz"
        )
        self.stdout.write(f"  Observation/{result.observation_id} (ECG)")
        if result.heart_rate_observation_id:
            self.stdout.write(f"  Observation/{result.heart_rate_observation_id} (heart rate)")
        self.stdout.write(
            f"  DocumentReference/{result.document_reference_id} ({result.download_url})"
        )
        if result.heart_rate_bpm is not None:
            self.stdout.write(f"heart rate: {result.heart_rate_bpm:.1f} /min")
        else:
            self.stdout.write(f"heart rate: not measurable ({result.heart_rate_problem})")


def _read_file(path: Path) -> bytes:
    if not path.exists():
        raise CommandError(f"file not found: {path}")
    if not path.is_file():
        raise CommandError(f"{path} is not a file")
    limit = max_upload_bytes()
    if path.stat().st_size > limit:
        raise CommandError(
            f"{path}: the file has {path.stat().st_size:,} bytes; the limit is {limit:,} "
            "(settings.ECG_MAX_UPLOAD_BYTES)"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
