"""How well tiny-shapes' prompt words steer its pictures, per word, and a contact sheet to look at.

Every colour x shape x background prompt, `--seeds` times, in one batched call per guidance scale; each picture is
measured with infra/shapes_dataset.py's measures (dominant colour, shape by template overlap,
background by the border). Prints the accuracy per word and overall, against chance (1/6 colour, 1/3 shape among
the trained three, 1/3 background), and writes the sheet (rows: colours; columns: shape x background x seed).

    python bench/tiny_shapes_accuracy.py                                     # the committed weights
    python bench/tiny_shapes_accuracy.py --weights /tmp/run --guidance 3 5 7.5 --seeds 3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from infra.base_models import TINY_SHAPES
from infra.shapes_dataset import BACKGROUNDS, SHAPES
from workers.base_models.tiny_shapes import build_tiny_shapes, parts
from workers.base_models.tiny_shapes.evaluate import Steering, contact_sheet, prompt_grid, steering


def main() -> None:
    """Measure and print; write the contact sheet of the last guidance scale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=parts.WEIGHTS_DIR)
    parser.add_argument("--steps", type=int, default=TINY_SHAPES.default_steps)
    parser.add_argument("--guidance", type=float, nargs="+", default=[TINY_SHAPES.default_guidance])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--sheet", type=Path, default=Path("/tmp/h17/tiny-shapes-grid.png"))
    args = parser.parse_args()

    pipeline = build_tiny_shapes(args.weights)
    pipeline.set_progress_bar_config(disable=True)
    specs = prompt_grid(seeds=args.seeds)
    for guidance in args.guidance:
        started = time.monotonic()
        result = steering(pipeline, specs, steps=args.steps, guidance=guidance, side=TINY_SHAPES.default_size)
        seconds = time.monotonic() - started
        print(f"guidance {guidance}, {args.steps} steps, {len(specs)} pictures in {seconds:.1f}s")
        for name, per_word in (("colour", result.colour), ("shape", result.shape), ("background", result.background)):
            words = ", ".join(f"{word} {share:.2f}" for word, share in per_word.items())
            print(f"  {name}: {Steering.overall(per_word):.3f} (chance {1 / len(per_word):.2f}; {words})")
    args.sheet.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(result.images, columns=len(SHAPES) * len(BACKGROUNDS) * args.seeds).save(args.sheet)
    print(f"sheet: {args.sheet}")


if __name__ == "__main__":
    main()
