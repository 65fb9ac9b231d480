"""Does horizontal-flip test-time augmentation help a trained model? Measured where no choice may look: not on test.

    .venv/bin/python bench/tta_check.py --store /tmp/quality-store      # the model of a store's model@master
    .venv/bin/python bench/tta_check.py --model path/to/model.keras       # or any saved model
    .venv/bin/python bench/tta_check.py --store /tmp/quality-store --scales 0.75,1,1.25   # + multi-scale

Warehouse and transform run in-process on the real data (sample+extra by default, at the model's image
size), then the model predicts the validation and calibration splits with and without TTA. Each line
prints pixel accuracy, mean, pet and border IoU, and the paired 95 % bootstrap interval of the change (the
same images resampled for both), which is what `profiles/full.yaml` argues calibrate's `tta` from.
`--scales` adds one line per split for hflip TTA averaged over the image resized to each of those scales
(logits resized back), with its paired interval against hflip alone: a multi-scale option not built into
the package, measured before building it (bench/README.md).
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from training_data import REAL_SOURCES, real_transform_dir  # noqa: E402

from reproml.pfs import Store  # noqa: E402
from reproml.seg import bootstrap, dataset, inference, training  # noqa: E402

SPLITS = ("validation", "calibration")
SHOWN = ("pixel_accuracy", "mean_iou", "iou_pet", "iou_border")


def model_from_store(store_dir: Path, scratch: Path) -> Path:
    """Copy model@master:/model.keras out of a local store."""
    target = scratch / "model.keras"
    target.write_bytes(Store.open(store_dir).read_file("model@master", "/model.keras"))
    return target


def scale_list(text: str) -> list[float]:
    """`--scales`: comma-separated positive factors, e.g. 0.75,1,1.25."""
    try:
        scales = [float(x) for x in text.split(",")]
    except ValueError:
        scales = []
    if not scales or min(scales) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive factors separated by commas, e.g. 0.75,1,1.25")
    return scales


def any_size(model):
    """The same model with a free input size (it is fully convolutional), to predict other scales."""
    config = model.get_config()
    config["layers"][0]["config"]["batch_shape"] = [None, None, None, 3]
    clone = model.__class__.from_config(config)
    clone.set_weights(model.get_weights())
    return clone


def multi_scale_logits(model, images: np.ndarray, scales: list[float]) -> np.ndarray:
    """hflip-TTA logits averaged over the images resized by each scale (to a multiple of 16 px), resized back."""
    import tensorflow as tf

    size, total = images.shape[1], 0.0
    for scale in scales:
        side = max(16, int(round(size * scale / 16)) * 16)
        resized = images if side == size else tf.image.resize(images, (side, side)).numpy()
        logits = inference.predict_logits(model, resized, batch_size=8, tta=True)
        total = total + (logits if side == size else tf.image.resize(logits, (size, size)).numpy())
    return total / len(scales)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--store", type=Path, help="a local store whose model@master is measured")
    which.add_argument("--model", type=Path, help="a saved model.keras")
    parser.add_argument("--sources", nargs="+", type=Path, default=REAL_SOURCES)
    parser.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=True,
                        help="bfloat16 compute, as the full profile predicts (default on)")
    parser.add_argument("--scales", type=scale_list,
                        help="also measure hflip TTA over these image scales, e.g. 0.75,1,1.25")
    args = parser.parse_args()
    if args.store and not (args.store / "store.db").is_file():
        parser.error(f"{args.store} is not a local store (no store.db); give the folder `reproml --store` used")
    training.configure_device(args.mixed_precision)
    with tempfile.TemporaryDirectory(prefix="reproml-tta-") as scratch:
        path = args.model or model_from_store(args.store, Path(scratch))
        model = inference.load_model(path)
        img_size = int(model.input_shape[1])
        data = real_transform_dir(args.sources, img_size, Path(scratch))
        name = args.model or f"{args.store} model@master"
        print(f"{name} (weights {training.weights_fingerprint(model)[:12]}) on {' + '.join(s.name for s in args.sources)} "
              f"at {img_size} px\n")
        print("| split | TTA | pixel acc | mean IoU | pet IoU | border IoU |")
        print("|---|---|---|---|---|---|")
        changes, multi = {}, {}
        free_size = any_size(model) if args.scales else None
        for split in SPLITS:
            images, labels, _ = dataset.load_arrays(dataset.split_dir(data, split))
            stats = {}
            for tta in (False, True):
                logits = inference.predict_logits(model, images, tta=tta)
                stats[tta] = bootstrap.per_image_stats(logits, labels, 1.0, dataset.CLASS_NAMES)
                point = bootstrap.point(stats[tta], dataset.CLASS_NAMES)
                print(f"| {split} ({len(images)}) | {'on' if tta else 'off'} | "
                      + " | ".join(f"{point[name]:.4f}" for name in SHOWN) + " |", flush=True)
            changes[split] = bootstrap.paired_difference_intervals(stats[True], stats[False], dataset.CLASS_NAMES)
            if args.scales:
                logits = multi_scale_logits(free_size, images, args.scales)
                scaled = bootstrap.per_image_stats(logits, labels, 1.0, dataset.CLASS_NAMES)
                point = bootstrap.point(scaled, dataset.CLASS_NAMES)
                print(f"| {split} ({len(images)}) | on, scales {','.join(map(str, args.scales))} | "
                      + " | ".join(f"{point[name]:.4f}" for name in SHOWN) + " |", flush=True)
                multi[split] = bootstrap.paired_difference_intervals(scaled, stats[True], dataset.CLASS_NAMES)
        for title, found in (("change with TTA", changes), ("change with the scales, against hflip alone", multi)):
            if found:
                print(f"\n{title}, paired 95 % interval:")
            for split, paired in found.items():
                cells = [f"{name} {paired[name]['difference']:+.4f} [{paired[name]['ci95'][0]:+.4f}, "
                         f"{paired[name]['ci95'][1]:+.4f}]" for name in SHOWN]
                print(f"  {split}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
