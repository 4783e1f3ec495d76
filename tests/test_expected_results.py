"""TEACHERS.md's expected results are what the notebooks print on the bundled recording, offline (issue 13).

The table of alerts in its section "Expected results on the default data" is read from the guide itself, so the
guide and the tutorial cannot drift apart: each row's rule is run with `Detector` (or the naive "last 3 rows"),
and a headless offline run of steps 1-3 must print the same counts.
"""

import re
from pathlib import Path

import pandas as pd
import pytest

from pm25.data.readings import load_readings, recording_readings
from pm25.rules.detector import Detector, naive_last_rows_alerts

TEACHERS = Path(__file__).resolve().parents[1] / "TEACHERS.md"
SECTION = "## Expected results on the default data"
ROW = re.compile(r"^\| (?P<rule>[^|]+) \| (?P<alerts>[\d,]+) \|", re.MULTILINE)
SETTING = re.compile(r"`(?P<name>threshold|window_hours|min_hours) = (?P<value>[\d.]+)`")
NAIVE = '"last 3 rows"'


def expected_section() -> str:
    text = TEACHERS.read_text(encoding="utf-8")
    assert SECTION in text, f"TEACHERS.md has no section {SECTION!r}"
    return text.split(SECTION, 1)[1].split("\n## ", 1)[0]


def expected_alerts() -> list[tuple[str, dict, int]]:
    """(rule as written, Detector settings, alert count) for each row of the guide's table."""
    rows = [
        (
            row["rule"],
            {m["name"]: float(m["value"]) for m in SETTING.finditer(row["rule"])},
            int(row["alerts"].replace(",", "")),
        )
        for row in ROW.finditer(expected_section())
    ]
    assert len(rows) >= 5, f"the table of expected alerts in TEACHERS.md has only {len(rows)} rows"
    return rows


def expected_daily() -> tuple[int, int, int]:
    found = re.search(r"(\d+) valid days of (\d+) boxes, (\d+) of them above 15", expected_section())
    assert found, "TEACHERS.md no longer says how many valid days the daily table has"
    return tuple(int(number) for number in found.groups())


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """The bundled recording as step 3 reads it: Readings, in time order."""
    path = tmp_path_factory.mktemp("recording") / "pm25_readings.csv"
    recording_readings().to_csv(path, index=False)
    return sorted(load_readings(path).readings, key=lambda reading: reading.timestamp)


@pytest.mark.parametrize(("rule", "settings", "count"), [pytest.param(*row, id=row[0]) for row in expected_alerts()])
def test_each_rule_in_the_teachers_table_gives_its_alert_count_on_the_recording(recorded, rule, settings, count):
    if NAIVE in rule:
        alerts = naive_last_rows_alerts(recorded, threshold=settings["threshold"], rows=3)
    else:
        detector = Detector(**settings)
        alerts = [alert for reading in recorded if (alert := detector.process(reading))]
    assert len(alerts) == count


@pytest.fixture
def offline_run(offline_chain):
    """Steps 1-3 headless with OSEM_OFFLINE=1 and the default settings (conftest's shared chain)."""
    env, printed = offline_chain
    return printed, Path(env["PM25_DATA_DIR"]) / "output"


def printed_count(printed: str, label: str) -> int:
    found = re.search(rf"^{re.escape(label)}: (\d+) alerts\.$", printed, re.MULTILINE)
    assert found, f"step 3 did not print {label!r}"
    return int(found[1])


def test_offline_step_3_prints_the_alerts_and_the_naive_count_of_the_teachers_table(offline_run):
    printed, _ = offline_run
    table = {rule: count for rule, _, count in expected_alerts()}
    as_given = next(count for rule, count in table.items() if rule.startswith("as given"))
    naive = next(count for rule, count in table.items() if NAIVE in rule)
    event_time = printed_count(printed, "Event-time rule (24-hour mean)")
    assert event_time == as_given
    assert printed_count(printed, "'Last 3 rows'") == naive != event_time
    assert re.search(r"^\w{3} \d\d \w{3} \d\d:\d\d  EXCEEDED  ", printed, re.MULTILINE)


def test_offline_step_3_writes_the_daily_table_of_the_teachers_guide(offline_run):
    _, output = offline_run
    daily = pd.read_csv(output / "daily_means.csv")
    valid_days, boxes, above_who = expected_daily()
    assert (len(daily), daily["boxId"].nunique(), int(daily["above_who"].sum())) == (valid_days, boxes, above_who)


def test_offline_step_3_alerts_are_stamped_with_the_full_hour_that_ends_their_window(offline_run):
    _, output = offline_run
    alerts = pd.read_csv(output / "alerts.csv", dtype={"timestamp": str})
    assert len(alerts) == next(count for rule, _, count in expected_alerts() if rule.startswith("as given"))
    assert alerts["timestamp"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00:00Z").all(), alerts["timestamp"].tolist()


def test_offline_step_3_reviews_its_alerts_as_the_teachers_guide_says(offline_run):
    _, output = offline_run
    reviewed = pd.read_csv(output / "alert_review.csv")
    implausible = set(reviewed.loc[reviewed["plausible"] == False, "boxName"])  # noqa: E712 (read from CSV)
    assert implausible == {"Berliner Allee", "airRohr-4889588"}
    for name in implausible | set(reviewed["boxName"]):
        assert name in expected_section()
