"""The S3 key layout shared by workers (who write) and the notification handler (who reads). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote_plus


class Marker(StrEnum):
    """Objects whose creation changes a job's status."""

    RESULT = "result.json"
    FAILED = "failed.json"
    CANCELED = "canceled.json"
    PROGRESS = "progress.json"


_JOB_MARKER = re.compile(r"^jobs/(?P<job_id>[A-Za-z0-9_-]{1,64})/(?P<marker>[a-z]+\.json)$")


def job_prefix(job_id: str) -> str:
    """Everything a generation job writes lives under this prefix."""
    return f"jobs/{job_id}/"


def job_output_key(job_id: str, index: int, extension: str) -> str:
    """Key of the `index`-th output image; deterministic so a rerun overwrites, never duplicates."""
    return f"{job_prefix(job_id)}outputs/{index}.{extension}"


def job_marker_key(job_id: str, marker: Marker) -> str:
    """Key of one of a job's status markers."""
    return f"{job_prefix(job_id)}{marker.value}"


@dataclass(frozen=True)
class JobMarkerRef:
    """A parsed marker key."""

    job_id: str
    marker: Marker


def parse_notification_key(raw_key: str) -> JobMarkerRef | None:
    """Parse a key as it arrives in an S3 notification (URL-encoded, '+' for space); None if not a marker."""
    match = _JOB_MARKER.match(unquote_plus(raw_key))
    if not match:
        return None
    try:
        marker = Marker(match["marker"])
    except ValueError:
        return None
    return JobMarkerRef(job_id=match["job_id"], marker=marker)
