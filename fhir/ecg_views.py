"""HTTP for ECG files: upload (multipart) and download of the original DICOM file.

Thin, like ``fhir.api``: the same ``endpoint`` wrapper authenticates, enforces CSRF for session
writes and renders every ``FhirError`` as an OperationOutcome; the work is ``fhir.ecg``'s.

* ``POST /fhir/ecg/upload`` — fields ``file`` (the .dcm) and ``patient`` (resident identity
  number or another identifier); for logged-in clinicians who may write the patient's record.
  201 with the created ids, 200 when the file was already imported.
* ``GET /fhir/ecg/<sha256>.dcm`` — the original file (``application/dicom``), for anyone who
  may read the patient, audited; 404 alike for unknown files and for records the user may not read.
  The address is the one ``DocumentReference.content.attachment.url`` holds. It is deliberately
  not ``/fhir/Binary/...``: a FHIR id has at most 64 characters and a Binary read must also
  answer ``Accept: application/fhir+json``, neither of which fits a plain file download.
"""

from __future__ import annotations

from functools import wraps

from django.http import HttpRequest, HttpResponse, JsonResponse

from fhir import ecg, smart
from fhir.api import endpoint, respond
from fhir.errors import BadRequest, Forbidden, MethodNotAllowed, NotAuthenticated, TooLarge

# Room for the multipart boundaries and the small `patient` field around the file itself.
_FORM_OVERHEAD = 64 * 1024


def _body_limit(view):
    """Refuse an oversized body from its Content-Length, before anything reads or spools it."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        limit = ecg.max_upload_bytes()
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit + _FORM_OVERHEAD:
            exc = TooLarge(f"the upload has {length:,} bytes; an ECG file may have {limit:,}")
            return respond(exc.outcome(), exc.status)
        return view(request, *args, **kwargs)

    return wrapper


def _require_login(actor) -> None:
    if actor.kind == "anonymous":
        raise NotAuthenticated("log in to upload or download ECG files")


@_body_limit
@endpoint
def ecg_upload(request: HttpRequest, actor):
    if request.method != "POST":
        raise MethodNotAllowed("upload an ECG with POST (multipart/form-data)")
    _require_login(actor)
    if actor.kind != "user":
        raise Forbidden("ECG files are uploaded by logged-in clinicians, not with a token")
    if request.content_type != "multipart/form-data":
        raise BadRequest("send multipart/form-data with the fields 'file' and 'patient'")
    upload = request.FILES.get("file")
    patient = (request.POST.get("patient") or "").strip()
    if upload is None:
        raise BadRequest("the DICOM file is missing: send it as the form field 'file'")
    if not patient:
        raise BadRequest("say whose ECG it is: the form field 'patient' (resident identity number)")
    limit = ecg.max_upload_bytes()
    if upload.size > limit:
        raise TooLarge(f"the file has {upload.size:,} bytes; an ECG file may have {limit:,}")
    result = ecg.import_ecg(actor, upload.read(), patient_identifier=patient)
    return JsonResponse(
        result.as_json(),
        status=201 if result.created else 200,
        json_dumps_params={"ensure_ascii": False},
    )


@endpoint
def ecg_download(request: HttpRequest, actor, sha256: str):
    if request.method not in ("GET", "HEAD"):
        raise MethodNotAllowed("ECG files are read with GET")
    _require_login(actor)  # then the patient's read check: a bridge token reads nothing
    smart.require(actor, "DocumentReference", "r")  # a hospital system needs the scope too
    path, document = ecg.ecg_file_for_download(actor, sha256)
    # Whole, not streamed: the files are small (the upload limit), and Django under ASGI can
    # only stream a file by draining a synchronous iterator, warning each time.
    response = HttpResponse(path.read_bytes(), content_type="application/dicom")
    response["Content-Disposition"] = f'attachment; filename="ecg-{document.logical_id}.dcm"'
    return response
