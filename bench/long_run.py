"""Issue 14: how far one long, seeded training run gets on the real data, before spending a full profile on it.

    .venv/bin/python bench/long_run.py [--filters 32] [--epochs 64] [--learning-rate 2e-3] [--batch-size 8] [--ema-epochs 0]
                                       [--keep-last 0] [--low-res-epochs 0 --low-res-size 96]

Warehouse and transform run in-process on sample+extra (as bench/recipe_ablation.py does); then one U-Net
is trained with the notebooks' default recipe (strong augmentation, cross-entropy, warm-up + cosine,
the epoch of highest validation mean IoU kept), printing the model stage's line per epoch, and scored on
the validation, calibration and test splits with and without horizontal-flip test-time augmentation, each
figure with its 95 % bootstrap interval. Validation chose the epoch and flatters the model a little;
compare settings on calibration, and keep test for the record.
With --keep-last N the weights of the last N epochs are kept (in memory) and each is scored on the three
splits with TTA: which epoch validation mean IoU *with* TTA (as calibrate, evaluate and serving predict)
would keep among them, against the model stage's rule (validation mean IoU without TTA), paired on
calibration and test. --low-res-epochs N trains the first N epochs on images shrunk to --low-res-size px
(the recipe's progressive resizing).
The sizes of `profiles/full.yaml` (width, epochs, learning-rate range) come from runs of this script;
bench/README.md records them.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from training_data import REAL_SOURCES, real_transform_dir  # noqa: E402

from reproml.seg import bootstrap, dataset, inference, training  # noqa: E402
from reproml.seg.recipe import Recipe  # noqa: E402

SPLITS = ("validation", "calibration", "test")  # validation picked the epoch; calibration is the fair one to choose by
SHOWN = ("pixel_accuracy", "iou_pet", "iou_background", "iou_border", "mean_iou")


class KeepLastWeights(keras.callbacks.Callback):
    """A copy of the weights of each of the last `keep` epochs of `epochs`, by 1-based epoch number."""

    def __init__(self, epochs: int, keep: int) -> None:
        super().__init__()
        self.first = epochs - keep + 1
        self.weights: dict[int, list] = {}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch + 1 >= self.first:
            self.weights[epoch + 1] = self.model.get_weights()


def split_stats(model: keras.Model, splits: dict, tta: bool) -> dict[str, dict]:
    """Per-image statistics of each split's predictions (temperature 1: the rules compare argmax figures)."""
    return {split: bootstrap.per_image_stats(inference.predict_logits(model, images, tta=tta), labels, 1.0,
                                             dataset.CLASS_NAMES)
            for split, (images, labels) in splits.items()}


def compare_epoch_rules(model: keras.Model, kept: KeepLastWeights, plain_epoch: int, splits: dict) -> None:
    """Score every kept epoch with TTA; pair the epoch validation-with-TTA keeps against `plain_epoch`."""
    names = dataset.CLASS_NAMES
    scored, validation_tta = {}, {}
    print("epoch  validation mIoU (plain, TTA)  calibration mIoU (TTA)  test acc / mIoU (TTA)", flush=True)
    for epoch, weights in sorted(kept.weights.items()):
        model.set_weights(weights)
        plain = bootstrap.point(split_stats(model, {"validation": splits["validation"]}, False)["validation"], names)
        scored[epoch] = split_stats(model, splits, True)
        tta = {split: bootstrap.point(stats, names) for split, stats in scored[epoch].items()}
        validation_tta[epoch] = tta["validation"]["mean_iou"]
        print(f"{epoch:>5}  {plain['mean_iou']:.4f}  {validation_tta[epoch]:.4f}"
              f"  {tta['calibration']['mean_iou']:.4f}"
              f"  {tta['test']['pixel_accuracy']:.4f} / {tta['test']['mean_iou']:.4f}", flush=True)
    # The first best epoch on ties, as the model stage's checkpoint keeps
    tta_epoch = max(validation_tta, key=lambda e: (validation_tta[e], -e))
    print(f"kept by validation mean IoU: epoch {plain_epoch}; by validation mean IoU with TTA "
          f"(among the last {len(scored)}): epoch {tta_epoch}")
    if plain_epoch not in scored:
        print(f"epoch {plain_epoch} is not among the kept epochs: nothing to pair (raise --keep-last)")
        return
    if tta_epoch == plain_epoch:
        return
    for split in ("calibration", "test"):
        diff = bootstrap.paired_difference_intervals(scored[tta_epoch][split], scored[plain_epoch][split], names)
        print(f"{split}, epoch {tta_epoch} minus epoch {plain_epoch} (TTA both): " + "  ".join(
            f"{name} {diff[name]['difference']:+.4f} [{diff[name]['ci95'][0]:+.4f}, {diff[name]['ci95'][1]:+.4f}]"
            for name in ("pixel_accuracy", "mean_iou", "iou_pet", "iou_border")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", nargs="+", type=Path, default=REAL_SOURCES)
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--filters", type=int, default=32, help="the U-Net's base filters")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-3, help="the peak of warm-up + cosine")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=64)
    parser.add_argument("--warmup-epochs", type=int, default=2)
    parser.add_argument("--ema-epochs", type=float, default=0.0,
                        help="average the weights over about this many epochs (the recipe's ema_epochs; 0: off)")
    parser.add_argument("--low-res-epochs", type=int, default=0, metavar="N",
                        help="train the first N epochs at --low-res-size px (the recipe's low_res_epochs; 0: off)")
    parser.add_argument("--low-res-size", type=int, default=96, help="their image side, in pixels")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep-last", type=int, default=0, metavar="N",
                        help="keep the last N epochs' weights and compare epoch rules with TTA (needs ~90 MB each)")
    args = parser.parse_args()
    if not 0 <= args.keep_last <= args.epochs:
        parser.error(f"--keep-last must be between 0 and --epochs ({args.epochs}); got {args.keep_last}")
    training.configure_device(mixed_precision=True)
    hp = {"learning_rate": args.learning_rate, "base_filters": args.filters, "depth": args.depth,
          "batch_size": args.batch_size, "dropout": args.dropout}
    recipe = Recipe(warmup_epochs=args.warmup_epochs, ema_epochs=args.ema_epochs,
                    low_res_epochs=args.low_res_epochs, low_res_size=args.low_res_size)
    with tempfile.TemporaryDirectory(prefix="reproml-long-run-") as scratch:
        data = real_transform_dir(args.sources, args.img_size, Path(scratch))
        splits = {split: dataset.load_arrays(dataset.split_dir(data, split))[:2] for split in SPLITS}
        print(f"{' + '.join(s.name for s in args.sources)} at {args.img_size} px, "
              + ", ".join(f"{len(images)} {split}" for split, (images, _) in splits.items()) + " images; "
              f"{hp}; {recipe}; {args.epochs} epochs, seed {args.seed}", flush=True)
        training.set_determinism(args.seed, True)
        started = time.perf_counter()
        kept = KeepLastWeights(args.epochs, args.keep_last)
        model, result = training.train_model(data, hp, epochs=args.epochs, output_dir=Path(scratch) / "run",
                                             seed=args.seed, recipe=recipe, extra_callbacks=[kept])
        minutes = (time.perf_counter() - started) / 60
        print(f"weights fingerprint {training.weights_fingerprint(model)[:12]} (the train notebook scraps the same)")
        stats_by_tta = {tta: split_stats(model, splits, tta) for tta in (False, True)}
        for split in splits:
            for tta in (False, True):
                stats = stats_by_tta[tta][split]
                point = bootstrap.point(stats, dataset.CLASS_NAMES)
                ci = bootstrap.intervals(stats, dataset.CLASS_NAMES)
                figures = "  ".join(f"{name} {point[name]:.3f} [{ci[name][0]:.3f}, {ci[name][1]:.3f}]"
                                    for name in SHOWN)
                print(f"{split}{' (hflip TTA)' if tta else ''}, epoch {result.best_epoch} kept: {figures}")
        print(f"training: {minutes:.1f} min ({minutes * 60 / args.epochs:.1f} s per epoch)")
        if kept.weights:
            compare_epoch_rules(model, kept, result.best_epoch, splits)


if __name__ == "__main__":
    main()
