"""openSenseMap misbehaving: busy (503/429), slow, malformed or cut-off answers, in sequences."""

from __future__ import annotations

import pytest

from conftest import REPLAY_KEY
from pm25.config import RESOLUTIONS, Settings
from pm25.data import dataset
from pm25.data.geo import Aoi
from pm25.data.opensensemap import ApiUnavailable, OpenSenseMapClient, OpenSenseMapError
from tests.osem_replay import Fault

pytestmark = pytest.mark.faults

BOXES, STATS, DATA = "/boxes", "/statistics/descriptive", "/boxes/data"
# A small area (two boxes) and the recording's days: every raw request stays quick under faults.
AREA = Aoi.from_bbox((13.43, 52.54, 13.47, 52.56), "test area")
# (faults in the order they hit, whether the download must still succeed)
SEQUENCES = {
    "two 503": ([Fault("status", 503, path_prefix=BOXES)] * 2, True),
    "429, 503, 429": ([Fault("status", s, path_prefix=BOXES) for s in (429, 503, 429)], True),
    "slow twice": ([Fault("slow", delay_s=1.5, path_prefix=BOXES)] * 2, True),
    "503 on statistics": ([Fault("status", 503, path_prefix=STATS)] * 3, True),
    "503 on raw data": ([Fault("status", 503, path_prefix=DATA)] * 3, True),
    "503 four times": ([Fault("status", 503, path_prefix=BOXES)] * 4, False),
    "slow four times": ([Fault("slow", delay_s=1.5, path_prefix=BOXES)] * 4, False),
    "malformed boxes": ([Fault("malformed", path_prefix=BOXES)], False),
    "truncated boxes": ([Fault("truncated", path_prefix=BOXES)], False),
    "malformed statistics": ([Fault("malformed", path_prefix=STATS)], False),
    "truncated statistics": ([Fault("truncated", path_prefix=STATS)], False),
    "malformed raw data": ([Fault("malformed", path_prefix=DATA)], False),
    "truncated raw data": ([Fault("truncated", path_prefix=DATA)], False),
    "500 then malformed": ([Fault("status", 500, path_prefix=BOXES), Fault("malformed", path_prefix=BOXES)], False),
}
PREVIOUS_READINGS = "boxId,boxName,sensorId,lat,lon,timestamp,value\n"
PREVIOUS_BOXES = '{"type": "FeatureCollection", "features": []}'


def _client(replay_api, tmp_path) -> OpenSenseMapClient:
    return OpenSenseMapClient(
        replay_api.url, cache_dir=tmp_path / "cache", timeout_s=(1.0, 0.5), max_attempts=4, backoff_s=0.01
    )


@pytest.fixture(scope="module")
def clean_downloads(request) -> dict[str, dataset.Pm25Data]:
    """What a fault-free download gives, per resolution."""
    replay = request.config.stash[REPLAY_KEY]
    replay.clear_faults()
    settings = Settings(api_url=replay.url)
    client = OpenSenseMapClient(replay.url, timeout_s=(1.0, 5.0))
    return {
        resolution: dataset.download(client, AREA, settings.start, settings.end, resolution)
        for resolution in RESOLUTIONS
    }


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_api_faults_end_in_the_same_data_or_a_clear_failure_and_leave_saved_files_alone(
    name, replay_api, tmp_path, clean_downloads, figures, capsys
):
    faults, recovers = SEQUENCES[name]
    resolution = "1h" if any(fault.path_prefix == STATS for fault in faults) else "raw"  # 1h asks /statistics
    clean_download = clean_downloads[resolution]
    (tmp_path / dataset.READINGS_FILE).write_text(PREVIOUS_READINGS, encoding="utf-8")
    (tmp_path / dataset.BOXES_FILE).write_text(PREVIOUS_BOXES, encoding="utf-8")
    settings = Settings(api_url=replay_api.url, data_dir=tmp_path, resolution=resolution)
    aoi = AREA
    replay_api.inject(*faults)
    figures.faults_injected += len(faults)

    client = _client(replay_api, tmp_path)
    if recovers:
        data = dataset.download(client, aoi, settings.start, settings.end, resolution)
        assert data.readings.equals(clean_download.readings)
        assert data.boxes == clean_download.boxes
    else:
        with pytest.raises(OpenSenseMapError) as failure:
            data = dataset.download(client, aoi, settings.start, settings.end, resolution)
            pytest.fail(f"{len(data.readings)} readings from a faulty API (clean: {len(clean_download.readings)})")
        assert isinstance(failure.value, ApiUnavailable)
        assert "Run the cell again" in str(failure.value) or "OSEM_OFFLINE=1" in str(failure.value)
        # Nothing broken is kept in the cache: the next run asks again and gets the real answer.
        replay_api.clear_faults()
        again = dataset.download(_client(replay_api, tmp_path), aoi, settings.start, settings.end, resolution)
        assert again.readings.equals(clean_download.readings)
        # As step 1 runs it: the bundled recording, said so, when the API keeps failing.
        replay_api.inject(*faults)
        fallback = dataset.get_pm25(settings, aoi, client=_client(replay_api, tmp_path / "fresh"))
        assert "bundled recording" in fallback.source and "Falling back" in capsys.readouterr().out
    assert (tmp_path / dataset.READINGS_FILE).read_text(encoding="utf-8") == PREVIOUS_READINGS
    assert (tmp_path / dataset.BOXES_FILE).read_text(encoding="utf-8") == PREVIOUS_BOXES
