"""Step 4 run headless after steps 1-3 on the bundled recording: the Quix pipeline's alerts are step 3's, and
an instance killed while its partitions still hold readings that decide alerts loses none of them.

This is step 4's only run as committed (nbmake leaves it to this test, see conftest.py)."""

import re
from pathlib import Path

import pandas as pd
import pytest

from tests.notebooks import execute_notebook, stream_text


def test_step4_after_steps_1_to_3_raises_the_alerts_of_step3(offline_chain):
    env, _ = offline_chain
    printed = stream_text(execute_notebook("step_4_stream_processor.ipynb", env, timeout_s=900))

    keys = ["boxId", "event", "timestamp"]
    output = Path(env["PM25_DATA_DIR"]) / "output"
    step3 = pd.read_csv(output / "alerts.csv", dtype=str).sort_values(keys, ignore_index=True)
    quix = pd.read_csv(output / "alerts_quix.csv", dtype=str).sort_values(keys, ignore_index=True)
    assert (step3.event == "exceeded").any()
    assert quix[keys].values.tolist() == step3[keys].values.tolist()
    assert quix["mean"].astype(float).tolist() == pytest.approx(step3["mean"].astype(float).tolist(), abs=1e-9)
    assert " 0 missing." in printed and ": restored the state of partition(s)" in printed
    # The kill came while the victim's partitions still held readings that decide alerts; the survivor raised them.
    left = re.search(r"(\d+) readings are left on (A|B)'s partitions", printed)
    raised = re.search(r"(A|B) raised (\d+) alerts from the (\d+) readings left by (A|B):", printed)
    assert left and raised, printed[-3000:]
    assert int(left[1]) == int(raised[3]) > 0 and int(raised[2]) > 0
    assert raised[1] != raised[4] == left[2]  # the survivor raised them, not the killed instance
    assert "<RecoveryPartition" not in printed and "httpx module is deprecated" not in printed
