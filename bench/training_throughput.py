"""Training throughput: the model stage's training loop vs a bare `model.fit` on the same data (issue 15).

    .venv/bin/python bench/training_throughput.py [--samples 240] [--img-size 64] [--epochs 4] [--profile]

Both sides train the same U-Net (same seed, batch size, epochs) on the same training split and validate
on the same validation split. "bare" is what a user would write: the arrays in memory, `model.fit` with
the loss only, no callbacks. "stage" is `training.fit` exactly as the train notebook calls it (tf.data
pipeline with shuffle and augmentation, accuracy and mean-IoU metrics, TensorBoard, checkpoints, op
determinism). Wall time per training image includes validation; the first epoch (tracing, cache fill)
is left out and the fastest remaining epoch counts. Target: stage / bare <= 1.3.

`--profile` adds one line per component (each switched on alone on top of the bare loop), which is the
breakdown bench/README.md records. Tune's wall time for the full profile's search budget is estimated
from the stage's measured per-image rate and Hyperband's epoch count for profiles/full.yaml's tune
budget (keras-tuner's oracle replayed by bench/budget.py), at the benchmark's model and data size: a real tune run takes tens of minutes, so it is not run
here (tune's trials also differ in filters, depth and batch size).
"""

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# TensorFlow's C++ log repeats a harmless tf.data attribute notice on every epoch; keep the figures readable.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from training_data import make_transform_dir  # noqa: E402

from reproml.seg import dataset, training, unet  # noqa: E402
from reproml.seg.recipe import Recipe  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each whole epoch, validation included."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def _model(args) -> keras.Model:
    keras.utils.set_random_seed(0)
    return unet.build_unet(args.img_size, depth=args.depth, base_filters=args.filters, dropout=0.1)


def _rate(timer: EpochTimer, n_images: int) -> float:
    # The fastest steady epoch: on a shared machine other jobs only ever add time, so the minimum is the
    # closest to what the code itself costs (the mean moved 3x between runs here).
    steady = timer.seconds[1:] or timer.seconds
    return n_images / min(steady)


def bare(args, arrays, val, n_images: int, metrics: bool = False, callbacks=()) -> float:
    """img/s of model.fit on in-memory arrays with the loss only (plus the stage's metrics if asked)."""
    model = _model(args)
    if metrics:
        training.compile_model(model, 1e-3, Recipe(augment="flip", schedule="constant"))
    else:
        model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    timer = EpochTimer()
    model.fit(*arrays, batch_size=args.batch_size, validation_data=val, epochs=args.epochs,
              callbacks=[timer, *callbacks], verbose=0, shuffle=True)
    return _rate(timer, n_images)


def stage(args, data: Path, n_images: int) -> tuple[float, float]:
    """(img/s including validation, the stage's own training-only img/s) of training.fit as the notebook runs it."""
    model = _model(args)
    training.compile_model(model, 1e-3, Recipe(augment="flip", schedule="constant"))
    train_ds = dataset.make_dataset(dataset.split_dir(data, "training"), args.batch_size, shuffle=True,
                                    augment="flip", seed=0)
    val_ds = dataset.make_dataset(dataset.split_dir(data, "validation"), args.batch_size)
    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as out:
        # training.fit adds its own callbacks; ours is passed through the extra_callbacks hook.
        result = training.fit(model, train_ds, val_ds, epochs=args.epochs, output_dir=out,
                              n_train_images=n_images, verbose=0, extra_callbacks=[timer])
    return _rate(timer, n_images), result.images_per_second


def tune_estimate(rate: float, n_train: int) -> tuple[int, int, float]:
    """(trials, epochs, seconds) of profiles/full.yaml's tune budget at `rate` img/s (whole epochs)."""
    import yaml
    from budget import hyperband_schedule  # keras-tuner's own oracle, replayed without training

    tune = yaml.safe_load((ROOT / "profiles" / "full.yaml").read_text())["tune"]
    with contextlib.redirect_stdout(io.StringIO()):  # the oracle prints a summary of every replayed trial
        trials, epochs = hyperband_schedule(tune["max_epochs"], tune.get("factor", 3),
                                            tune.get("hyperband_iterations", 1), tune.get("max_trials", 0))
    return trials, epochs, epochs * n_train / rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=240)
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="one line per stage component")
    args = parser.parse_args()
    training.set_determinism(0, True)  # as the notebook does (process-wide; the bare side pays it too)
    data = make_transform_dir(args.samples, args.img_size)
    train_dir, val_dir = dataset.split_dir(data, "training"), dataset.split_dir(data, "validation")
    n_images, n_val = dataset.count_samples(train_dir), dataset.count_samples(val_dir)
    images, masks, _ = dataset.load_arrays(train_dir)
    val_images, val_masks, _ = dataset.load_arrays(val_dir)
    arrays, val = (images, masks[..., None]), (val_images, val_masks[..., None])
    print(f"training {n_images} / validation {n_val} images of {args.img_size}x{args.img_size}, batch "
          f"{args.batch_size}, U-Net {args.filters} filters depth {args.depth}, {args.epochs} epochs; "
          f"cores seen {len(os.sched_getaffinity(0))}, TF intra-op {tf.config.threading.get_intra_op_parallelism_threads()}"
          f" inter-op {tf.config.threading.get_inter_op_parallelism_threads()} (0 = all)")
    bare_rate = bare(args, arrays, val, n_images)
    stage_rate, stage_train_only = stage(args, data, n_images)
    print(f"bare model.fit (arrays, loss only):  {bare_rate:7.1f} img/s  (validation included)")
    print(f"stage training.fit:                  {stage_rate:7.1f} img/s  (validation included; "
          f"training batches only: {stage_train_only:.1f})")
    print(f"ratio stage / bare (time per image): {bare_rate / stage_rate:.2f}  (target <= 1.3)")
    if args.profile:
        with tempfile.TemporaryDirectory() as out:
            parts = {
                "+ accuracy and mean-IoU metrics": dict(metrics=True),
                "+ TensorBoard (epoch scalars)": dict(callbacks=[keras.callbacks.TensorBoard(
                    out + "/logs", histogram_freq=0, write_graph=False, profile_batch=0)]),
                "+ checkpoint of the best epoch": dict(callbacks=[keras.callbacks.ModelCheckpoint(
                    out + "/best.weights.h5", monitor="val_loss", save_best_only=True, save_weights_only=True)]),
            }
            for name, extra in parts.items():
                rate = bare(args, arrays, val, n_images, **extra)
                print(f"  {name:38s} {rate:7.1f} img/s  time x{bare_rate / rate:.2f}")
    trials, total_epochs, seconds = tune_estimate(stage_rate, n_images)
    print(f"tune, full profile budget: {trials} trials, {total_epochs} Hyperband epochs; estimated {seconds / 60:.0f} min at this "
          f"model and image size on this data ({n_images} training images) -- an estimate, not a run")


if __name__ == "__main__":
    main()
