"""The main job: drive a running stack over HTTP as a user would, and show where the time went."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra.local.demo_training import run_training_demo, training_images
from infra.local.stack import StackInfo

PROMPTS = (
    "a lighthouse on a cliff at dawn",
    "a bowl of ramen, studio lighting",
    "a red fox in fresh snow",
    "a neon city street in the rain",
    "a watercolor of a sailing boat",
)
TERMINAL = {"completed", "failed"}
STATUS_PROGRESS = {"queued": 1, "processing": 2, "completed": 3, "failed": 3}


def _submit(client: httpx.Client, index: int, model_id: str, trigger: str | None) -> tuple[dict[str, Any], float]:
    prompt = PROMPTS[index % len(PROMPTS)]
    body = {
        "modelId": model_id,
        "prompt": f"{prompt}, in the style of {trigger}" if trigger else prompt,
        "negativePrompt": "blurry",
        "width": 128,
        "height": 128,
        "numOutputs": 2,
        "numInferenceSteps": 10,
        "seed": 1000 + index,
    }
    submitted = time.perf_counter()
    response = client.post("/v1/images/generate", json=body)
    response.raise_for_status()
    return {**response.json(), "prompt": body["prompt"], "model": "trained" if trigger else "base"}, submitted


def _left_half_mask(size: int) -> bytes:
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, (0, 0, size // 2, size))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def _submit_inpainting(client: httpx.Client, model_id: str, trigger: str) -> tuple[dict[str, Any], float]:
    """Realm-style images modify with a mask: repaint the left half of a training-like picture, keep the right half."""
    fields = {"modelId": model_id, "prompt": f"a disc in the style of {trigger}", "seed": "7"}
    files = {
        "image": ("input.png", training_images(1)[0], "image/png"),
        "mask": ("mask.png", _left_half_mask(128), "image/png"),
    }
    submitted = time.perf_counter()
    response = client.post("/v1/images/modify", data=fields, files=files)
    response.raise_for_status()
    return {**response.json(), "prompt": "inpaint left half: " + fields["prompt"], "model": "trained"}, submitted


def _submit_prediction(client: httpx.Client, training: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """Custom-models prediction: the trained adapter at 0.7, at the custom-models API's smallest size."""
    body = {
        "scaleConfigs": {"1": {"modelId": training["modelId"], "trainingId": training["trainingId"], "scale": 0.7}},
        "prompt": f"{PROMPTS[1]}, in the style of {training['triggerWord']}",
        "image_size": {"width": 512, "height": 512},
        "num_inference_steps": 10,
        "seed": 5,
    }
    submitted = time.perf_counter()
    response = client.post("/v1/predictions", json=body)
    response.raise_for_status()
    accepted = response.json()
    # A prediction is a generation job: the Realm-style images job view shows it too.
    return {"jobId": accepted["predictionId"], "prompt": body["prompt"], "model": "trained x0.7"}, submitted


def run_demo(console: Console, info: StackInfo, output_dir: Path, count: int = 3, timeout_s: float = 300) -> int:
    """Train a model, then submit `count` generations with its adapter, one on the base model for comparison,
    an inpainting and a custom-models prediction with the adapter; wait for them with a progress display, save the
    images, print timings."""
    client = httpx.Client(base_url=info.api_url, headers={"Authorization": f"Bearer {info.api_key}"}, timeout=30.0)
    try:
        training = run_training_demo(console, client, output_dir)
    except (httpx.HTTPError, RuntimeError) as exc:
        console.print(f"[red]Training failed:[/red] {exc}")
        return 1
    console.rule(f"Generate with the trained adapter of {training['modelId']} (and the base model to compare)")
    jobs = [_submit(client, i, training["modelId"], training["triggerWord"]) for i in range(count)]
    jobs.append(_submit(client, 0, "tiny-sd", None))
    jobs.append(_submit_inpainting(client, training["modelId"], training["triggerWord"]))
    jobs.append(_submit_prediction(client, training))
    console.print(
        f"Submitted {len(jobs)} jobs ({count} with the adapter, 1 on the base model, 1 inpainting, 1 prediction "
        "at 512 px): " + ", ".join(job["jobId"] for job, _ in jobs)
    )
    views: dict[str, dict[str, Any]] = {}
    seen_done: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        tasks = {job["jobId"]: progress.add_task(job["prompt"][:36], total=3, status="queued") for job, _ in jobs}
        while len(seen_done) < len(jobs) and time.monotonic() < deadline:
            for job, _ in jobs:
                job_id = job["jobId"]
                if job_id in seen_done:
                    continue
                view = client.get(f"/v1/images/jobs/{job_id}").json()
                views[job_id] = view
                progress.update(tasks[job_id], completed=STATUS_PROGRESS.get(view["status"], 0), status=view["status"])
                if view["status"] in TERMINAL:
                    seen_done[job_id] = time.perf_counter()
            time.sleep(0.1)  # polling interval of a client, not a synchronisation

    output_dir.mkdir(parents=True, exist_ok=True)
    table = Table(title="Where the time went (ms)", title_justify="left")
    text_columns = ("job", "model", "status", "images")
    for column in (
        "job",
        "model",
        "status",
        "queued",
        "load",
        "adapter",
        "compute",
        "upload",
        "api total",
        "observed",
        "images",
    ):
        table.add_column(column, justify="left" if column in text_columns else "right")
    ok = True
    for job, submitted in jobs:
        job_id = job["jobId"]
        view = views.get(job_id, {"status": "timed out"})
        files: list[str] = []
        if view["status"] == "completed":
            for n, image in enumerate(view["images"]):
                path = output_dir / f"{job_id}-{n}.{image['format']}"
                path.write_bytes(httpx.get(image["url"], timeout=30.0).raise_for_status().content)
                files.append(path.name)
        else:
            ok = False
        timings = view.get("timings") or {}
        observed = (seen_done[job_id] - submitted) * 1000 if job_id in seen_done else None

        def fmt(value: float | None) -> str:
            return "-" if value is None else f"{value:,.0f}"

        table.add_row(
            job_id,
            job["model"],
            view["status"] + (f" ({view['error']['code']})" if view.get("error") else ""),
            fmt(timings.get("queueMs")),
            fmt(timings.get("loadMs")),
            fmt(timings.get("adapterLoadMs", 0) + timings.get("adapterSwitchMs", 0) if timings else None),
            fmt(timings.get("computeMs")),
            fmt(timings.get("uploadMs")),
            fmt(timings.get("totalMs")),
            fmt(observed),
            f"{len(files)} saved",
        )
    console.print(table)
    if info.timings_ms:
        console.print("Stack start-up: " + ", ".join(f"{k} {v / 1000:.1f}s" for k, v in info.timings_ms.items()))
    console.print(f"Images saved in [bold]{output_dir.resolve()}[/bold]")
    return 0 if ok else 1
