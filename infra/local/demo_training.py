"""The training half of the demo: a model on tiny-shapes learns the shape its base never saw (a cross) from eight
captioned crosses and eight of its own shapes captioned with the class word (regularisation pictures,
`new_shape_lesson`), trained with a progress bar."""

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

from events.captions import TRIGGER_PLACEHOLDER
from infra.shapes_dataset import new_shape_lesson, render

BASE_MODEL = "tiny-shapes"
SIDE = 64  # tiny-shapes' resolution
TRAINING_TERMINAL = {"succeeded", "failed", "canceled"}
# The test that this recipe teaches crosses under the trigger word only is tests/model/test_tiny_shapes_lora.py.
DEMO_PARAMETERS = {
    "maxTrainSteps": 1500,
    "nbEpochs": 3,
    "rank": 16,
    "learningRate": 0.003,
    "learningRateTextEncoder": 0.003,
    "batchSize": 4,
}
# Crosses captioned "a red [trigger] on a white background" (the service puts the trigger word in), then the base's
# own shapes captioned "a blue shape on a black background", which a set that places its trigger word trains as
# written.
TRAINING_PICTURES = tuple(new_shape_lesson(TRIGGER_PLACEHOLDER))


def png(image: Image.Image) -> bytes:
    """PNG bytes of a picture."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def training_images(count: int = len(TRAINING_PICTURES)) -> list[bytes]:
    """The first `count` training pictures as PNG bytes."""
    return [png(render(picture, SIDE)) for picture, _ in TRAINING_PICTURES[:count]]


def run_training_demo(console: Console, client: httpx.Client, output_dir: Path, timeout_s: float = 600) -> dict:
    """Create a tiny-shapes model, upload the lesson (captioned crosses, the base's own shapes under the class word),
    train; returns the finished training's view. Raises on any failed call."""
    crosses = sum(TRIGGER_PLACEHOLDER in words for _, words in TRAINING_PICTURES)
    console.rule(f"Teach {BASE_MODEL} a shape it never saw: a LoRA on {crosses} crosses")
    model = (
        client.post("/v1/models", json={"name": "Demo crosses", "baseModel": BASE_MODEL, "tags": ["demo"]})
        .raise_for_status()
        .json()
    )
    model_id = model["modelId"]
    console.print(f"Created model [bold]{model_id}[/bold] on {BASE_MODEL} ({model['status']})")
    output_dir.mkdir(parents=True, exist_ok=True)
    for index, (picture, description) in enumerate(TRAINING_PICTURES):
        data = png(render(picture, SIDE))
        (output_dir / f"training-{index}.png").write_bytes(data)
        client.post(
            f"/v1/models/{model_id}/training-data",
            content=data,
            params={"description": description},
            headers={"Content-Type": "image/png"},
        ).raise_for_status()
    console.print(
        escape(
            f"Uploaded {crosses} crosses captioned like {TRAINING_PICTURES[0][1]!r} ({TRIGGER_PLACEHOLDER}: the "
            f"model's trigger word) and {len(TRAINING_PICTURES) - crosses} of its own shapes captioned like "
            f"{TRAINING_PICTURES[-1][1]!r} (trained as written, so the trigger word alone means a cross); saved as "
            f"{output_dir.resolve()}/training-*.png"
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
