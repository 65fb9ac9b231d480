"""Issue 14 item 2: which parts of the training recipe earn their place, one line per change.

    .venv/bin/python bench/recipe_ablation.py [--sources DIR ...] [--img-size 128] [--epochs 20]
    .venv/bin/python bench/recipe_ablation.py --from-default --only "weight average"   # one new line

Warehouse and transform run in-process on the real data (sample+extra by default); then one seeded
U-Net (the package's default hyper-parameters) is trained per recipe line. Lines are a greedy forward
selection: each proposes one change to the recipe kept so far, and the change is kept when it raises the
*validation* mean IoU of the kept epoch (the epoch of highest validation mean IoU); the test split,
which no choice looks at, gives the figures reported. Two free lines need no training: horizontal-flip
test-time augmentation, and keeping the epoch of lowest validation loss instead (its weights are kept in
the same run; its "val" column is then that validation loss).

Each line prints test pixel accuracy, mean IoU, pet and border IoU, and the paired 95 % bootstrap
interval of its mean-IoU change against the line it builds on (the same test images resampled for
both), so a change within the noise of a few dozen test images reads as such.

--from-default starts from the package's default recipe (the one the full table kept) instead of the first
line, and --only runs just the lines whose label holds a given text: a new candidate costs two runs, not
the whole table.
"""

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from training_data import REAL_SOURCES, real_transform_dir  # noqa: E402

from reproml.seg import bootstrap, dataset, inference, training  # noqa: E402
from reproml.seg.recipe import DEFAULT_RECIPE, Recipe  # noqa: E402

BASELINE = Recipe(augment="flip", loss="ce", weight_decay=0.0, schedule="constant")
# (label, change to the kept recipe); "loss" lines are alternatives: the better of them is kept.
CHANGES = (
    ("strong augmentation", {"augment": "strong"}),
    ("loss CE + soft Dice", {"loss": "ce_dice"}),
    ("loss class-weighted CE", {"loss": "weighted_ce"}),
    ("warm-up + cosine schedule", {"schedule": "warmup_cosine"}),
    ("AdamW, weight decay 0.05", {"weight_decay": 0.05}),
    ("weight average over 2 epochs", {"ema_epochs": 2.0}),
)


class KeepLowestLoss(keras.callbacks.Callback):
    """Keeps the weights of the epoch of lowest validation loss (the run itself keeps the best mean IoU)."""

    def __init__(self) -> None:
        super().__init__()
        self.loss, self.weights = np.inf, None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs["val_loss"] < self.loss:
            self.loss, self.weights = logs["val_loss"], self.model.get_weights()


def score(model: keras.Model, images: np.ndarray, labels: np.ndarray, tta: bool = False) -> dict:
    logits = inference.predict_logits(model, images, tta=tta)
    stats = bootstrap.per_image_stats(logits, labels, 1.0, dataset.CLASS_NAMES)
    return {**bootstrap.point(stats, dataset.CLASS_NAMES), "stats": stats}


def train(data: Path, recipe: Recipe, args: argparse.Namespace, scratch: Path):
    """One seeded run; the model comes back with the epoch of highest validation mean IoU."""
    training.set_determinism(args.seed, True)
    keep = KeepLowestLoss()
    start = time.perf_counter()
    model, result = training.train_model(data, training.DEFAULT_HP, epochs=args.epochs, output_dir=scratch / "run",
                                         seed=args.seed, recipe=recipe, select_by="val_mean_iou",
                                         extra_callbacks=[keep])
    return model, keep, max(result.history["val_mean_iou"]), time.perf_counter() - start


def line(label: str, result: dict, base: dict | None, val_iou: float, kept: str, seconds: float) -> str:
    if base is None:
        delta = "(baseline)"
    else:
        paired = bootstrap.paired_difference_intervals(result["stats"], base["stats"], dataset.CLASS_NAMES)
        d = paired["mean_iou"]
        delta = f"{d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
    return (f"| {label} | {val_iou:.3f} | {result['pixel_accuracy']:.3f} | {result['mean_iou']:.3f} | "
            f"{result['iou_pet']:.3f} | {result['iou_border']:.3f} | {delta} | {kept} | {seconds / 60:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", nargs="+", type=Path,
                        default=REAL_SOURCES)
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=True,
                        help="bfloat16 compute, as the full profile trains (default on)")
    parser.add_argument("--from-default", action="store_true",
                        help="start from the package's default recipe instead of the table's first line")
    parser.add_argument("--only", metavar="TEXT", default="",
                        help="run only the change lines whose label contains TEXT (e.g. 'weight average')")
    args = parser.parse_args()
    changes = [(label, change) for label, change in CHANGES if args.only.lower() in label.lower()]
    if not changes:
        parser.error(f"--only {args.only!r} matches no line; the lines: {', '.join(label for label, _ in CHANGES)}")
    training.configure_device(args.mixed_precision)
    with tempfile.TemporaryDirectory(prefix="reproml-recipe-") as scratch:
        data = real_transform_dir(args.sources, args.img_size, Path(scratch))
        sizes = {s: dataset.count_samples(dataset.split_dir(data, s)) for s in ("training", "validation", "test")}
        images, labels, _ = dataset.load_arrays(dataset.split_dir(data, "test"))
        print(f"{' + '.join(s.name for s in args.sources)} at {args.img_size} px: {sizes}; U-Net "
              f"{training.DEFAULT_HP}; {args.epochs} epochs, seed {args.seed}", flush=True)
        header = ("| line | val mIoU | test pixel acc | test mIoU | pet IoU | border IoU | "
                  "test mIoU change [paired 95 % CI] | kept | min |")
        rows = [header, "|" + "---|" * 9]

        def run(recipe: Recipe):
            model, keep, val, seconds = train(data, recipe, args, Path(scratch))
            return model, keep, score(model, images, labels), val, seconds

        recipe = DEFAULT_RECIPE if args.from_default else BASELINE
        model, keep, best, best_val, seconds = run(recipe)
        rows.append(line(f"{'default' if args.from_default else 'baseline'} {recipe}", best, None, best_val,
                         "yes", seconds))
        print(rows[-1], flush=True)
        best_model, best_keep = model, keep
        loss_base = None
        for label, change in changes:
            if "loss" in change:  # loss lines are alternatives on the same base; the better one is kept
                loss_base = loss_base or (recipe, best)
                candidate, reference = replace(loss_base[0], **change), loss_base[1]
            else:
                candidate, reference = replace(recipe, **change), best
            model, keep, result, val, seconds = run(candidate)
            keep_it = val > best_val
            rows.append(line(label, result, reference, val, "yes" if keep_it else "no", seconds))
            print(rows[-1], flush=True)
            if keep_it:
                recipe, best, best_val, best_model, best_keep = candidate, result, val, model, keep
        # Free lines on the kept recipe's run: TTA on its model, then the epoch of lowest validation loss.
        tta = score(best_model, images, labels, tta=True)
        rows.append(line("hflip test-time augmentation", tta, best, best_val, "-", 0.0))
        print(rows[-1], flush=True)
        best_model.set_weights(best_keep.weights)
        by_loss = score(best_model, images, labels)
        rows.append(line("epoch of lowest val loss instead", by_loss, best, best_keep.loss, "-", 0.0))
        print(rows[-1], flush=True)
        print(f"\nkept recipe: {recipe}\n")
        print("\n".join(rows))


if __name__ == "__main__":
    main()
