"""Issue 14 item 2, one ablation line: keep the epoch of the lowest validation loss or of the highest mean IoU.

    .venv/bin/python bench/epoch_selection.py [--sources DIR ...] [--img-size 64] [--epochs 12]

One seeded training run on the real data (warehouse and transform run in-process on each source folder
of Oxford archives), the weights of every epoch kept; each rule's epoch is then scored on the test split
(pixel mean IoU and border IoU), so the comparison is on data neither rule saw.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from training_data import REAL_SOURCES, real_transform_dir  # noqa: E402

from reproml.seg import dataset, metrics, training  # noqa: E402
from reproml.seg.recipe import Recipe  # noqa: E402
from reproml.seg.unet import build_unet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", nargs="+", type=Path,
                        default=REAL_SOURCES)
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reproml-ablation-") as scratch:
        run(args, real_transform_dir(args.sources, args.img_size, Path(scratch)))


def run(args: argparse.Namespace, data: Path) -> None:
    sizes = {split: dataset.count_samples(dataset.split_dir(data, split)) for split in ("training", "validation", "test")}
    training.set_determinism(args.seed, True)
    model = build_unet(args.img_size, depth=3, base_filters=16, dropout=0.1)
    training.compile_model(model, 1e-3, Recipe(augment="flip", schedule="constant"))
    kept: list[list[np.ndarray]] = []
    keep = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: kept.append(model.get_weights()))
    train = dataset.make_dataset(dataset.split_dir(data, "training"), 16, shuffle=True, augment="flip", seed=args.seed)
    val = dataset.make_dataset(dataset.split_dir(data, "validation"), 16)
    with tempfile.TemporaryDirectory() as out:
        result = training.fit(model, train, val, epochs=args.epochs, output_dir=out, n_train_images=sizes["training"],
                              verbose=0, extra_callbacks=[keep])
    images, masks, _ = dataset.load_arrays(dataset.split_dir(data, "test"))
    print(f"{' + '.join(s.name for s in args.sources)} at {args.img_size} px: {sizes}; U-Net 16 filters depth 3, "
          f"{args.epochs} epochs, seed {args.seed}")
    history = result.history
    for rule, pick in (("val_loss", np.argmin), ("val_mean_iou", np.argmax)):
        epoch = int(pick(history[rule]))
        model.set_weights(kept[epoch])
        predicted = np.argmax(model.predict(images, batch_size=16, verbose=0), axis=-1)
        cm = metrics.confusion_matrix(masks, predicted)
        iou = metrics.per_class_iou(cm)
        print(f"select by {rule:13s} epoch {epoch + 1:2d}: val_loss {history['val_loss'][epoch]:.3f} "
              f"val mIoU {history['val_mean_iou'][epoch]:.3f} | test mIoU {metrics.mean_iou(cm):.3f} "
              f"pet IoU {iou[0]:.3f} border IoU {iou[2]:.3f}")


if __name__ == "__main__":
    main()
