"""Kafka topic names: part of the public contract for direct producers and consumers."""

from typing import Final

GENERATION_REQUESTS: Final = "lorafoundry.generation.requests"
TRAINING_REQUESTS: Final = "lorafoundry.training.requests"
JOB_LIFECYCLE: Final = "lorafoundry.jobs.lifecycle"
DEAD_LETTERS: Final = "lorafoundry.dlq"

ALL_TOPICS: Final = (GENERATION_REQUESTS, TRAINING_REQUESTS, JOB_LIFECYCLE, DEAD_LETTERS)
