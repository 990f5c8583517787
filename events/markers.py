"""The JSON bodies of status markers written to S3 by workers and read by the notification handler."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from events.generation import AdapterRef
from events.lifecycle import JobError


class StageTimings(BaseModel):
    """Milliseconds spent in each stage of a job on the worker."""

    model_config = ConfigDict(extra="allow")

    loadMs: float = Field(ge=0, description="Fetching and loading the pipeline (0 when cached).")
    computeMs: float = Field(ge=0, description="Running the diffusion pipeline.")
    uploadMs: float = Field(ge=0, description="Encoding and writing the outputs to S3.")


class OutputParameters(BaseModel):
    """How one output image was made, as its file says it."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(
        ge=0, description="This output's own seed: the request's seed plus the output's index, modulo 2^32."
    )
    parameters: str = Field(
        description="The AUTOMATIC1111 `parameters` text the file carries (PNG text chunk, JPEG EXIF UserComment)."
    )


class GenerationRun(BaseModel):
    """How a generation ran: its result.json less the job id and outputs (what the job record keeps as
    `result`)."""

    model_config = ConfigDict(extra="forbid")

    mode: str = Field(default="text-to-image", description="text-to-image, image-to-image or inpainting.")
    strength: float | None = Field(default=None, description="image-to-image and inpainting: the strength used.")
    width: int
    height: int
    seed: int
    numInferenceSteps: int
    guidanceScale: float
    baseModel: str
    outputFormat: str
    adapters: list[AdapterRef] = Field(default_factory=list, description="The adapters applied, with scales.")
    sampler: str | None = Field(default=None, description="AUTOMATIC1111's name of the scheduler that ran.")
    outputParameters: list[OutputParameters] = Field(
        default_factory=list, description="Per output, in the order of `outputs`: its seed and embedded parameters."
    )
    workerId: str
    attempt: int = Field(ge=1)
    startedAt: AwareDatetime
    completedAt: AwareDatetime
    timings: StageTimings


class GenerationResult(GenerationRun):
    """`jobs/{jobId}/result.json`: written last, after every output exists."""

    jobId: str
    outputs: list[str] = Field(min_length=1)


class JobFailure(BaseModel):
    """`jobs/{jobId}/failed.json`: the job ended without outputs, and why."""

    model_config = ConfigDict(extra="forbid")

    jobId: str
    error: JobError
    workerId: str
    attempt: int = Field(ge=1)
    failedAt: AwareDatetime


class JobCanceled(BaseModel):
    """`jobs/{jobId}/canceled.json`: the worker stopped the job between two denoising steps on request, and
    wrote no outputs."""

    model_config = ConfigDict(extra="forbid")

    jobId: str
    step: int = Field(ge=0, description="Denoising steps done when the run stopped.")
    workerId: str
    canceledAt: AwareDatetime
