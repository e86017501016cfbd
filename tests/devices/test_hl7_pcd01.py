"""IHE PCD-01 ORU^R01 parsing against the public reference messages in tests/data/hl7.

Each reference message comes with a .meta.json (source, licence, what every OBX holds); the
generic test compares our parse with those summaries, the named tests pin down the deliberate
behaviour for each edge case.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.hl7 import pcd01
from devices.hl7.errors import ContentError, Hl7Error, UnsupportedMessage

DATA = Path(__file__).resolve().parents[1] / "data" / "hl7"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def load(name: str) -> bytes:
    return (DATA / f"{name}.hl7").read_bytes()


def meta(name: str) -> dict:
    return json.loads((DATA / f"{name}.meta.json").read_text())


ACCEPTED = [
    "hapi_pcd01_bp_withdrawn_datatype",
    "ipf_continua_bp_timesync",
    "ipf_continua_glucose",
    "ipf_continua_glucose_INVALID_obx2_empty",
    "ipf_continua_oximeter",
    "ipf_continua_scale_two_obr",
    "ipf_continua_thermometer_fahrenheit",
    "ipf_pcd01_bp_request",
    "ipf_pcd01_maximum_request_edgecases",
    "ipf_pcd01_multiparam_monitor_gateway",
    "pythonhl7_sample_oru_glucose_lab",
]

# name -> (error class, HL7 error code, segment, field)
REFUSED = {
    "hl7apy_missing_msh9_edgecase": (UnsupportedMessage, 101, "MSH", 9),
    "pythonhl7_rep_sample_repetition_subcomponent": (ContentError, 100, "OBR", None),
    "ipf_ack_pcd01_AA": (UnsupportedMessage, 200, "MSH", 9),
    "ipf_ack_pcd01_CE_with_ERR": (UnsupportedMessage, 200, "MSH", 9),
    "ipf_ack_wan_AA": (UnsupportedMessage, 200, "MSH", 9),
    "ipf_ack_wan_INVALID_CE_no_msh15": (UnsupportedMessage, 200, "MSH", 9),
}

# OBX-6 as written in the references -> UCUM we must store (checked by hand, not by the table).
EXPECTED_UCUM = {
    "266016^MDC_DIM_MMHG^MDC": "mm[Hg]",
    "262688^MDC_DIM_PERCENT^MDC": "%",
    "264274^MDC_DIM_MILLI_G_PER_DL^MDC": "mg/dL",
    "264320^MDC_DIM_SEC^MDC": "s",
    "263890^MDC_DIM_MILLI_G^MDC": "mg",
    "263872^MDC_DIM_G^MDC": "g",
    "262656^MDC_DIM_DIMLESS^MDC": "1",
    "266560^MDC_DIM_FAHR^MDC": "[degF]",
    "263875^MDC_DIM_KILO_G^MDC": "kg",
    "263441^MDC_DIM_CENTI_M^MDC": "cm",
    "264096^MDC_DIM_KG_PER_M_SQ^MDC": "kg/m2",
    "/min^/min^UCUM": "/min",
    "mm[Hg]^mm[Hg]^UCUM": "mm[Hg]",
    "mmHg^Unit": "mm[Hg]",
    "mg/dl": "mg/dL",
}


def expected_eui64(obx18: str) -> list[str]:
    """EUI-64s of an OBX-18 written either as id^EUI-64 or id^ns^uid^EUI-64."""
    out = []
    for rep in obx18.split("~"):
        parts = rep.split("^")
        if len(parts) > 3 and parts[3] == "EUI-64":
            out.append(parts[2])
        elif len(parts) > 1 and parts[1] == "EUI-64":
            out.append(parts[0])
    return out


def test_reference_lists_cover_every_reference_message() -> None:
    names = {p.stem for p in DATA.glob("*.hl7")}
    assert names == set(ACCEPTED) | set(REFUSED)


@pytest.mark.parametrize("name", ACCEPTED)
def test_reference_oru_parses_as_its_meta_describes(name: str) -> None:
    summary = meta(name)["summary"]
    oru = pcd01.parse_bytes(load(name))

    msh = summary["MSH"]
    assert oru.control_id == msh["MSH-10"]
    assert oru.version == msh["MSH-12"]
    assert (oru.accept_ack_type or "") == msh["MSH-15"]
    assert (oru.application_ack_type or "") == msh["MSH-16"]
    assert (oru.charset or "") == msh["MSH-18"]
    assert oru.message_time == pcd01.parse_timestamp(msh["MSH-7"])
    assert oru.patient_identifiers[0].value == summary["PID-3.1"]
    assert oru.patient_name is not None
    assert oru.patient_name.family == summary["PID-5"].split("^")[0]

    assert len(oru.observations) == len(summary["OBX"])
    for obx, m in zip(oru.observations, summary["OBX"], strict=True):
        where = f"{name} OBX {m['OBX-1']}"
        assert obx.set_id == int(m["OBX-1"]), where
        assert (obx.value_type or "") == m["OBX-2"], where
        assert obx.code == m["code"], where
        assert obx.code_text == m["text"], where
        if m["system"] == "MDC":
            assert obx.mdc_code == int(m["code"]), where
            assert obx.mdc_term == m["text"], where
        else:
            assert obx.mdc_code is None and obx.mdc_term is None, where
        sub_id = m["OBX-4"]
        assert obx.hierarchy == (tuple(int(p) for p in sub_id.split(".")) if sub_id else ())
        if m["OBX-2"] == "NM":
            assert obx.value == pytest.approx(float(m["OBX-5"])), where
        assert obx.ucum == (EXPECTED_UCUM[m["OBX-6"]] if m["OBX-6"] else None), where
        assert (obx.status or "") == m["OBX-11"], where
        if m["OBX-14"]:
            assert obx.observed_at == pcd01.parse_timestamp(m["OBX-14"]), where
        assert obx.observed_at is not None and obx.observed_at.tzinfo is not None, where
        if m["OBX-18"]:
            assert [e.eui64 for e in obx.equipment] == expected_eui64(m["OBX-18"]), where


@pytest.mark.parametrize(("name", "expected"), REFUSED.items())
def test_reference_message_that_is_not_a_usable_oru_is_refused(name: str, expected) -> None:
    error_class, code, segment, field = expected
    with pytest.raises(error_class) as caught:
        pcd01.parse_bytes(load(name))
    assert (caught.value.code, caught.value.segment, caught.value.field) == (code, segment, field)


def test_blood_pressure_components_belong_to_the_compound_and_inherit_its_time() -> None:
    oru = pcd01.parse_bytes(load("ipf_continua_bp_timesync"))
    by_term = {o.mdc_term: o for o in oru.observations}
    compound_time = datetime(2009, 8, 13, 9, 57, 15, tzinfo=UTC)
    for term, value in [
        ("MDC_PRESS_BLD_NONINV_SYS", 120.0),
        ("MDC_PRESS_BLD_NONINV_DIA", 80.0),
        ("MDC_PRESS_BLD_NONINV_MEAN", 100.0),
    ]:
        obx = by_term[term]
        assert obx.value == value
        assert (obx.unit_code, obx.unit_term, obx.ucum) == (266016, "MDC_DIM_MMHG", "mm[Hg]")
        assert obx.parent == "MDC_PRESS_BLD_NONINV"
        # No OBX-14 of their own: the time is the compound's (OBX 3), the device the MDS's.
        assert obx.observed_at == compound_time
        assert [e.eui64 for e in obx.equipment] == ["0123456789ABCDEF"]
    assert by_term["MDC_PRESS_BLD_NONINV"].parent == "MDC_DEV_SPEC_PROFILE_BP"


def test_status_written_in_obx10_is_not_taken_as_the_result_status() -> None:
    # OBX|1|CWE|68220^MDC_TIME_SYNC_PROTOCOL^MDC|0.0.0.1|532224^...|||||R : "R" is in OBX-10.
    time_sync = pcd01.parse_bytes(load("ipf_continua_bp_timesync")).observations[0]
    assert time_sync.mdc_term == "MDC_TIME_SYNC_PROTOCOL"
    assert time_sync.status is None
    assert (time_sync.value_code, time_sync.text) == ("532224", "MDC_TIME_SYNC_NONE")
    assert time_sync.parent is None


def test_coded_value_with_empty_obx2_is_kept_as_a_code_and_never_as_a_number() -> None:
    oru = pcd01.parse_bytes(load("ipf_continua_glucose_INVALID_obx2_empty"))
    location = oru.observations[7]
    assert location.value_type is None
    assert location.value is None
    assert location.value_code == "8417848"
    assert location.text == "MDC_CTXT_GLU_SAMPLELOCATION_FINGER"
    glucose = oru.observations[1]  # the reading beside it is not lost
    assert (glucose.value, glucose.ucum) == (37.5, "mg/dL")


def test_text_value_with_empty_obx2_is_kept_as_text() -> None:
    raw = (
        load("ipf_continua_bp_timesync")
        .decode()
        .replace(
            "|150020^MDC_PRESS_BLD_NONINV^MDC|1.0.1||", "|150020^MDC_PRESS_BLD_NONINV^MDC|1.0.1|42|"
        )
    )
    compound = pcd01.parse(raw).observations[2]
    assert (compound.value_type, compound.value, compound.text) == (None, None, "42")


def test_message_without_cr_after_last_segment_parses_completely() -> None:
    raw = load("ipf_pcd01_maximum_request_edgecases")
    assert not raw.endswith(b"\r")
    oru = pcd01.parse_bytes(raw)
    assert oru.observations[-1].status == "X"
    assert oru.observations[-1].obr_index == 2


def test_lf_and_crlf_segment_ends_are_accepted() -> None:
    text = load("ipf_pcd01_bp_request").decode()
    expected = pcd01.parse(text)
    assert pcd01.parse(text.replace("\r", "\n")) == expected
    assert pcd01.parse(text.replace("\r", "\r\n")) == expected


def test_repetitions_and_subcomponents_of_the_maximal_message() -> None:
    oru = pcd01.parse_bytes(load("ipf_pcd01_maximum_request_edgecases"))
    # PID-3 "111222333444^^^Imaginary Hospital&1.3.4.565&ISO^PI": HD sub-components.
    assert oru.patient_identifiers == (pcd01.PatientId("111222333444", "Imaginary Hospital", "PI"),)
    assert oru.charset == "8859/1"
    systolic = oru.observations[2]
    assert systolic.equipment == (
        pcd01.Equipment("1305815835", "123254BCD", "0123456789ABCDEF", "EUI-64"),
        pcd01.Equipment("1305816209", "254BDG", "0123456789ABCDEF", "EUI-64"),
    )
    assert systolic.reference_range == "<120"
    assert oru.observations[3].abnormal_flags == ("EARLY", "QUES")
    assert [o.status for o in oru.observations] == list("RRCDFPRSUX")
    # "mmHg^Unit" is not MDC nor UCUM, but a known spelling of mm[Hg].
    assert oru.observations[0].ucum == "mm[Hg]"


def test_repeated_patient_identifiers_are_all_kept() -> None:
    raw = (
        load("ipf_pcd01_bp_request")
        .decode()
        .replace(
            "PID|||789567^^^Imaginary Hospital^PI|",
            "PID|||789567^^^Imaginary Hospital^PI~44010619900101001X^^^CN-RIC&1.2.156&ISO^NNCHN|",
        )
    )
    ids = pcd01.parse(raw).patient_identifiers
    assert ids == (
        pcd01.PatientId("789567", "Imaginary Hospital", "PI"),
        pcd01.PatientId("44010619900101001X", "CN-RIC", "NNCHN"),
    )


def test_pid_with_components_subcomponents_and_repetitions_reads_the_identifier() -> None:
    # python-hl7's delimiter sample has no OBR; give it one to reach the PID logic.
    raw = load("pythonhl7_rep_sample_repetition_subcomponent").decode()
    raw += "OBR|1\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.0.0.1|97|262688^MDC_DIM_PERCENT^MDC\r"
    oru = pcd01.parse(raw)
    assert oru.patient_identifiers == (pcd01.PatientId("Component1", None, None),)
    assert oru.patient_name is None
    assert oru.observations[0].value == 97.0


def test_hl7_null_means_no_value() -> None:
    text = load("ipf_continua_bp_timesync").decode()
    text = text.replace("|1.0.1.1|120|", '|1.0.1.1|""|')
    text = text.replace("|1.0.1|||||||X|||20090813095715+0000", '|1.0.1|||||||X|||""')
    text = text.replace("|Doe^John^Joseph^^^^L^A|", '|""|')
    oru = pcd01.parse(text)
    systolic = oru.observations[3]
    assert systolic.value is None and systolic.text is None
    # The compound's OBX-14 is null, so its components fall back to OBR-7.
    assert systolic.observed_at == datetime(2009, 8, 13, 9, 57, 15, tzinfo=UTC)
    assert oru.patient_name is None


def test_fahrenheit_is_kept_as_sent_with_its_ucum_unit() -> None:
    temp = pcd01.parse_bytes(load("ipf_continua_thermometer_fahrenheit")).observations[1]
    assert (temp.mdc_term, temp.value, temp.unit_code, temp.ucum) == (
        "MDC_TEMP_ORAL",
        98.6,
        266560,
        "[degF]",
    )


def test_pleth_waveform_becomes_samples() -> None:
    pleth = pcd01.parse_bytes(load("ipf_continua_oximeter")).observations[2]
    assert pleth.value_type == "NA"
    assert pleth.samples == (12, 123, 24, 12, 234, 55, 66, 77, 88, 99)


def test_structured_numeric_lab_value_and_local_time() -> None:
    oru = pcd01.parse_bytes(load("pythonhl7_sample_oru_glucose_lab"))
    sn, fn = oru.observations
    assert (sn.value, sn.text, sn.ucum, sn.abnormal_flags) == (182.0, None, "mg/dL", ("H",))
    assert sn.loinc is None  # OBX-3.3 does not name LOINC ("LN"), so we do not assume it
    assert (fn.value, fn.text) == (None, "182")
    # OBR-7 200202150730 has no offset: Asia/Shanghai.
    assert sn.observed_at == datetime(2002, 2, 15, 7, 30, tzinfo=SHANGHAI)


def test_loinc_alternate_coding_is_exposed() -> None:
    raw = (
        load("ipf_pcd01_bp_request")
        .decode()
        .replace(
            "150021^MDC_PRESS_BLD_NONINV_SYS^MDC", "150021^MDC_PRESS_BLD_NONINV_SYS^MDC^8480-6^^LN"
        )
    )
    systolic = pcd01.parse(raw).observations[2]
    assert (systolic.mdc_code, systolic.loinc) == (150021, "8480-6")


def test_two_obr_groups_keep_their_own_containment_trees() -> None:
    oru = pcd01.parse_bytes(load("ipf_continua_scale_two_obr"))
    assert [o.obr_index for o in oru.observations] == [1] * 6 + [2] * 6
    assert oru.observations[9].parent == "MDC_DEV_SPEC_PROFILE_SCALE"
    assert oru.observations[9].hierarchy == (2, 0, 0, 2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20090813095715+0000", datetime(2009, 8, 13, 9, 57, 15, tzinfo=UTC)),
        (
            "20090813095715+0500",
            datetime(2009, 8, 13, 9, 57, 15, tzinfo=timezone(timedelta(hours=5))),
        ),
        (
            "20090813095715-0330",
            datetime(2009, 8, 13, 9, 57, 15, tzinfo=timezone(-timedelta(hours=3, minutes=30))),
        ),
        ("20081211144500", datetime(2008, 12, 11, 14, 45, tzinfo=SHANGHAI)),
        ("200812111445", datetime(2008, 12, 11, 14, 45, tzinfo=SHANGHAI)),
        ("20081211", datetime(2008, 12, 11, tzinfo=SHANGHAI)),
        ("20081211144500.123+0800", datetime(2008, 12, 11, 14, 45, 0, 123000, tzinfo=SHANGHAI)),
        ("", None),
    ],
)
def test_timestamps_are_aware(text: str, expected: datetime | None) -> None:
    assert pcd01.parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text", ["2009-08-13", "20091313", "20090813256000", "2009081309.5", "20090813+2500", "abc"]
)
def test_malformed_timestamps_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        pcd01.parse_timestamp(text)


BP = load("ipf_pcd01_bp_request").decode()


@pytest.mark.parametrize(
    ("old", "new", "code", "location"),
    [
        ("|1.0.1.1|120|", "|1.0.1.1|abc|", 102, ("OBX", 3, 5)),
        ("|1.0.1.1|120|", "|1.0.1.1|1e5|", 102, ("OBX", 3, 5)),
        ("|1.0.1.1|120|", "|1.0.1.1|nan|", 102, ("OBX", 3, 5)),
        (
            "|1.0.1.2|80|266016^MDC_DIM_MMHG^MDC",
            "|1.0.1.2|80|999^MDC_DIM_FURLONG^MDC",
            103,
            ("OBX", 4, 6),
        ),
        ("|1.0.1.1|120|266016^MDC_DIM_MMHG^MDC", "|1.0.1.1|120|furlong", 103, ("OBX", 3, 6)),
        (
            "|1.0.1.3|100|266016^MDC_DIM_MMHG^MDC|||||R",
            "|1.0.1.3|100|266016^MDC_DIM_MMHG^MDC|||||Q",
            103,
            ("OBX", 5, 11),
        ),
        ("|||||||R|||20090813095715+0500", "|||||||R|||2009-08-13", 102, ("OBX", 2, 14)),
        ("|||20090813095715+0500\r", "|||13.08.2009\r", 102, ("OBR", 1, 7)),
        (
            "PID|||789567^^^Imaginary Hospital^PI|",
            "PID|||^^^Imaginary Hospital^PI|",
            101,
            ("PID", 1, 3),
        ),
        ("|MSGID1234|", "||", 101, ("MSH", 1, 10)),
        (
            "OBX|3|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC",
            "OBX|3|NM|^MDC_PRESS_BLD_NONINV_SYS^MDC",
            101,
            ("OBX", 3, 3),
        ),
    ],
)
def test_bad_content_is_a_content_error_with_its_location(old, new, code, location) -> None:
    assert old in BP
    with pytest.raises(ContentError) as caught:
        pcd01.parse(BP.replace(old, new, 1))
    error = caught.value
    assert error.ack_code == "AE"
    assert (error.code, (error.segment, error.segment_seq, error.field)) == (code, location)


def test_message_without_pid_is_a_content_error() -> None:
    text = "\r".join(s for s in BP.split("\r") if not s.startswith("PID"))
    with pytest.raises(ContentError) as caught:
        pcd01.parse(text)
    assert (caught.value.code, caught.value.segment) == (100, "PID")


def test_obx_before_any_obr_is_a_segment_sequence_error() -> None:
    segments = BP.strip("\r").split("\r")
    text = "\r".join(segments[:2] + segments[3:] + segments[2:3])
    with pytest.raises(ContentError) as caught:
        pcd01.parse(text)
    assert (caught.value.code, caught.value.segment, caught.value.segment_seq) == (100, "OBX", 1)


@pytest.mark.parametrize(
    ("old", "new", "code"),
    [
        ("|ORU^R01^ORU_R01|", "|ADT^A01^ADT_A01|", 200),
        ("|ORU^R01^ORU_R01|", "|ORU^R30^ORU_R30|", 201),
        ("|P|2.6|", "|P||", 203),
        ("|P|2.6|", "|P|9.9|", 203),
        ("MSH|^~\\&|", "MSX|^~\\&|", 100),
        ("MSH|^~\\&|", "MSH|^^^^|", 100),
    ],
)
def test_messages_we_do_not_take_are_rejected(old: str, new: str, code: int) -> None:
    with pytest.raises(UnsupportedMessage) as caught:
        pcd01.parse(BP.replace(old, new, 1))
    assert caught.value.code == code
    assert caught.value.ack_code == "AR"


def test_control_id_is_exposed_for_idempotency() -> None:
    oru = pcd01.parse_bytes(load("ipf_pcd01_multiparam_monitor_gateway"))
    assert oru.control_id == "12d15a9:11df9e61347:-7fee:30456965"
    assert oru.sending_application == pcd01.HierarchicDesignator(
        "HL7", "080019FFFF4F6AC0", "EUI-64"
    )


def test_escaped_delimiters_are_resolved_in_values() -> None:
    text = BP.replace("Doe^John^Joseph", "O\\S\\Brien\\T\\Co^John^Joseph")
    assert pcd01.parse(text).patient_name == pcd01.PersonName("O^Brien&Co", "John", "Joseph")


def _outcome(text: str) -> str:
    try:
        pcd01.parse(text)
    except Hl7Error as exc:
        return type(exc).__name__
    return "Oru"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_text_gives_an_oru_or_an_hl7_error(text: str) -> None:
    assert _outcome(text) in {"Oru", "ContentError", "UnsupportedMessage"}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(ACCEPTED),
    st.integers(min_value=0, max_value=2000),
    st.integers(min_value=0, max_value=40),
    st.text(
        alphabet=st.sampled_from('|^~\\&\r\n"0123456789.+-ABCMDHNOPRSTXZ \x00é张'), max_size=20
    ),
)
def test_any_mutation_of_a_reference_message_gives_an_oru_or_an_hl7_error(
    name: str, at: int, cut: int, insert: str
) -> None:
    text = load(name).decode("latin-1")
    at %= len(text) + 1
    assert _outcome(text[:at] + insert + text[at + cut :]) in {
        "Oru",
        "ContentError",
        "UnsupportedMessage",
    }
