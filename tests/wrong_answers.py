"""Wrong answers a learner plausibly writes for the window task: each is the solution with one mistake.

Written as edits of data/solutions.py, so the tests hold no second copy of the solution and every
wrong answer differs from it in the one place its name says. `detector_class(source)` runs one as a
notebook cell would and returns its WindowDetector.
"""

from __future__ import annotations

from pm25.learning import tasks

SOLUTION = tasks.solution("window_detector")


def _edit(source: str, old: str, new: str) -> str:
    assert old in source, f"the window solution no longer holds {old!r}: update tests/wrong_answers.py"
    return source.replace(old, new)


def detector_class(source: str) -> type:
    namespace: dict = {}
    exec(compile(source, "<wrong answer>", "exec"), namespace)
    return namespace["WindowDetector"]


_PROCESS_START = SOLUTION.index("        hour = reading.timestamp")
_PROCESS_END = SOLUTION.index("        return event\n") + len("        return event\n")
_DECIDE_START = SOLUTION.index("        for old in")
_DECIDE_END = SOLUTION.index("\n", SOLUTION.index("        mean = fmean")) + 1

# The classic mistake: the mean of a box's last 3 readings instead of its 24-hour window.
LAST_THREE_ROWS = _edit(
    _edit(
        SOLUTION[:_PROCESS_START]
        + "        rows = self.rows[reading.box_id]\n        rows.append(reading.value)\n"
        + "        return self.decide(reading.box_id, rows, None)\n"
        + SOLUTION[_PROCESS_END:_DECIDE_START]
        + "        mean = fmean(buckets)\n"
        + SOLUTION[_DECIDE_END:],
        "from collections import defaultdict\n",
        "from collections import defaultdict, deque\n",
    ),
    "self.hours = defaultdict(dict)  # box_id -> {clock hour: (sum, count) of its values}",
    "self.rows = defaultdict(lambda: deque(maxlen=3))  # box_id -> its last 3 values",
)

# The rule before issue 24: a decision at every reading, on a window that includes the reading's own, open hour.
DECIDES_INSIDE_THE_HOUR = _edit(
    _edit(
        SOLUTION,
        "        event = None\n        if buckets and hour > max(buckets):",
        "        if False:",
    ),
    "        return event\n",
    "        return self.decide(reading.box_id, buckets, hour + timedelta(hours=1))\n",
)

# A decision at every reading, before it is added: right with one reading per hour, but a second reading of an
# hour sees that hour, still open, in the window.
DECIDES_AT_EVERY_READING = _edit(SOLUTION, "if buckets and hour > max(buckets):", "if buckets:")

# Raises "exceeded" but forgets the way back: never "resolved".
NEVER_RESOLVES = _edit(
    SOLUTION,
    "        if mean <= self.threshold and box_id in self.exceeded:\n"
    '            self.exceeded.discard(box_id)\n            return "resolved"\n',
    "",
)

# `>=` and `<` at the threshold: a mean of exactly 15.00 counts as exceeded.
EXCEEDED_AT_THRESHOLD = _edit(
    _edit(SOLUTION, "if mean > self.threshold", "if mean >= self.threshold"),
    "if mean <= self.threshold",
    "if mean < self.threshold",
)

# Coverage counted in readings, not in hours with data.
COUNTS_READINGS = _edit(
    SOLUTION, "if len(buckets) < self.min_hours", "if sum(count for _, count in buckets.values()) < self.min_hours"
)

# The timestamp itself as the hour: every reading has an "hour" of its own.
HOUR_NOT_TRUNCATED = _edit(
    SOLUTION, "hour = reading.timestamp.replace(minute=0, second=0, microsecond=0)", "hour = reading.timestamp"
)

# The mean of every value in the window, not the mean of the hourly means: real data often hides it.
MEAN_OF_ALL_VALUES = _edit(
    SOLUTION,
    "mean = fmean(total / count for total, count in buckets.values())",
    "mean = sum(total for total, _ in buckets.values()) / sum(count for _, count in buckets.values())",
)

# The mean of the last closed hour only: no mistake with a hint of its own, so the first difference is named.
LATEST_HOUR_ONLY = _edit(
    SOLUTION,
    "mean = fmean(total / count for total, count in buckets.values())",
    "mean = buckets[max(buckets)][0] / buckets[max(buckets)][1]",
)

# `<` instead of `<=` on the way back: a mean back at exactly 15.00 does not resolve.
RESOLVED_ONLY_BELOW = _edit(SOLUTION, "if mean <= self.threshold", "if mean < self.threshold")

# An hour leaves the window one hour late: 25 hours count.
WINDOW_OF_25_HOURS = _edit(SOLUTION, "timedelta(hours=self.window_hours)", "timedelta(hours=self.window_hours + 1)")
