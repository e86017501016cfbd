"""Known byte vectors: each decodes to the whole expected Measurement.

Sources are named beside each vector. "Nordic" is NordicSemiconductor/Android-BLE-Common-Library,
ble-common/src/test/java/no/nordicsemi/android/ble/common/... (JUnit tests of its GATT parsers).
Vectors marked "spec layout" are built field by field from the Bluetooth SIG service
specification / GATT Specification Supplement layout named in the module under test.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from devices.gatt import decode, encode, mdc, racp
from devices.gatt.cgm import crc16_mcrf4xx, decode_records
from devices.gatt.errors import CrcMismatch
from devices.gatt.measurement import Component, Measurement

SYS, DIA, MAP = (
    mdc.MDC_PRESS_BLD_NONINV_SYS,
    mdc.MDC_PRESS_BLD_NONINV_DIA,
    mdc.MDC_PRESS_BLD_NONINV_MEAN,
)


def test_blood_pressure_full_with_unknown_year_reads_time_unknown():
    # Nordic callback/bps/BloodPressureMeasurementDataCallbackTest, onBloodPressureMeasurementReceived_full
    data = bytes(
        [
            0x1E,
            0x8A,
            0x00,
            0x58,
            0x00,
            0x78,
            0x00,
            0x00,
            0x00,
            0x04,
            0x11,
            0x14,
            0x29,
            0x3B,
            0x3C,
            0x00,
            0x01,
            0x27,
            0x00,
        ]
    )
    assert decode(0x2A35, data) == Measurement(
        kind="blood_pressure",
        components=(
            Component(SYS, 138.0, "mm[Hg]"),
            Component(DIA, 88.0, "mm[Hg]"),
            Component(MAP, 120.0, "mm[Hg]"),
            Component(mdc.MDC_PULS_RATE_NON_INV, 60.0, "/min"),
        ),
        time=None,
        flags=frozenset(
            {
                "time_unknown",
                "body_movement",
                "cuff_fit_loose",
                "irregular_pulse",
                "improper_measurement_position",
            }
        ),
        user_id=1,
    )


def test_blood_pressure_kpa_with_status_below_range():
    # Nordic BloodPressureMeasurementDataCallbackTest, onBloodPressureMeasurementReceived_some
    data = bytes([0x15, 0xBD, 0xF0, 0x0B, 0x00, 0x9F, 0xF0, 0x3C, 0x00, 0x12, 0x00])
    assert decode("2a35", data) == Measurement(
        kind="blood_pressure",
        components=(
            Component(SYS, 18.9, "kPa"),
            Component(DIA, 11.0, "kPa"),
            Component(MAP, 15.9, "kPa"),
            Component(mdc.MDC_PULS_RATE_NON_INV, 60.0, "/min"),
        ),
        flags=frozenset({"cuff_fit_loose", "pulse_rate_below_lower_limit"}),
    )


def test_blood_pressure_minimal():
    # Nordic BloodPressureMeasurementDataCallbackTest, onBloodPressureMeasurementReceived_minimal
    data = bytes([0x00, 0xBD, 0xF0, 0x0B, 0x00, 0x9F, 0xF0])
    assert decode("0x2A35", data) == Measurement(
        kind="blood_pressure",
        components=(
            Component(SYS, 18.9, "mm[Hg]"),
            Component(DIA, 11.0, "mm[Hg]"),
            Component(MAP, 15.9, "mm[Hg]"),
        ),
    )


def test_intermediate_cuff_pressure_keeps_only_cuff_pressure():
    # Spec layout (BLS 1.0 §3.2): flags 0x00, cuff 142 mmHg, diastolic/MAP NaN (0x07FF).
    data = bytes.fromhex("008e00ff07ff07")
    assert decode(0x2A36, data) == Measurement(
        kind="intermediate_cuff_pressure",
        components=(Component(mdc.MDC_PRESS_CUFF, 142.0, "mm[Hg]"),),
    )
    assert encode(decode(0x2A36, data)) == data


def test_cgm_full_record_with_valid_e2e_crc():
    # Nordic callback/cgm/ContinuousGlucoseMeasurementDataCallbackTest, ..._full (CRC 0x3F8E).
    # Nordic's parser reads the octets in the same wire order (Warning, Cal/Temp, Status) but maps
    # the first one to bits 0-7 (it asserts "battery low" for 0x02); we follow the GSS bit names:
    # the Warning-Octet's bit 1 is "result above patient high".
    data = bytes.fromhex("0fe3d2e4050002 14ff 02f0 e5f3 8e3f".replace(" ", ""))
    assert decode("00002aa7-0000-1000-8000-00805f9b34fb", data) == Measurement(
        kind="cgm",
        components=(Component(mdc.MDC_CONC_GLU_ISF, 12.34, "mg/dL"),),
        flags=frozenset(
            {
                "e2e_crc",
                "result_above_patient_high",
                "calibration_recommended",
                "sensor_temperature_too_high",
                "session_stopped",
                "device_battery_low",
                "sensor_type_incorrect",
                "sensor_malfunction",
                "device_specific_alert",
                "general_device_fault",
            }
        ),
        extra=(("quality", 99.7), ("time_offset_minutes", 5), ("trend", 0.2)),
    )


def test_cgm_small_record_and_packed_records():
    # Nordic ContinuousGlucoseMeasurementDataCallbackTest, ..._small and ..._double
    one = bytes([0x06, 0x00, 0x0C, 0x10, 0x06, 0x00])
    expected = Measurement(
        kind="cgm",
        components=(Component(mdc.MDC_CONC_GLU_ISF, 120.0, "mg/dL"),),
        extra=(("time_offset_minutes", 6),),
    )
    assert decode(0x2AA7, one) == expected
    double = bytes([0x06, 0x00, 0x0C, 0x10, 0x05, 0x00]) + one
    assert [m.get_extra("time_offset_minutes") for m in decode_records(double)] == [5, 6]


def test_cgm_wrong_crc_is_refused():
    # Nordic ContinuousGlucoseMeasurementDataCallbackTest, ..._crcError: CRC sent 0x6F58, real 0x6F59.
    data = bytes([0x08, 0x00, 0x0C, 0x10, 0x06, 0x00, 0x58, 0x6F])
    assert crc16_mcrf4xx(data[:6]) == 0x6F59
    with pytest.raises(CrcMismatch) as info:
        decode(0x2AA7, data)
    assert info.value.characteristic == 0x2AA7 and info.value.data == data


@pytest.mark.parametrize(
    ("data", "crc"),
    [
        (b"123456789", 0x6F91),  # CRC-16/MCRF4XX check value (reveng catalogue; Nordic CRC16Test)
        (b"A", 0x5C0A),  # Nordic CRC16Test.MCRF4XX_A
        (bytes([0x58, 0x25, 0x1F, 0x98]), 0x07F1),  # Microchip AN752 via Nordic CRC16Test
        (bytes([0x3E, 1, 2, 3, 4, 5, 6, 7, 8, 9]), 0x2F01),  # CGMS 1.0.1 §3.11 example via Nordic
    ],
)
def test_cgm_crc_matches_published_values(data, crc):
    assert crc16_mcrf4xx(data) == crc


def test_heart_rate_uint8_with_contact_energy_and_rr():
    # Spec layout (HRS 1.0 §3.1.1): flags 0x1E, 72 bpm, energy 300 kJ, RR 832/1024 and 1024/1024 s.
    data = bytes.fromhex("1e482c0140030004")
    assert decode(0x2A37, data) == Measurement(
        kind="heart_rate",
        components=(
            Component(mdc.MDC_ECG_HEART_RATE, 72.0, "/min"),
            Component(mdc.MDC_HF_ENERGY, 300.0, "kJ"),
            Component(mdc.MDC_ECG_TIME_PD_RR_GL, 0.8125, "s"),
            Component(mdc.MDC_ECG_TIME_PD_RR_GL, 1.0, "s"),
        ),
        flags=frozenset({"sensor_contact_supported", "sensor_contact_detected"}),
    )


def test_heart_rate_uint16_without_contact_support():
    # Spec layout: flags 0x01 (uint16 value), 300 bpm.
    assert decode(0x2A37, bytes.fromhex("012c01")) == Measurement(
        kind="heart_rate", components=(Component(mdc.MDC_ECG_HEART_RATE, 300.0, "/min"),)
    )


def test_temperature_celsius_mouth_with_time():
    # Spec layout (HTS 1.0 §3.1): flags 0x06, FLOAT 366e-1 = 0xFF00016E, 2024-03-01 08:30:00, type 6.
    data = bytes.fromhex("066e0100ffe8070301081e0006")
    assert decode(0x2A1C, data) == Measurement(
        kind="temperature",
        components=(Component(mdc.MDC_TEMP_ORAL, 36.6, "Cel"),),
        time=datetime(2024, 3, 1, 8, 30, 0),
        extra=(("temperature_type", "mouth"),),
    )


def test_temperature_nan_stays_special():
    # Spec layout: Fahrenheit, FLOAT NaN 0x007FFFFF.
    assert decode(0x2A1C, bytes.fromhex("01ffff7f00")) == Measurement(
        kind="temperature",
        components=(Component(mdc.MDC_TEMP_BODY, None, "[degF]", special="NaN"),),
    )


def test_plx_spot_check_with_everything():
    # Spec layout (PLXS 1.0 §3.1): flags 0x1F, SpO2 97, PR 61, time, measurement status bit 7
    # (validated), device status bit 5 (low perfusion), PAI 2.5 % (0xF019).
    data = bytes.fromhex("1f61003d00e8070301081e008000200000 19f0".replace(" ", ""))
    assert decode(0x2A5E, data) == Measurement(
        kind="plx_spot_check",
        components=(
            Component(mdc.MDC_PULS_OXIM_SAT_O2, 97.0, "%"),
            Component(mdc.MDC_PULS_OXIM_PULS_RATE, 61.0, "/min"),
            Component(mdc.MDC_PULS_OXIM_PERF_REL, 2.5, "%"),
        ),
        time=datetime(2024, 3, 1, 8, 30, 0),
        flags=frozenset({"validated_data", "low_perfusion_detected", "device_clock_not_set"}),
    )


def test_plx_continuous_fast_and_slow():
    # Spec layout (PLXS 1.0 §3.2): flags 0x03, normal 98/72, fast 97/74, slow NRes/73.
    data = bytes.fromhex("036200480061004a0000084900")
    assert decode(0x2A5F, data) == Measurement(
        kind="plx_continuous",
        components=(
            Component(mdc.MDC_PULS_OXIM_SAT_O2, 98.0, "%"),
            Component(mdc.MDC_PULS_OXIM_PULS_RATE, 72.0, "/min"),
            Component(mdc.MDC_PULS_OXIM_SAT_O2, 97.0, "%", modality="fast"),
            Component(mdc.MDC_PULS_OXIM_PULS_RATE, 74.0, "/min", modality="fast"),
            Component(mdc.MDC_PULS_OXIM_SAT_O2, None, "%", special="NRes", modality="slow"),
            Component(mdc.MDC_PULS_OXIM_PULS_RATE, 73.0, "/min", modality="slow"),
        ),
    )


def test_glucose_time_is_base_plus_offset():
    # Spec layout (GLS 1.0 §3.106): flags 0x1B (offset, concentration kg/L, annunciation, context
    # follows), seq 1, base 2024-03-01 08:30:00, offset -30 min, 55e-5 kg/L (0xB037),
    # capillary plasma at finger (0x12), annunciation bit 0 (battery low).
    data = bytes.fromhex("1b0100e8070301081e00e2ff37b0120100")
    assert decode(0x2A18, data) == Measurement(
        kind="glucose",
        components=(Component(mdc.MDC_CONC_GLU_CAPILLARY_PLASMA, 0.00055, "kg/L"),),
        time=datetime(2024, 3, 1, 8, 0, 0),
        flags=frozenset({"device_battery_low", "context_follows"}),
        sequence=1,
        extra=(
            ("glucose_type", "capillary_plasma"),
            ("sample_location", "finger"),
            ("time_offset_minutes", -30),
        ),
    )


def test_glucose_context_meal_and_hba1c():
    # Spec layout (GLS 1.0 §3.107): flags 0x42 (meal, HbA1c), seq 1, meal 1 preprandial, HbA1c 6.5 %.
    assert decode(0x2A34, bytes.fromhex("42010001 41f0".replace(" ", ""))) == Measurement(
        kind="glucose_context",
        components=(Component(mdc.MDC_CONC_HBA1C, 6.5, "%"),),
        sequence=1,
        extra=(("meal", "preprandial"),),
    )


def test_weight_si_with_bmi_height_and_unknown_user():
    # Spec layout (WSS 1.0 / GSS Weight Measurement): flags 0x0E, 72.35 kg = 14470 * 0.005,
    # 2024-03-01 08:30:00, user 0xFF, BMI 24.1, height 1.733 m.
    data = bytes.fromhex("0e8638e8070301081e00fff100c506")
    assert decode(0x2A9D, data) == Measurement(
        kind="weight",
        components=(
            Component(mdc.MDC_MASS_BODY_ACTUAL, 72.35, "kg"),
            Component(mdc.MDC_RATIO_MASS_BODY_LEN_SQ, 24.1, "kg/m2"),
            Component(mdc.MDC_LEN_BODY_ACTUAL, 1.733, "m"),
        ),
        time=datetime(2024, 3, 1, 8, 30, 0),
        flags=frozenset({"user_unknown"}),
    )


def test_weight_unsuccessful_is_nan():
    # Spec layout: imperial, weight 0xFFFF "Measurement Unsuccessful".
    assert decode(0x2A9D, bytes.fromhex("01ffff")) == Measurement(
        kind="weight",
        components=(Component(mdc.MDC_MASS_BODY_ACTUAL, None, "[lb_av]", special="NaN"),),
        flags=frozenset({"measurement_unsuccessful"}),
    )


def test_battery_and_device_information():
    # Nordic callback/battery/BatteryLevelDataCallbackTest uses 0x55 = 85 %.
    assert decode(0x2A19, b"\x55") == Measurement(
        kind="battery", components=(Component(mdc.MDC_ATTR_VAL_BATT_CHARGE, 85.0, "%"),)
    )
    assert decode(0x2A29, b"Omron\x00") == Measurement(
        kind="device_information", extra=(("manufacturer_name", "Omron"),)
    )
    # DIS 1.1 §3.1.2 System ID: 40-bit manufacturer id 0xFEABCDEF12 then OUI 0x123456 (LSO first).
    assert decode(0x2A23, bytes.fromhex("12efcdabfe563412")) == Measurement(
        kind="device_information", extra=(("system_id", "123456FEABCDEF12"),)
    )


def test_racp_requests_and_responses():
    # GLS 1.0 §3.9 (Record Access Control Point): op 0x01, operator 0x03, filter 0x01, uint16.
    assert racp.encode_report_records_from(0x0102) == bytes([0x01, 0x03, 0x01, 0x02, 0x01])
    assert racp.encode_report_all_records() == b"\x01\x01"
    assert racp.decode_racp_response(bytes([0x06, 0x00, 0x01, 0x01])) == racp.RacpResponse(
        0x06, request_op_code=0x01, response="success"
    )
    assert racp.decode_racp_response(bytes([0x06, 0x00, 0x01, 0x06])).response == "no_records_found"
    assert racp.decode_racp_response(bytes([0x05, 0x00, 0x2A, 0x00])) == racp.RacpResponse(
        0x05, number_of_records=42
    )
