"""Whatever lands on the readings topic: step 3's pipeline (decode, detector, status) never crashes and
accounts for every message: processed, duplicate, late or rejected with a reason."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pm25.data import contract
from pm25.rules.detector import Detector
from pm25.rules.status import StatusTracker
from pm25.streaming import codec, commits, outputs

pytestmark = pytest.mark.faults

IDS = st.sampled_from(["a" * 24, "B" * 24, "0123456789abcdef01234567"]) | st.text(max_size=30)
NUMBERS = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.sampled_from([0, 15, 15.000000001, 999.9, 999.8999, -0.0, 1e-320, 1e308])
)
ANY_JSON = st.recursive(
    st.none() | st.booleans() | NUMBERS | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
TIMESTAMPS = (
    st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2024, 1, 8)).map(
        lambda moment: moment.replace(microsecond=0).isoformat() + "Z"
    )
    | st.sampled_from(["2024-02-30T00:00:00Z", "2024-01-15T25:00:00Z", "2024-01-15T00:00:00+01:00", "NaN", ""])
    | st.text(max_size=25)
)
FIELD_VALUES = {
    "boxId": IDS,
    "boxName": st.text(max_size=30),
    "sensorId": IDS,
    "lat": NUMBERS | ANY_JSON,
    "lon": NUMBERS | ANY_JSON,
    "timestamp": TIMESTAMPS,
    "value": NUMBERS | st.sampled_from(["12", "NaN", "Infinity"]),
    "unit": st.sampled_from([contract.UNIT, "ug/m3", ""]),
    "phenomenon": st.sampled_from([contract.PHENOMENON, "PM10"]),
}


def _plausible(values: dict) -> bytes:
    """Mostly valid messages, so that many get through to the detector, with hostile fields mixed in."""
    good = {
        "boxId": "a" * 24,
        "boxName": "Münster ☃ \u202e",
        "sensorId": "b" * 24,
        "lat": 51.96,
        "lon": 7.62,
        "timestamp": "2024-01-15T00:00:00Z",
        "value": 20.0,
        "unit": contract.UNIT,
        "phenomenon": contract.PHENOMENON,
    }
    good.update(values)
    return json.dumps(good, ensure_ascii=False, allow_nan=True, default=str).encode("utf-8", "surrogatepass")


RAW = st.one_of(
    st.binary(max_size=200),
    ANY_JSON.map(lambda value: json.dumps(value, allow_nan=True).encode()),
    st.fixed_dictionaries({}, optional=FIELD_VALUES).map(_plausible),
    st.sampled_from([b"", b"null", b"{}", b"[]", b'{"value": NaN}', b"\xff\xfe", b"[" * 5000, b"1" * 5000]),
)


@settings(max_examples=300, deadline=None)
@given(messages=st.lists(RAW, max_size=40))
def test_every_message_is_processed_or_rejected_with_a_reason_and_nothing_raises(messages, figures):
    figures.hostile_inputs += len(messages)
    detector, status, rejected, alerts = Detector(), StatusTracker(), codec.Rejected(), []
    for offset, raw in enumerate(messages):
        record = SimpleNamespace(topic="pm25_stream", partition=0, offset=offset, value=raw)
        try:
            reading = contract.decode(raw)
        except contract.InvalidMessage as bad:
            assert bad.reason and isinstance(bad.reason, str)
            rejected.add(record, bad.reason)
            continue
        alert = detector.process(reading)
        status.update(reading)
        if alert:
            alerts.append(alert)
            assert math.isfinite(alert.mean)
    counts = detector.counts
    assert counts["invalid"] == 0, "decode lets no invalid value through"
    assert counts["processed"] + counts["duplicates"] + counts["late"] + len(rejected.rows) == len(messages)
    assert all(row["reason"] for row in rejected.rows)
    table = status.table([], detector)
    assert len(table) == len(detector.box_ids())


@settings(max_examples=200, deadline=None)
@given(
    readings=st.lists(
        st.tuples(
            st.sampled_from(["a" * 24, "b" * 24]),
            st.integers(0, 200),
            st.floats(allow_nan=True, allow_infinity=True) | st.none() | st.text(max_size=3) | st.integers(-5, 10**30),
        ),
        max_size=60,
    )
)
def test_the_detector_counts_every_reading_whatever_its_value(readings, figures):
    """Duck-typed readings, as a learner's own code might pass them: values of any type."""
    figures.hostile_inputs += len(readings)
    detector = Detector(threshold=15, window_hours=3, min_hours=2)
    start = datetime(2024, 1, 15, tzinfo=UTC)
    for box_id, hour, value in readings:
        moment = start + timedelta(minutes=30 * hour)
        detector.process(SimpleNamespace(box_id=box_id, box_name="Bx", timestamp=moment, value=value))
    assert sum(detector.counts.values()) == len(readings)
    for box_id in detector.box_ids():
        mean, n = detector.provisional(box_id)
        assert n >= 1 and math.isfinite(mean)


@settings(max_examples=100, deadline=None)
@given(names=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=5))
def test_hostile_box_names_survive_the_alert_csv(names, figures, tmp_path_factory):
    figures.hostile_inputs += len(names)
    detector, alerts = Detector(min_hours=1), []
    start = datetime(2024, 1, 15, tzinfo=UTC)
    for number, name in enumerate(names):
        for moment in (start, start + timedelta(hours=1)):  # the second reading closes the first hour: an alert
            reading = contract.Reading(f"{number:024x}", name, "b" * 24, 51.9, 7.6, moment, 50.0)
            alerts += filter(None, [detector.process(contract.decode(contract.encode(reading)))])
    out = tmp_path_factory.mktemp("alerts")
    outputs.write_outputs(out, alerts, codec.Rejected(), pd.DataFrame(), commits.Share((0,), 1, frozenset()))
    back = pd.read_csv(out / "alerts.csv", dtype=str, keep_default_na=False)
    assert back["boxName"].tolist() == names
