"""Determinism cost: training time with and without TensorFlow op determinism, side by side.

    .venv/bin/python bench/determinism.py [--samples 300] [--img-size 64] [--epochs 4]

Each variant trains the same U-Net in its own process (op determinism cannot be switched off once on);
the first epoch (tracing, cache fill) is left out. Target (issue 3): deterministic / free <= 1.1 on CPU.
The deterministic variant also runs twice to show identical weights fingerprints.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def train_once(data: Path, deterministic: bool, epochs: int) -> dict:
    import keras

    from reproml.seg import dataset, training, unet
    from reproml.seg.recipe import Recipe

    training.set_determinism(0, deterministic)
    model = unet.build_unet(dataset.image_size(data / "training"), depth=3, base_filters=16, dropout=0.1)
    training.compile_model(model, 1e-3, Recipe(augment="flip", schedule="constant"))
    train = dataset.make_dataset(data / "training", 16, shuffle=True, augment="flip", seed=0)
    seconds = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.started)

    model.fit(train, epochs=epochs, callbacks=[Timer()], verbose=0)
    return {"seconds": sum(seconds[1:]), "fingerprint": training.weights_fingerprint(model)}


def run_variant(data: Path, deterministic: bool, epochs: int) -> dict:
    output = subprocess.run([sys.executable, __file__, "--variant", str(data), str(deterministic), str(epochs)],
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--variant":
        print(json.dumps(train_once(Path(sys.argv[2]), sys.argv[3] == "True", int(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant, alternating")
    args = parser.parse_args()
    from training_data import make_transform_dir

    data = make_transform_dir(args.samples, args.img_size)
    runs: dict[bool, list[dict]] = {False: [], True: []}
    for _ in range(args.repeats):  # alternating, so a slow spell of the machine hits both variants
        for deterministic in (False, True):
            runs[deterministic].append(run_variant(data, deterministic, args.epochs))
    free = statistics.median(r["seconds"] for r in runs[False])
    fixed = statistics.median(r["seconds"] for r in runs[True])
    print(f"{args.epochs - 1} timed epochs on {args.samples} samples at {args.img_size}x{args.img_size}, "
          f"median of {args.repeats} alternating runs each")
    for label, median, deterministic in (("without", free, False), ("with", fixed, True)):
        each = ", ".join(f"{r['seconds']:.1f}" for r in runs[deterministic])
        print(f"{label + ' op determinism:':24s}{median:6.1f} s   ({each})")
    print(f"ratio: {fixed / free:.2f}  (target <= 1.1)")
    prints = {r["fingerprint"] for r in runs[True]}
    print(f"identical weights in every deterministic run: {len(prints) == 1} ({next(iter(prints))[:16]})")


if __name__ == "__main__":
    main()
