"""Determinism cost: training time with and without TensorFlow op determinism, side by side.

    .venv/bin/python bench/determinism.py [--samples 300] [--img-size 64] [--epochs 4]

Each variant trains the same U-Net in its own process (op determinism cannot be switched off once on);
the first epoch (tracing, cache fill) is left out. Target (issue 3): deterministic / free <= 1.1 on CPU.
The deterministic variant also runs twice to show identical weights fingerprints.
"""

import argparse
import json
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

    training.set_determinism(0, deterministic)
    model = unet.build_unet(dataset.image_size(data / "training"), depth=3, base_filters=16, dropout=0.1)
    training.compile_model(model, 1e-3)
    train = dataset.make_dataset(data / "training", 16, shuffle=True, augment=True, seed=0)
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
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    from training_data import make_transform_dir

    data = make_transform_dir(args.samples, args.img_size)
    free = run_variant(data, False, args.epochs)
    fixed = run_variant(data, True, args.epochs)
    again = run_variant(data, True, args.epochs)
    print(f"{args.epochs - 1} timed epochs on {args.samples} samples at {args.img_size}x{args.img_size}")
    print(f"without op determinism: {free['seconds']:6.1f} s")
    print(f"with op determinism:    {fixed['seconds']:6.1f} s   (again: {again['seconds']:.1f} s)")
    print(f"ratio: {fixed['seconds'] / free['seconds']:.2f}  (target <= 1.1)")
    print(f"identical weights on the deterministic rerun: {fixed['fingerprint'] == again['fingerprint']} "
          f"({fixed['fingerprint'][:16]})")


if __name__ == "__main__":
    main()
