"""The training half of the demo: a model on tiny-shapes learns the shape its base never saw (a cross) from eight
captioned pictures, trained with a progress bar."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from infra.shapes_dataset import HELD_OUT_SHAPE, ShapeSpec, caption, render

BASE_MODEL = "tiny-shapes"
SIDE = 64  # tiny-shapes' resolution
TRAINING_TERMINAL = {"succeeded", "failed", "canceled"}
DEMO_PARAMETERS = {"maxTrainSteps": 150, "nbEpochs": 3, "rank": 8, "learningRate": 0.001, "batchSize": 4}
# Eight crosses (tiny-shapes' held-out shape) in every colour, on every background, at a few places and sizes.
TRAINING_PICTURES = (
    ShapeSpec(HELD_OUT_SHAPE, "red", "white", 0.45, 0.5, 0.55),
    ShapeSpec(HELD_OUT_SHAPE, "blue", "black", 0.55, 0.45, 0.45),
    ShapeSpec(HELD_OUT_SHAPE, "yellow", "grey", 0.5, 0.55, 0.5),
    ShapeSpec(HELD_OUT_SHAPE, "green", "white", 0.4, 0.42, 0.4),
    ShapeSpec(HELD_OUT_SHAPE, "purple", "black", 0.58, 0.56, 0.5),
    ShapeSpec(HELD_OUT_SHAPE, "cyan", "grey", 0.5, 0.5, 0.58),
    ShapeSpec(HELD_OUT_SHAPE, "red", "black", 0.56, 0.44, 0.42),
    ShapeSpec(HELD_OUT_SHAPE, "blue", "white", 0.44, 0.57, 0.52),
)


def png(image: Image.Image) -> bytes:
    """PNG bytes of a picture."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def training_images(count: int = len(TRAINING_PICTURES)) -> list[bytes]:
    """The first `count` training pictures as PNG bytes."""
    return [png(render(picture, SIDE)) for picture in TRAINING_PICTURES[:count]]


def run_training_demo(console: Console, client: httpx.Client, output_dir: Path, timeout_s: float = 600) -> dict:
    """Create a tiny-shapes model, upload the captioned crosses, train; returns the finished training's view.
    Raises on any failed call."""
    console.rule(f"Teach {BASE_MODEL} a shape it never saw: a LoRA on {len(TRAINING_PICTURES)} crosses")
    model = (
        client.post("/v1/models", json={"name": "Demo crosses", "baseModel": BASE_MODEL, "tags": ["demo"]})
        .raise_for_status()
        .json()
    )
    model_id = model["modelId"]
    console.print(f"Created model [bold]{model_id}[/bold] on {BASE_MODEL} ({model['status']})")
    output_dir.mkdir(parents=True, exist_ok=True)
    for index, picture in enumerate(TRAINING_PICTURES):
        data = png(render(picture, SIDE))
        (output_dir / f"training-{index}.png").write_bytes(data)
        client.post(
            f"/v1/models/{model_id}/training-data",
            content=data,
            params={"description": caption(picture, trigger="[trigger]")},
            headers={"Content-Type": "image/png"},
        ).raise_for_status()
    example = caption(TRAINING_PICTURES[0], trigger="[trigger]")
    console.print(
        escape(
            f"Uploaded {len(TRAINING_PICTURES)} crosses captioned like {example!r} "
            f"([trigger]: the model's trigger word); saved as {output_dir.resolve()}/training-*.png"
        )
    )
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
    for epoch in view["epochs"]:
        for index, url in enumerate(epoch["sampleUrls"]):
            path = output_dir / f"{training_id}-epoch{epoch['epoch']}-{index}.png"
            path.write_bytes(httpx.get(url, timeout=30.0).raise_for_status().content)
    console.print(
        f"Trained: {len(view['epochs'])} epochs, samples saved in [bold]{output_dir.resolve()}[/bold]; "
        f"model status {client.get(f'/v1/models/{model_id}').json()['status']}"
    )
    return view
