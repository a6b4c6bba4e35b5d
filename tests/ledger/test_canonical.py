"""Canonical JSON: the fast encoder produces exactly the RFC 8785 reference bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from controlplane.kernel.canonical import MAX_SAFE_INTEGER, canonical_bytes, format_time
from controlplane.kernel.errors import ControlPlaneError

safe_ints = st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
scalars = st.none() | st.booleans() | safe_ints | st.text() | st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@given(json_values)
def test_matches_the_reference_implementation(value):
    assert canonical_bytes(value) == rfc8785.dumps(value)


@given(st.dictionaries(st.text(max_size=8), safe_ints, max_size=8))
def test_key_order_does_not_change_the_bytes(value):
    reordered = dict(reversed(list(value.items())))
    assert canonical_bytes(reordered) == canonical_bytes(value)


def test_rfc8785_key_order_is_by_utf16_code_units():
    # U+E000 sorts after U+1F600 in UTF-16 (surrogates 0xD83D...) but before it by code point.
    assert canonical_bytes({"\ue000": 1, "\U0001f600": 2}) == '{"\U0001f600":2,"\ue000":1}'.encode()


def test_rfc8785_published_number_and_string_example():
    value = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/",
        "literals": [None, True, False],
    }
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_bytes(value) == expected.encode()


@pytest.mark.parametrize("value", [2**53, -(2**53), {"a": object()}, {1: "x"}, "\ud800"])
def test_values_outside_json_are_refused_with_a_code(value):
    with pytest.raises(ControlPlaneError) as caught:
        canonical_bytes(value)
    assert caught.value.code == "LEDGER_NOT_CANONICAL"


@pytest.mark.parametrize("year", [1, 999, 1000, 1970, 2026, 9999])
@pytest.mark.parametrize("offset_minutes", [0, 120, -330])
@pytest.mark.parametrize("microsecond", [0, 1, 999999])
def test_format_time_is_utc_with_six_fraction_digits_and_z(year, offset_minutes, microsecond):
    zone = timezone(timedelta(minutes=offset_minutes))
    moment = datetime(year, 6, 15, 12, 30, 45, microsecond, tzinfo=zone)
    if year == 1 and offset_minutes > 0:
        moment = moment + timedelta(days=1)  # stay representable in UTC
    utc = moment.astimezone(UTC)
    expected = f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}Z"  # the form every stored event has
    assert format_time(moment) == expected
