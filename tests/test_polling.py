"""pm25.polling.wait_until: the one wait helper of the package, the notebooks and the tests."""

from __future__ import annotations

import pytest

from pm25.errors import LearnerError
from pm25.polling import WaitedInVain, wait_until


def test_it_returns_the_conditions_value_as_soon_as_it_is_true(polling_clock):
    answers = iter([None, [], {0: 1}])
    assert wait_until(lambda: next(answers), 60, "the partitions") == {0: 1}
    assert len(polling_clock.pauses) == 2


def test_its_pause_doubles_up_to_every_s_and_a_condition_that_waits_by_itself_gets_none(polling_clock):
    start = polling_clock.now
    wait_until(lambda: polling_clock.now - start > 10, 60, "ten seconds", every_s=0.5)
    assert polling_clock.pauses[:5] == [0.02, 0.04, 0.08, 0.16, 0.32] and max(polling_clock.pauses) == 0.5
    polling_clock.pauses.clear()
    looks = iter(range(5))
    wait_until(lambda: next(looks) == 4, 60, "the fifth look", every_s=0)
    assert polling_clock.pauses == [0, 0, 0, 0]


def test_a_short_wait_prints_nothing_and_a_vain_one_ends_its_line_before_the_error(polling_clock, capsys):
    start = polling_clock.now
    wait_until(lambda: polling_clock.now - start > 0.5, 60, "a short wait")
    assert capsys.readouterr().out == ""
    with pytest.raises(WaitedInVain, match=r"^Waited 5 s for the members, in vain \(none yet\)\.$") as vain:
        wait_until(lambda: False, 5, "the members", state=lambda: "none yet")
    assert isinstance(vain.value, LearnerError) and isinstance(vain.value, TimeoutError)
    printed = capsys.readouterr().out
    assert printed.startswith("\rWaiting for the members: 1 s (none yet)")
    assert printed.endswith("\n") and printed.count("\n") == 1


@pytest.mark.parametrize("error", [RuntimeError("the broker exited"), KeyboardInterrupt()])
def test_an_error_in_the_condition_or_an_interrupt_ends_the_progress_line_and_is_raised(polling_clock, capsys, error):
    start = polling_clock.now

    def condition() -> bool:
        if polling_clock.now - start > 3:
            raise error
        return False

    with pytest.raises(type(error)):
        wait_until(condition, 60, "the broker")
    printed = capsys.readouterr().out
    assert printed.startswith("\rWaiting for the broker: 1 s") and printed.endswith("\n") and printed.count("\n") == 1
