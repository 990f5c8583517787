"""The main job: drive a running stack over HTTP as a user would, and show where the time went."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra.local.contact_sheet import SheetRow, contact_sheet
from infra.local.demo_training import BASE_MODEL, SIDE, run_training_demo, training_images
from infra.local.stack import StackInfo
from infra.shapes_dataset import CLASS_WORD

# The contact sheet's rows: a prompt each, in the training captions' form with another colour and background.
ROWS = (("red", "white"), ("blue", "black"), ("yellow", "grey"), ("green", "black"), ("purple", "white"))
OUTPUTS = 2  # per job: seeds s and s + 1
TERMINAL = {"completed", "failed"}
STATUS_PROGRESS = {"queued": 1, "processing": 2, "completed": 3, "failed": 3}


@dataclass(frozen=True)
class SheetJob:
    """One generation the contact sheet shows: its row and column group, and its job once submitted."""

    row: int
    group: str  # BASE, ADAPTER or NO_TRIGGER


BASE, ADAPTER, NO_TRIGGER = "base model", "adapter", "adapter, no trigger"
GROUPS = (BASE, ADAPTER, NO_TRIGGER)


def row_prompt(row: int, word: str) -> str:
    """The prompt of a row, `word` where the shape word goes."""
    colour, background = ROWS[row % len(ROWS)]
    return f"a {colour} {word} on a {background} background"


def _submit(client: httpx.Client, row: int, group: str, model_id: str, trigger: str) -> tuple[dict[str, Any], float]:
    """One contact-sheet job: the base model or the trained one, with the trigger word or the class word in its place;
    every group of a row shares the row's seed."""
    prompt = row_prompt(row, CLASS_WORD if group == NO_TRIGGER else trigger)
    body = {
        "modelId": BASE_MODEL if group == BASE else model_id,
        "prompt": prompt,
        "width": SIDE,
        "height": SIDE,
        "numOutputs": OUTPUTS,
        "numInferenceSteps": 20,
        "seed": 1000 + 10 * row,
    }
    submitted = time.perf_counter()
    response = client.post("/v1/images/generate", json=body)
    response.raise_for_status()
    model = {BASE: "base", ADAPTER: "trained", NO_TRIGGER: "trained, no trigger"}[group]
    return {**response.json(), "prompt": prompt, "model": model, "sheet": SheetJob(row, group)}, submitted


def _left_half_mask(size: int) -> bytes:
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, (0, 0, size // 2, size))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def _submit_inpainting(client: httpx.Client, model_id: str, trigger: str) -> tuple[dict[str, Any], float]:
    """Realm-style images modify with a mask: repaint the left half of a training picture, keep the right half."""
    fields = {"modelId": model_id, "prompt": row_prompt(0, trigger), "seed": "7"}
    files = {
        "image": ("input.png", training_images(1)[0], "image/png"),
        "mask": ("mask.png", _left_half_mask(SIDE), "image/png"),
    }
    submitted = time.perf_counter()
    response = client.post("/v1/images/modify", data=fields, files=files)
    response.raise_for_status()
    return {**response.json(), "prompt": "inpaint left half: " + fields["prompt"], "model": "trained"}, submitted


def _submit_prediction(client: httpx.Client, training: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """Custom-models prediction: the trained adapter at 0.7, at the custom-models API's smallest size."""
    body = {
        "scaleConfigs": {"1": {"modelId": training["modelId"], "trainingId": training["trainingId"], "scale": 0.7}},
        "prompt": row_prompt(1, training["triggerWord"]),
        "image_size": {"width": 512, "height": 512},
        "num_inference_steps": 4,  # 512 px is the custom-models API's smallest size: few steps keep the demo short
        "seed": 5,
    }
    submitted = time.perf_counter()
    response = client.post("/v1/predictions", json=body)
    response.raise_for_status()
    accepted = response.json()
    # A prediction is a generation job: the Realm-style images job view shows it too.
    return {"jobId": accepted["predictionId"], "prompt": body["prompt"], "model": "trained x0.7"}, submitted


def run_demo(console: Console, info: StackInfo, output_dir: Path, count: int = 3, timeout_s: float = 300) -> int:
    """Train a model on tiny-shapes, then generate `count` prompts three ways (the base model, the adapter, the
    adapter without its trigger word; same seeds), an inpainting and a custom-models prediction with the adapter;
    wait for them with a progress display, save the images and a contact sheet of the three ways, print timings."""
    client = httpx.Client(base_url=info.api_url, headers={"Authorization": f"Bearer {info.api_key}"}, timeout=30.0)
    try:
        training = run_training_demo(console, client, output_dir)
    except (httpx.HTTPError, RuntimeError) as exc:
        console.print(f"[red]Training failed:[/red] {exc}")
        return 1
    trigger = training["triggerWord"]
    console.rule(f"Generate with the trained adapter of {training['modelId']} and with the base model, same seeds")
    jobs = [_submit(client, row, group, training["modelId"], trigger) for row in range(count) for group in GROUPS]
    jobs.append(_submit_inpainting(client, training["modelId"], trigger))
    jobs.append(_submit_prediction(client, training))
    console.print(
        f"Submitted {len(jobs)} jobs ({count} prompts x base model, adapter, adapter without the trigger word; "
        "1 inpainting, 1 prediction at 512 px): " + ", ".join(job["jobId"] for job, _ in jobs)
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
    saved: dict[str, list[Path]] = {}
    for job, submitted in jobs:
        job_id = job["jobId"]
        view = views.get(job_id, {"status": "timed out"})
        files: list[str] = []
        if view["status"] == "completed":
            for n, image in enumerate(view["images"]):
                path = output_dir / f"{job_id}-{n}.{image['format']}"
                path.write_bytes(httpx.get(image["url"], timeout=30.0).raise_for_status().content)
                files.append(path.name)
                saved.setdefault(job_id, []).append(path)
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
    _show_parameters(console, jobs, saved)
    sheet = _save_contact_sheet(output_dir, jobs, saved, count, trigger)
    console.print(
        f"Contact sheet (rows: prompts; columns: base model, adapter, adapter without the trigger word, "
        f"two seeds each): [bold]{sheet.resolve()}[/bold]"
    )
    return 0 if ok else 1


def _show_parameters(console: Console, jobs: list[tuple[dict[str, Any], float]], saved: dict[str, list[Path]]) -> None:
    """Print what the first adapter image says of itself (its PNG `parameters` text, read back with Pillow)."""
    for job, _ in jobs:
        sheet_job = job.get("sheet")
        if isinstance(sheet_job, SheetJob) and sheet_job.group == ADAPTER and saved.get(job["jobId"]):
            path = saved[job["jobId"]][0]
            with Image.open(path) as image:
                text = image.info.get("parameters", "(none)")
            console.print(f"{path.name} carries its parameters (AUTOMATIC1111's form):\n{text}")
            return


def _save_contact_sheet(
    output_dir: Path, jobs: list[tuple[dict[str, Any], float]], saved: dict[str, list[Path]], count: int, trigger: str
) -> Path:
    """contact-sheet.png: a row per prompt, the base model's, the adapter's and the adapter-without-trigger's
    images side by side (missing ones grey)."""
    cells: dict[tuple[int, str], list[Path]] = {}
    for job, _ in jobs:
        sheet_job = job.get("sheet")
        if isinstance(sheet_job, SheetJob):
            cells[(sheet_job.row, sheet_job.group)] = saved.get(job["jobId"], [])
    columns = [f"{group} #{n + 1}" for group in GROUPS for n in range(OUTPUTS)]
    rows = []
    for row in range(count):
        pictures: list[bytes | None] = []
        for group in GROUPS:
            paths = cells.get((row, group), [])
            pictures += [paths[n].read_bytes() if n < len(paths) else None for n in range(OUTPUTS)]
        label = f"{row_prompt(row, trigger)}  (seeds {1000 + 10 * row}, {1001 + 10 * row}; no trigger: '{CLASS_WORD}')"
        rows.append(SheetRow(label, pictures))
    path = output_dir / "contact-sheet.png"
    path.write_bytes(contact_sheet(columns, rows))
    return path
