"""Train the demo model: ``python -m darts.demo.train``.

A tiny smp U-Net (about 0.1 M parameters) learns the sandbox's synthetic thaw slumps
in a few minutes on two CPU cores:

1. build (once) the small sandbox world and start its stand-ins;
2. stage the scenes of the demo tiles with ``darts inference prep-data sentinel2
   --optical --aux`` (the real command, against the stand-ins);
3. read each scene back offline and compute its 13 normalised features exactly as
   ``darts inference sentinel2-sequential`` does (:mod:`darts.demo.data`);
4. rasterise the world's ground-truth slump polygons onto each scene grid as labels;
5. train on random patches (half of them centred near a slump), loss = BCE + Dice
   over valid pixels only (clouds, cloud shadows, no-data: ignored);
6. score every scene (pixel IoU at 0.5) and write the checkpoint in the DARTS layout.

The scenes of ``DEMO_YEARS`` are left out of training: the demo runs on them. They
show the same ground as the training scenes (there is one world), so the demo's score
says the chain works end to end, not that the model generalises. The model has only
ever seen synthetic data: it is **not** a model for real Sentinel-2 imagery.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from darts.demo import DEMO_MODEL, DEMO_SEED, DEMO_TILES, DEMO_WORLD, DEMO_YEARS

MODEL_CONFIG = {
    "arch": "unet",
    "encoder_name": "tu-test_resnet",
    "in_channels": 13,
    "classes": 1,
    "encoder_depth": 3,
    "decoder_channels": [32, 16, 16],
}
NOTE = (
    "Demo model trained on the DARTS sandbox's synthetic world only. It is NOT a model "
    "for real Sentinel-2 imagery; use it to try and test the pipeline."
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m darts.demo.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(".data/demo-training"),
        help="darts data dir for the staged scenes (reused when present)",
    )
    parser.add_argument(
        "--sandbox-root",
        type=Path,
        default=None,
        help="where the sandbox world is built and cached (default: <work-dir>/sandbox)",
    )
    parser.add_argument("--output", type=Path, default=DEMO_MODEL, help="checkpoint to write")
    parser.add_argument("--steps", type=int, default=100, help="optimiser steps")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    work_dir = args.work_dir.resolve()
    scenes, held_out = stage_and_read(work_dir, args.sandbox_root)
    print(f"data ready in {time.perf_counter() - started:.0f} s", flush=True)

    train_started = time.perf_counter()
    module, history = train(
        [s for s in scenes if s.scene_id not in held_out],
        steps=args.steps,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
    )
    train_seconds = time.perf_counter() - train_started
    scores = {s.scene_id: scene_iou(module, s) for s in scenes}
    train_iou = _pooled([scores[s.scene_id] for s in scenes if s.scene_id not in held_out])
    held_iou = _pooled([scores[s.scene_id] for s in scenes if s.scene_id in held_out])
    for scene in scenes:
        tag = "held out" if scene.scene_id in held_out else "train"
        print(f"  {scene.scene_id}  {tag:8}  pixel IoU {_iou(scores[scene.scene_id]):.3f}")
    print(f"pixel IoU: train scenes {train_iou:.3f}, held-out scenes {held_iou:.3f}")

    training = {
        "command": " ".join(["python -m darts.demo.train", *argv]),
        "world": f"{DEMO_WORLD}-seed{DEMO_SEED}",
        "tiles": list(DEMO_TILES),
        "held_out_years": list(DEMO_YEARS),
        "train_scenes": [s.scene_id for s in scenes if s.scene_id not in held_out],
        "steps": args.steps,
        "batch_size": args.batch_size,
        "patch_size": args.patch_size,
        "lr": args.lr,
        "seed": args.seed,
        "threads": args.threads,
        "train_seconds": round(train_seconds, 1),
        "final_loss": round(history[-1], 4),
        "pixel_iou_train": round(train_iou, 4),
        "pixel_iou_held_out": round(held_iou, 4),
    }
    save(module, args.output, training)
    size = args.output.stat().st_size
    print(f"trained in {train_seconds:.0f} s; wrote {args.output} ({size / 1e6:.2f} MB)")
    print(json.dumps(training, indent=2))
    return 0


# -- data ------------------------------------------------------------------------------


class _Scene:
    def __init__(self, scene_id: str, features: np.ndarray, label: np.ndarray, valid: np.ndarray):
        self.scene_id = scene_id
        self.features = features
        self.label = label
        self.valid = valid
        rows, cols = np.nonzero((label == 1) & valid)
        self.positives = np.stack([rows, cols], axis=1)


def stage_and_read(work_dir: Path, sandbox_root: Path | None):
    """Stage every scene of the demo tiles (once) and read back features and labels."""
    import geopandas as gpd

    from darts.demo.data import (
        build_demo_world,
        demo_workspace,
        rasterize_truth,
        read_scene_inputs,
        running_sandbox,
        world_scene_ids,
    )
    from darts.processing.features import ALL_FEATURES
    from darts.sources.scene_ids import write_scene_id_file

    world = build_demo_world(sandbox_root or work_dir / "sandbox", progress=print)
    scene_ids = world_scene_ids(world, DEMO_TILES)
    held_out = set(world_scene_ids(world, DEMO_TILES, DEMO_YEARS))
    ids_file = work_dir / "scene-ids.json"
    staged = ids_file.is_file() and sorted(json.loads(ids_file.read_text())) == scene_ids
    if not staged:
        with running_sandbox(world, work_dir / "sandbox.toml") as config:
            workspace = demo_workspace(work_dir, config)
            scenes = workspace.discover(
                tile_ids=DEMO_TILES, max_cloud_cover=100, max_snow_cover=100
            )
            report = workspace.stage(scenes)
            if report.failed or report.aux_failed:
                raise SystemExit("staging the training scenes failed")
            write_scene_id_file(ids_file, [str(scene["id"]) for scene in scenes])
    truth = gpd.read_parquet(world.truth)
    scenes = []
    for inputs in read_scene_inputs(work_dir, scene_ids, ALL_FEATURES):
        label = rasterize_truth(truth, inputs.grid)
        scenes.append(_Scene(inputs.scene_id, inputs.features, label, inputs.quality >= 1))
        print(
            f"  {inputs.scene_id}: {inputs.features.shape[2]}x{inputs.features.shape[1]} px, "
            f"{scenes[-1].valid.mean():.0%} valid, {int(label.sum())} slump px",
            flush=True,
        )
    return scenes, held_out


def _batch(
    scenes: Sequence[_Scene], rng: np.random.Generator, batch_size: int, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    bands = scenes[0].features.shape[0]
    x = np.zeros((batch_size, bands, size, size), dtype=np.float32)
    y = np.zeros((batch_size, 1, size, size), dtype=np.float32)
    m = np.zeros((batch_size, 1, size, size), dtype=np.float32)
    for i in range(batch_size):
        scene = scenes[int(rng.integers(len(scenes)))]
        height, width = scene.label.shape
        if len(scene.positives) and rng.random() < 0.5:
            row, col = scene.positives[int(rng.integers(len(scene.positives)))]
            r0 = int(row) - int(rng.integers(size))
            c0 = int(col) - int(rng.integers(size))
        else:
            r0 = int(rng.integers(height - size + 1))
            c0 = int(rng.integers(width - size + 1))
        r0 = min(max(r0, 0), height - size)
        c0 = min(max(c0, 0), width - size)
        window = (slice(r0, r0 + size), slice(c0, c0 + size))
        x[i] = scene.features[(slice(None), *window)]
        y[i, 0] = scene.label[window]
        m[i, 0] = scene.valid[window]
    return x, y, m


# -- model -----------------------------------------------------------------------------


def create_module():
    import segmentation_models_pytorch as smp

    settings = dict(MODEL_CONFIG)
    return smp.create_model(
        arch=settings.pop("arch"),
        encoder_name=settings.pop("encoder_name"),
        encoder_weights=None,
        **settings,
    )


def train(
    scenes: Sequence[_Scene],
    *,
    steps: int,
    batch_size: int,
    patch_size: int,
    lr: float,
    seed: int,
    threads: int,
):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(seed)
    module = create_module()
    optimiser = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=lr, total_steps=steps, pct_start=0.1
    )
    module.train()
    history: list[float] = []
    started = time.perf_counter()
    for step in range(1, steps + 1):
        x, y, m = (torch.from_numpy(a) for a in _batch(scenes, rng, batch_size, patch_size))
        logits = module(x)
        loss = _loss(logits, y, m)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        history.append(loss.item())
        if step % 50 == 0 or step == steps:
            recent = float(np.mean(history[-50:]))
            print(
                f"  step {step}/{steps}  loss {recent:.4f}  {time.perf_counter() - started:.0f} s",
                flush=True,
            )
    module.eval()
    return module, history


def _loss(logits, target, mask):
    import torch
    import torch.nn.functional as F

    weight = mask.sum().clamp(min=1.0)
    bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * mask).sum()
    probability = torch.sigmoid(logits) * mask
    overlap = (probability * target).sum()
    dice = 1.0 - (2.0 * overlap + 1.0) / (probability.sum() + (target * mask).sum() + 1.0)
    return bce / weight + dice


def scene_iou(module, scene: _Scene) -> tuple[int, int]:
    """(intersection, union) pixel counts at probability 0.5 over the valid pixels."""
    import torch
    import torch.nn.functional as F

    _, height, width = scene.features.shape
    pad_h, pad_w = (-height) % 8, (-width) % 8
    with torch.no_grad():
        x = torch.from_numpy(scene.features[None])
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        probability = torch.sigmoid(module(x))[0, 0, :height, :width].numpy()
    detected = (probability >= 0.5) & scene.valid
    truth = (scene.label == 1) & scene.valid
    return int((detected & truth).sum()), int((detected | truth).sum())


def _iou(counts: tuple[int, int]) -> float:
    return counts[0] / counts[1] if counts[1] else 1.0


def _pooled(counts: Sequence[tuple[int, int]]) -> float:
    return _iou((sum(c[0] for c in counts), sum(c[1] for c in counts)))


def save(module, path: Path, training: dict) -> None:
    from darts.processing.features import ALL_FEATURES
    from darts.processing.models import save_darts_checkpoint

    config = {
        "model": MODEL_CONFIG,
        "bands": list(ALL_FEATURES),
        "name": "darts-demo-sandbox",
        "patch_size": training["patch_size"],
        "note": NOTE,
        "training": training,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_darts_checkpoint(module, config, path)


if __name__ == "__main__":
    raise SystemExit(main())
