"""GB 11643 resident identity numbers: check digit, embedded birth date, length."""

from datetime import date

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from clinic.identity import InvalidResidentId, check_character, parse_resident_id
from clinic.models import validate_resident_id


@pytest.mark.parametrize(
    "number, birth, sex",
    [
        ("440106195803120021", date(1958, 3, 12), "female"),  # 陈美玲, the README's patient
        ("440304196207150032", date(1962, 7, 15), "male"),  # 李建国
        ("11010519491231002X", date(1949, 12, 31), "female"),  # GB 11643 annex example, X check
        ("11010519491231002x", date(1949, 12, 31), "female"),  # lower-case x is accepted
    ],
)
def test_valid_numbers_parse_with_birth_date_and_sex(number, birth, sex):
    parsed = parse_resident_id(number)
    assert (parsed.birth_date, parsed.sex, parsed.number) == (birth, sex, number.upper())


@pytest.mark.parametrize(
    "number, reason",
    [
        ("440106195803120022", "check digit is 2, expected 1"),
        ("11010519491231002Y", "17 digits followed by a digit or X"),
        ("44010619580312002", "18 characters, got 17"),
        ("4401061958031200211", "18 characters, got 19"),
        ("", "18 characters, got 0"),
        ("440106195802300021", "not a real date"),  # 30 February
        ("440106195813120021", "not a real date"),  # month 13
        ("440106185003120021", "out of range"),  # 1850
        ("440106209903120021", "out of range"),  # in the future
    ],
)
def test_invalid_numbers_are_refused_with_the_reason(number, reason):
    with pytest.raises(InvalidResidentId, match=reason):
        parse_resident_id(number, today=date(2026, 11, 25))


def test_django_validator_gives_a_clear_message():
    with pytest.raises(ValidationError, match="check digit"):
        validate_resident_id("440106195803120022")


@given(st.text(max_size=30))
def test_any_text_parses_or_raises_invalid_resident_id(text):
    try:
        parsed = parse_resident_id(text)
    except InvalidResidentId as exc:
        assert str(exc)
    else:
        assert len(parsed.number) == 18


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2020, 12, 31)), st.integers(0, 999))
def test_computed_check_character_always_validates(birth, seq):
    first17 = f"440106{birth:%Y%m%d}{seq:03d}"
    assert parse_resident_id(first17 + check_character(first17)).birth_date == birth
