"""The training half of the demo: a model on tiny-shapes learns the shape its base never saw (a cross) from eight
captioned pictures, trained with a progress bar."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

BASE_MODEL = "tiny-shapes"
SIDE = 64  # tiny-shapes' resolution
TRAINING_TERMINAL = {"succeeded", "failed", "canceled"}
DEMO_PARAMETERS = {"maxTrainSteps": 150, "nbEpochs": 3, "rank": 8, "learningRate": 0.001, "batchSize": 4}
# tiny-shapes' colours and backgrounds the demo uses, and its cross, drawn as its dataset draws them
# (workers/base_models/tiny_shapes/dataset.py: `COLOURS`, `BACKGROUNDS`, `render`). Repeated here because infra/
# may not import workers/ (tests/unit/test_import_graph.py); tests/unit/test_demo_pictures.py checks that both draw
# the same pixels.
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 210, 30),
    "purple": (140, 40, 180),
    "cyan": (40, 200, 210),
}
BACKGROUNDS = {"white": (245, 245, 245), "black": (15, 15, 15), "grey": (128, 128, 128)}
SUPERSAMPLE = 4


@dataclass(frozen=True)
class CrossPicture:
    """One training picture: a cross in `colour` on `background`, centred at (`cx`, `cy`), its box `size` wide (all
    three as fractions of the side)."""

    colour: str
    background: str
    cx: float = 0.5
    cy: float = 0.5
    size: float = 0.5

    def caption(self, trigger: str) -> str:
        """The dataset's caption form with `trigger` where the shape word goes ("a red zxq on a white background");
        the API's `[trigger]` placeholder stands for the model's trigger word."""
        return f"a {self.colour} {trigger} on a {self.background} background"

    def render(self, side: int = SIDE) -> Image.Image:
        """The picture: drawn large and reduced, so its edges are antialiased as the base model's pictures were."""
        big = side * SUPERSAMPLE
        image = Image.new("RGB", (big, big), BACKGROUNDS[self.background])
        half = self.size * big / 2
        left, top, right, bottom = (
            self.cx * big - half,
            self.cy * big - half,
            self.cx * big + half,
            self.cy * big + half,
        )
        third = (right - left) / 3
        draw = ImageDraw.Draw(image)
        draw.rectangle((left + third, top, right - third, bottom), fill=COLOURS[self.colour])
        draw.rectangle((left, top + third, right, bottom - third), fill=COLOURS[self.colour])
        return image.resize((side, side), Image.Resampling.BOX)


TRAINING_PICTURES = (
    CrossPicture("red", "white", 0.45, 0.5, 0.55),
    CrossPicture("blue", "black", 0.55, 0.45, 0.45),
    CrossPicture("yellow", "grey", 0.5, 0.55, 0.5),
    CrossPicture("green", "white", 0.4, 0.42, 0.4),
    CrossPicture("purple", "black", 0.58, 0.56, 0.5),
    CrossPicture("cyan", "grey", 0.5, 0.5, 0.58),
    CrossPicture("red", "black", 0.56, 0.44, 0.42),
    CrossPicture("blue", "white", 0.44, 0.57, 0.52),
)


def png(image: Image.Image) -> bytes:
    """PNG bytes of a picture."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def training_images(count: int = len(TRAINING_PICTURES)) -> list[bytes]:
    """The first `count` training pictures as PNG bytes."""
    return [png(picture.render()) for picture in TRAINING_PICTURES[:count]]


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
        data = png(picture.render())
        (output_dir / f"training-{index}.png").write_bytes(data)
        client.post(
            f"/v1/models/{model_id}/training-data",
            content=data,
            params={"description": picture.caption("[trigger]")},
            headers={"Content-Type": "image/png"},
        ).raise_for_status()
    console.print(
        escape(
            f"Uploaded {len(TRAINING_PICTURES)} crosses captioned like {TRAINING_PICTURES[0].caption('[trigger]')!r} "
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
