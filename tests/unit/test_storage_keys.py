"""The S3 key layout and how notification keys are parsed."""

from __future__ import annotations

import pytest

from events.storage_keys import Marker, job_marker_key, job_output_key, parse_notification_key


def test_keys_round_trip() -> None:
    key = job_marker_key("job_abc", Marker.RESULT)
    assert key == "jobs/job_abc/result.json"
    ref = parse_notification_key(key)
    assert ref is not None and ref.job_id == "job_abc" and ref.marker is Marker.RESULT
    assert job_output_key("job_abc", 2, "png") == "jobs/job_abc/outputs/2.png"


@pytest.mark.parametrize("raw", ["jobs%2Fjob_abc%2Ffailed.json", "jobs/job_abc/failed.json"])
def test_url_encoded_keys_are_decoded(raw: str) -> None:
    ref = parse_notification_key(raw)
    assert ref is not None and ref.marker is Marker.FAILED


@pytest.mark.parametrize(
    "raw",
    [
        "jobs/job_abc/outputs/0.png",
        "jobs/job_abc/other.json",
        "models/m/data/x",
        "jobs/../result.json",
        "jobs/a+b/result.json",
        "jobs/job_abc/result.json/x",
        "",
    ],
)
def test_other_keys_are_not_markers(raw: str) -> None:
    assert parse_notification_key(raw) is None
