"""The training half of the demo: create a model, upload images, train it with a progress bar."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

TRAINING_TERMINAL = {"succeeded", "failed", "canceled"}
DEMO_PARAMETERS = {"maxTrainSteps": 120, "nbEpochs": 3, "rank": 8, "learningRate": 0.001}


def training_images(count: int = 4) -> list[bytes]:
    """Distinctive pictures to learn from: orange discs on deep blue."""
    images = []
    for index in range(count):
        image = Image.new("RGB", (128, 128), (20, 30, 110))
        draw = ImageDraw.Draw(image)
        offset = 16 + index * 8
        draw.ellipse((offset, offset, offset + 64, offset + 64), fill=(250, 140, 20))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        images.append(buffer.getvalue())
    return images


def run_training_demo(console: Console, client: httpx.Client, output_dir: Path, timeout_s: float = 600) -> dict:
    """Create, upload, train; returns the finished training's view. Raises on any failed call."""
    console.rule("Train a LoRA adapter on tiny-sd")
    model = client.post("/v1/models", json={"name": "Demo discs", "tags": ["demo"]}).raise_for_status().json()
    model_id = model["modelId"]
    console.print(f"Created model [bold]{model_id}[/bold] ({model['status']})")
    for data in training_images():
        client.post(
            f"/v1/models/{model_id}/training-data", content=data, headers={"Content-Type": "image/png"}
        ).raise_for_status()
    console.print("Uploaded 4 training images")
    accepted = (
        client.post(f"/v1/models/{model_id}/trainings", json={"trainingSpeed": "fast", "parameters": DEMO_PARAMETERS})
        .raise_for_status()
        .json()
    )
    training_id = accepted["trainingId"]
    console.print(f"Training [bold]{training_id}[/bold], trigger word [bold]{accepted['triggerWord']}[/bold]")
    view: dict[str, Any] = {}
    deadline = time.monotonic() + timeout_s
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("step {task.completed:.0f}/{task.total:.0f}"),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("queued", total=DEMO_PARAMETERS["maxTrainSteps"], detail="")
        while time.monotonic() < deadline:
            view = client.get(f"/v1/models/{model_id}/trainings/{training_id}").raise_for_status().json()
            info = view.get("progress") or {}
            detail = f"loss {info['loss']:.4f}, {info['stepsPerSecond']:.1f} steps/s" if info.get("loss") else ""
            progress.update(task, completed=info.get("step", 0), description=view["status"], detail=detail)
            if view["status"] in TRAINING_TERMINAL:
                if view["status"] == "succeeded":
                    progress.update(task, completed=DEMO_PARAMETERS["maxTrainSteps"])
                break
            time.sleep(0.25)  # a client's polling interval, not a synchronisation
    if view.get("status") != "succeeded":
        raise RuntimeError(f"training did not succeed: {view}")
    output_dir.mkdir(parents=True, exist_ok=True)
    for epoch in view["epochs"]:
        for index, url in enumerate(epoch["sampleUrls"]):
            path = output_dir / f"{training_id}-epoch{epoch['epoch']}-{index}.png"
            path.write_bytes(httpx.get(url, timeout=30.0).raise_for_status().content)
    console.print(
        f"Trained: {len(view['epochs'])} epochs, samples saved in [bold]{output_dir.resolve()}[/bold]; "
        f"model status {client.get(f'/v1/models/{model_id}').json()['status']}"
    )
    return view
