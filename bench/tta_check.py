"""Does horizontal-flip test-time augmentation help a trained model? Measured where no choice may look: not on test.

    .venv/bin/python bench/tta_check.py --store /tmp/quality-store      # the model of a store's model@master
    .venv/bin/python bench/tta_check.py --model path/to/model.keras       # or any saved model

Warehouse and transform run in-process on the real data (sample+extra by default, at the model's image
size), then the model predicts the validation and calibration splits with and without TTA. Each line
prints pixel accuracy, mean, pet and border IoU, and the paired 95 % bootstrap interval of the change (the
same images resampled for both), which is what `profiles/full.yaml` argues calibrate's `tta` from.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--store", type=Path, help="a local store whose model@master is measured")
    which.add_argument("--model", type=Path, help="a saved model.keras")
    parser.add_argument("--sources", nargs="+", type=Path, default=REAL_SOURCES)
    parser.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=True,
                        help="bfloat16 compute, as the full profile predicts (default on)")
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
        changes = {}
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
        print("\nchange with TTA, paired 95 % interval:")
        for split, paired in changes.items():
            cells = [f"{name} {paired[name]['difference']:+.4f} [{paired[name]['ci95'][0]:+.4f}, "
                     f"{paired[name]['ci95'][1]:+.4f}]" for name in SHOWN]
            print(f"  {split}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
