"""Input pipeline: training throughput with the tf.data pipeline vs the same model on in-memory arrays.

    .venv/bin/python bench/input_pipeline.py [--samples 400] [--img-size 64] [--epochs 4]

Both sides train the same U-Net (same seed, same batch size) on the same training split; the first
epoch (tracing, cache fill) is left out. Target (issue 3): tf.data / in-memory >= 0.9, i.e. the input
pipeline is not the bottleneck. The tf.data side also shuffles and augments, as the model stage does.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import keras  # noqa: E402
from training_data import make_transform_dir  # noqa: E402

from reproml.seg import dataset, training, unet  # noqa: E402
from reproml.seg.recipe import Recipe  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = [*getattr(self, "seconds", []), time.perf_counter() - self.started]


def throughput(fit_args: dict, n_images: int, img_size: int, epochs: int, batch_size: int) -> float:
    training.set_determinism(0, False)
    model = unet.build_unet(img_size, depth=3, base_filters=16, dropout=0.0)
    training.compile_model(model, 1e-3, Recipe(augment="flip", schedule="constant"))
    timer = EpochTimer()
    model.fit(**fit_args, epochs=epochs, callbacks=[timer], verbose=0)
    steady = timer.seconds[1:]
    return n_images * len(steady) / sum(steady)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    data = make_transform_dir(args.samples, args.img_size)
    train_dir = dataset.split_dir(data, "training")
    n_images = dataset.count_samples(train_dir)
    images, masks, _ = dataset.load_arrays(train_dir)
    arrays = {"x": images, "y": masks[..., None], "batch_size": args.batch_size, "shuffle": True}
    pipeline = {"x": dataset.make_dataset(train_dir, args.batch_size, shuffle=True, augment="flip", seed=0)}
    in_memory = throughput(arrays, n_images, args.img_size, args.epochs, args.batch_size)
    with_pipeline = throughput(pipeline, n_images, args.img_size, args.epochs, args.batch_size)
    print(f"training split: {n_images} images of {args.img_size}x{args.img_size}, batch {args.batch_size}")
    print(f"in-memory arrays:  {in_memory:7.1f} images/s")
    print(f"tf.data pipeline:  {with_pipeline:7.1f} images/s  (decode, cache, shuffle, flip, prefetch)")
    print(f"ratio tf.data / in-memory: {with_pipeline / in_memory:.2f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
