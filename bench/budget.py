"""What the full profile's training stages cost: seconds per epoch of U-Net configurations, epochs of a Hyperband.

    .venv/bin/python bench/budget.py --data DIR [--configs 16/4/16 32/4/8] [--epochs 2] [--mixed-precision]
    .venv/bin/python bench/budget.py --hyperband 8,3,1,0 15,3,1,20

`--data` is a transform output (e.g. `reproml get file transform@master` materialised, or a run's datum
folder). Each configuration (base_filters/depth/batch_size) is trained with the package's own
`train_model` twice, for 1 and for 1 + `--epochs` epochs, so the difference is the steady cost of an
epoch (training and validation, without the first epoch's graph tracing), printed as wall and CPU
seconds. On a shared machine read the CPU seconds: an idle 2-core machine gives a training process about
1.6 cores (profiles/full.yaml), so its wall time per epoch is about CPU / 1.6.

`--hyperband max_epochs,factor,iterations,max_trials` replays keras-tuner's Hyperband oracle (no training)
and prints how many trials it runs and how many epochs they train in all (a promoted trial resumes from
its parent's epochs, so only the new ones count).
"""

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def epoch_cost(data_dir: str, config: str, epochs: int, mixed_precision: bool) -> tuple[float, float]:
    """(wall, CPU) seconds of one steady epoch of `config` ("filters/depth/batch")."""
    from reproml.seg import training

    filters, depth, batch = (int(part) for part in config.split("/"))
    hp = {"learning_rate": 1e-3, "base_filters": filters, "depth": depth, "batch_size": batch, "dropout": 0.1}
    training.configure_device(mixed_precision)
    spent = []
    for n in (1, 1 + epochs):
        training.set_determinism(42)
        start, cpu = time.perf_counter(), _cpu_seconds()
        with tempfile.TemporaryDirectory() as scratch:
            training.train_model(data_dir, hp, epochs=n, output_dir=scratch)
        spent.append((time.perf_counter() - start, _cpu_seconds() - cpu))
    return (spent[1][0] - spent[0][0]) / epochs, (spent[1][1] - spent[0][1]) / epochs


def hyperband_schedule(max_epochs: int, factor: int, iterations: int, max_trials: int) -> tuple[int, int]:
    """(trials, epochs trained in all) of keras-tuner's Hyperband, replayed with random scores."""
    import keras_tuner as kt

    space = kt.HyperParameters()
    space.Float("x", 0.0, 1.0)
    oracle = kt.oracles.HyperbandOracle(objective=kt.Objective("val_loss", "min"), max_epochs=max_epochs,
                                        factor=factor, hyperband_iterations=iterations, seed=1,
                                        hyperparameters=space)
    if max_trials:
        oracle.max_trials = max_trials  # as reproml.seg.tuning.search caps it
    scores, trials, epochs = random.Random(0), 0, 0
    with tempfile.TemporaryDirectory(prefix="reproml-hyperband-") as scratch:  # the oracle writes its trials
        oracle._set_project_dir(scratch, "replay")
        while (trial := oracle.create_trial("replay")).status != "STOPPED":
            values = trial.hyperparameters.values
            epochs += values["tuner/epochs"] - values["tuner/initial_epoch"]
            trials += 1
            oracle.update_trial(trial.trial_id, {"val_loss": scores.random()})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
    return trials, epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="a transform output folder (training/ and validation/)")
    parser.add_argument("--configs", nargs="*", default=["16/4/16", "32/4/8"], help="filters/depth/batch")
    parser.add_argument("--epochs", type=int, default=2, help="steady epochs timed per configuration")
    parser.add_argument("--mixed-precision", action="store_true", help="bfloat16 on a CPU, float16 on a GPU")
    parser.add_argument("--hyperband", nargs="*", default=[], help="max_epochs,factor,iterations,max_trials")
    args = parser.parse_args()
    for spec in args.hyperband:
        trials, epochs = hyperband_schedule(*(int(part) for part in spec.split(",")))
        print(f"hyperband {spec}: {trials} trials, {epochs} epochs in all")
    if args.data:
        precision = "mixed precision" if args.mixed_precision else "float32"
        for config in args.configs:
            wall, cpu = epoch_cost(args.data, config, args.epochs, args.mixed_precision)
            print(f"U-Net {config} ({precision}): {wall:.1f} s wall, {cpu:.1f} CPU-s per epoch; "
                  f"about {cpu / 1.6:.1f} s on an idle 2-core machine")


if __name__ == "__main__":
    main()
