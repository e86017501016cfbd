"""ECGs in DICOM into the shared record (issue 7, part 3): the import command, the upload and
download endpoints, the FHIR read-back and the timeline traces.

The file is pydicom's own ``waveform_ecg.dcm`` (a Mortara el250 12-lead resting ECG, 10 s at
1000 Hz, plus a 1.2 s median beat); what it holds is written down, independently of our reader,
in ``tests/data/dicom/waveform_ecg_expected.json``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client
from fhir.resources.R4B import get_fhir_model_class
from pydicom.data import get_testdata_file
from pydicom.waveforms.numpy_handler import multiplex_array

from clinic.models import Patient
from devices.dicom import read_ecg
from fhir.ecg import ecg_traces, thin
from fhir.mapping import dicom as mapping
from fhir.models import AuditEvent, Resource, VitalSign
from tests.fhir.conftest import CHEN

ECG_FILE = Path(get_testdata_file("waveform_ecg.dcm", download=False))
CT_FILE = Path(get_testdata_file("CT_small.dcm", download=False))
EXPECTED = json.loads(
    (Path(__file__).parents[1] / "data" / "dicom" / "waveform_ecg_expected.json").read_text()
)
PASSWORD = "sgdemo2026"
UPLOAD = "/fhir/ecg/upload"


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def chen(demo):
    return Patient.objects.get(resident_id=CHEN)


def run_import(path, patient=CHEN) -> str:
    out = StringIO()
    call_command("import_dicom", str(path), patient=patient, stdout=out)
    return out.getvalue()


def logged_in(username: str, **kwargs) -> Client:
    client = Client(**kwargs)
    assert client.login(username=username, password=PASSWORD)
    return client


def search(client, query: str) -> list[dict]:
    response = client.get(f"/fhir/{query}")
    assert response.status_code == 200, response.content
    return [
        e["resource"] for e in response.json().get("entry", []) if e["search"]["mode"] == "match"
    ]


def stored_files() -> list[Path]:
    folder = Path(settings.MEDIA_ROOT) / "dicom"
    return sorted(folder.iterdir()) if folder.exists() else []


def nothing_stored() -> bool:
    return not Resource.objects.exists() and not VitalSign.objects.exists() and not stored_files()


# --- the command and the FHIR read-back --------------------------------------------------------


def test_import_command_reports_progress_ids_and_heart_rate(chen):
    output = run_import(ECG_FILE)

    assert output.startswith(f"reading {ECG_FILE} (291,088 bytes) for patient {CHEN} ...")
    assert f"imported 12-lead ECG {EXPECTED['SOPInstanceUID']}: 12 leads, 10 s at 1000 Hz" in output
    ecg, rate = Resource.objects.filter(resource_type="Observation").order_by("pk")
    document = Resource.objects.get(resource_type="DocumentReference")
    assert f"Observation/{ecg.logical_id} (ECG)" in output
    assert f"Observation/{rate.logical_id} (heart rate)" in output
    assert f"DocumentReference/{document.logical_id}" in output
    assert "heart rate: 61.1 /min" in output
    audit = AuditEvent.objects.get(action="C", patient=chen)
    assert audit.agent_id == "interface/import_dicom"


def test_ecg_reads_back_through_the_api_with_the_files_raw_integers(chen):
    run_import(ECG_FILE)
    client = logged_in("dr_tianhe")

    (observation,) = search(
        client, f"Observation?patient=Patient/{chen.pk}&code=http://loinc.org|11524-6"
    )

    codes = {(c["system"], c["code"]) for c in observation["code"]["coding"]}
    assert codes == {(mapping.MDC, "131328"), (mapping.LOINC, "11524-6")}
    assert observation["effectiveDateTime"] == "2013-01-25T10:59:19+08:00"
    assert observation["identifier"] == [
        {"system": "urn:dicom:uid", "value": f"urn:oid:{EXPECTED['SOPInstanceUID']}"}
    ]
    rhythm = EXPECTED["multiplex_groups"][0]
    assert rhythm["MultiplexGroupLabel"] == "RHYTHM"
    # The RHYTHM group only: the DERIVED median beat stays in the file (see fhir.mapping.dicom).
    assert len(observation["component"]) == rhythm["NumberOfWaveformChannels"] == 12
    ds = pydicom.dcmread(ECG_FILE)
    raw = multiplex_array(ds, 0, as_raw=True)
    physical = ds.waveform_array(0)
    for index, (component, channel) in enumerate(
        zip(observation["component"], rhythm["channels"], strict=True)
    ):
        lead_number = int(channel["source_code"].rsplit("-", 1)[1])
        (coding,) = component["code"]["coding"]
        assert (coding["system"], coding["code"]) == (mapping.MDC, str(131328 + lead_number))
        assert coding["display"].startswith("MDC_ECG_ELEC_POTL_")
        value = component["valueSampledData"]
        assert value["period"] == 1  # ms, at 1000 Hz
        assert value["dimensions"] == 1
        assert value["factor"] == channel["sensitivity"] * channel["correction_factor"]
        assert value["origin"] == {
            "value": 0,
            "unit": "uV",
            "system": "http://unitsofmeasure.org",
            "code": "uV",
        }
        data = np.array([int(word) for word in value["data"].split(" ")])
        assert np.array_equal(data, raw[:, index])  # lossless: the stored integers exactly
        assert np.array_equal(mapping.physical_values(value), physical[:, index])
    assert observation["component"][0]["code"]["coding"][0]["display"] == "MDC_ECG_ELEC_POTL_I"
    assert observation["component"][3]["code"]["coding"][0]["display"] == "MDC_ECG_ELEC_POTL_AVR"


def test_heart_rate_is_an_observation_and_a_vitals_row(chen):
    run_import(ECG_FILE)
    client = logged_in("dr_tianhe")

    (rate,) = search(client, f"Observation?patient=Patient/{chen.pk}&code=http://loinc.org|8867-4")
    (ecg,) = search(client, f"Observation?patient=Patient/{chen.pk}&code=http://loinc.org|11524-6")

    quantity = rate["valueQuantity"]
    assert (quantity["system"], quantity["code"]) == ("http://unitsofmeasure.org", "/min")
    assert abs(quantity["value"] - EXPECTED["derived_heart_rate_bpm_from_RR"]) <= 3
    assert {c["code"] for c in rate["code"]["coding"]} == {"8867-4", "147842"}
    assert rate["derivedFrom"] == [{"reference": f"Observation/{ecg['id']}"}]
    row = VitalSign.objects.get(patient=chen)
    assert (row.vital, row.unit, row.source) == ("heart_rate", "/min", "dicom")
    assert row.value == quantity["value"]
    assert row.effective_at.isoformat() == "2013-01-25T02:59:19+00:00"


def test_document_reference_points_at_the_kept_original(chen):
    run_import(ECG_FILE)
    client = logged_in("dr_tianhe")
    data = ECG_FILE.read_bytes()

    (document,) = search(client, f"DocumentReference?patient=Patient/{chen.pk}")
    (ecg,) = search(client, f"Observation?patient=Patient/{chen.pk}&code=http://loinc.org|11524-6")

    attachment = document["content"][0]["attachment"]
    assert attachment["contentType"] == "application/dicom"
    assert attachment["size"] == EXPECTED["file_size_bytes"] == len(data)
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(data).digest()).decode()
    assert attachment["url"].endswith(f"/fhir/ecg/{EXPECTED['sha256']}.dcm")
    assert attachment["title"] and attachment["creation"] == "2013-01-25T10:59:19+08:00"
    assert document["date"]
    assert document["context"]["related"] == [{"reference": f"Observation/{ecg['id']}"}]
    (kept,) = stored_files()
    assert kept.name == f"{EXPECTED['sha256']}.dcm"
    assert kept.read_bytes() == data


def test_every_stored_resource_validates_as_fhir_r4b(chen):
    run_import(ECG_FILE)

    bodies = [r.body for r in Resource.objects.all()]

    assert sorted(b["resourceType"] for b in bodies) == [
        "DocumentReference",
        "Observation",
        "Observation",
    ]
    for body in bodies:
        get_fhir_model_class(body["resourceType"]).model_validate(body)


def test_importing_the_same_file_twice_stores_it_once(chen):
    first = run_import(ECG_FILE)
    counts = (Resource.objects.count(), VitalSign.objects.count(), AuditEvent.objects.count())

    second = run_import(ECG_FILE)

    assert "already imported, nothing new stored" in second
    assert (Resource.objects.count(), VitalSign.objects.count(), AuditEvent.objects.count()) == (
        counts
    )
    assert len(stored_files()) == 1
    ids = [line for line in first.splitlines() if line.startswith("  ")]
    assert ids == [line for line in second.splitlines() if line.startswith("  ")]


def test_the_same_file_for_another_patient_is_a_conflict(chen):
    run_import(ECG_FILE)

    with pytest.raises(CommandError, match="already in another patient's record"):
        run_import(ECG_FILE, patient="440304196207150032")

    assert Resource.objects.filter(patient=chen).count() == 3
    assert Resource.objects.count() == 3


# --- refusals ----------------------------------------------------------------------------------


def _truncated(tmp_path: Path) -> Path:
    path = tmp_path / "truncated.dcm"
    path.write_bytes(ECG_FILE.read_bytes()[:2000])
    return path


def _random(tmp_path: Path) -> Path:
    path = tmp_path / "random.dcm"
    path.write_bytes(np.random.default_rng(7).bytes(4096))
    return path


@pytest.mark.parametrize(
    ("make_path", "patient", "message"),
    [
        (lambda tmp: CT_FILE, CHEN, r"not an ECG: the file is CT Image Storage"),
        (_truncated, CHEN, r"the DICOM file is truncated or corrupt"),
        (_random, CHEN, r"not a DICOM file"),
        (lambda tmp: tmp / "nowhere.dcm", CHEN, r"^file not found: .*nowhere\.dcm$"),
        (lambda tmp: ECG_FILE, "440106190001010000", r"unknown patient: no patient has the "),
    ],
    ids=["ct-image", "truncated", "random-bytes", "missing-path", "unknown-patient"],
)
def test_bad_input_is_refused_with_a_clear_error_and_stores_nothing(
    demo, tmp_path, make_path, patient, message
):
    with pytest.raises(CommandError, match=message):
        run_import(make_path(tmp_path), patient=patient)

    assert nothing_stored()


def test_command_exits_non_zero_with_the_message(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "import_dicom",
            str(tmp_path / "gone.dcm"),
            "--patient",
            CHEN,
        ],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
    )

    assert result.returncode != 0
    assert f"file not found: {tmp_path / 'gone.dcm'}" in result.stderr


# --- HTTP --------------------------------------------------------------------------------------


def upload(client: Client, path: Path = ECG_FILE, patient: str = CHEN):
    with path.open("rb") as handle:
        return client.post(UPLOAD, {"file": handle, "patient": patient})


def test_upload_with_a_session_stores_the_ecg_and_answers_the_ids(chen):
    client = logged_in("dr_tianhe", enforce_csrf_checks=False)

    response = upload(client)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] is True
    assert body["heartRateBpm"] == pytest.approx(61.1, abs=3)
    observation = Resource.objects.get(logical_id=body["observation"].split("/")[1])
    assert observation.patient == chen and len(observation.body["component"]) == 12
    assert Resource.objects.filter(
        logical_id=body["documentReference"].split("/")[1], resource_type="DocumentReference"
    ).exists()
    again = upload(client)
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["observation"] == body["observation"]
    assert Resource.objects.count() == 3


def test_upload_without_the_csrf_token_is_refused(chen):
    client = logged_in("dr_tianhe", enforce_csrf_checks=True)

    response = upload(client)

    assert response.status_code == 403
    assert "CSRF" in response.json()["issue"][0]["diagnostics"]
    assert nothing_stored()


def test_upload_needs_a_login(demo):
    response = upload(Client())

    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"


def test_a_doctor_of_another_hub_may_not_upload_or_download(chen):
    refused = upload(logged_in("dr_futian"))
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["code"] == "forbidden"
    assert nothing_stored()

    url = upload(logged_in("dr_tianhe")).json()["url"]
    path = "/fhir/" + url.split("/fhir/", 1)[1]

    assert logged_in("dr_futian").get(path).status_code == 404
    response = logged_in("dr_tianhe").get(path)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom"
    assert response.content == ECG_FILE.read_bytes()
    assert response["Content-Disposition"].startswith("attachment;")
    read = AuditEvent.objects.filter(action="R", patient=chen, agent_id="dr_tianhe").last()
    assert read.entity.startswith("DocumentReference/")


def test_unknown_file_downloads_as_404(demo):
    response = logged_in("dr_tianhe").get(f"/fhir/ecg/{'0' * 64}.dcm")

    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_a_body_over_the_limit_is_413(chen, settings):
    settings.ECG_MAX_UPLOAD_BYTES = 100_000  # the file has 291,088 bytes

    response = upload(logged_in("dr_tianhe"))

    assert response.status_code == 413
    assert response.json()["issue"][0]["code"] == "too-costly"
    assert nothing_stored()


@pytest.mark.parametrize(
    ("path", "patient", "status", "message"),
    [
        (CT_FILE, CHEN, 422, "not an ECG"),
        (ECG_FILE, "440106190001010000", 422, "unknown patient"),
    ],
)
def test_bad_uploads_answer_an_operation_outcome(chen, path, patient, status, message):
    response = upload(logged_in("dr_tianhe"), path, patient)

    assert response.status_code == status
    assert message in response.json()["issue"][0]["diagnostics"]
    assert nothing_stored()


def test_upload_without_a_file_is_400(chen):
    response = logged_in("dr_tianhe").post(UPLOAD, {"patient": CHEN})

    assert response.status_code == 400
    assert "'file'" in response.json()["issue"][0]["diagnostics"]


# --- traces for the timeline -------------------------------------------------------------------


def test_ecg_traces_give_each_lead_in_millivolts_thinned_for_the_chart(chen):
    run_import(ECG_FILE)

    (trace,) = ecg_traces(chen, limit=3)

    assert trace.time.isoformat() == "2013-01-25T10:59:19+08:00"
    assert trace.heart_rate_bpm == pytest.approx(61.1, abs=3)
    assert trace.download_url.endswith(f"{EXPECTED['sha256']}.dcm")
    assert [lead.label for lead in trace.leads][:3] == ["Lead I", "Lead II", "Lead III"]
    assert len(trace.leads) == 12
    lead_ii = read_ecg(ECG_FILE).groups[0].channels[1].samples / 1000.0
    for lead in trace.leads:
        assert lead.unit == "mV"
        assert len(lead.samples) <= 2500
        assert lead.period_ms * len(lead.samples) == pytest.approx(10_000)
    # Min/max thinning keeps the R peaks at their full height.
    assert max(trace.leads[1].samples) == pytest.approx(lead_ii.max())
    assert min(trace.leads[1].samples) == pytest.approx(lead_ii.min())
    json.dumps(trace.as_json())  # ready for json_script


def test_thinning_keeps_short_signals_and_bounds_long_ones():
    short = np.arange(100.0)
    assert thin(short, 2500)[0] is short
    values, stride = thin(np.sin(np.arange(10_001) / 50.0), 2500)
    assert len(values) <= 2500 and stride == pytest.approx(10_001 / len(values), rel=0.01)
