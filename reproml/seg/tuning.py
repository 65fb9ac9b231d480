"""Hyper-parameter search with keras-tuner's Hyperband over the U-Net's knobs.

Hyperband (not Bayesian optimisation: keras-tuner's needs SciPy and scikit-learn, which the pipeline
image does not carry) samples configurations from a seeded random state and trains the promising ones
for longer. With the same seed, search space, data and op determinism, two searches try the same
configurations and get the same scores. Every trial's weights start from the same seed.
"""

from __future__ import annotations

import csv
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import keras_tuner as kt

from reproml.seg import dataset, training
from reproml.seg.recipe import DEFAULT_RECIPE, Recipe
from reproml.seg.unet import build_unet

OBJECTIVE = "val_loss"
TRIAL_COLUMNS = ("trial_id", "status", "score", "epochs", *training.HP_TYPES)


def parse_choices(text: str, name: str) -> tuple[int, ...]:
    """Comma-separated positive integers ("8,16,32") as a sorted tuple; names the parameter on error."""
    try:
        values = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated integers like '8,16,32', got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"{name}: expected at least one integer >= 1, got {text!r}")
    return values


@dataclass(frozen=True)
class SearchSpace:
    """Ranges searched: learning rate on a log scale, dropout in steps of 0.1, the rest as choices."""

    learning_rate: tuple[float, float] = (1e-4, 1e-2)
    base_filters: tuple[int, ...] = (8, 16, 32)
    depth: tuple[int, ...] = (2, 3, 4)
    batch_size: tuple[int, ...] = (8, 16)
    dropout_max: float = 0.5

    def checked(self, img_size: int) -> SearchSpace:
        """This space with depths the image size cannot take (img_size % 2**depth != 0) removed."""
        lo, hi = self.learning_rate
        if not 0 < lo < hi:
            raise ValueError(f"learning_rate range must satisfy 0 < min < max, got {self.learning_rate}")
        if not 0 <= self.dropout_max < 1:
            raise ValueError(f"dropout_max must be in [0, 1), got {self.dropout_max}")
        depths = tuple(d for d in self.depth if img_size % 2**d == 0)
        if not depths:
            raise ValueError(f"no depth in {self.depth} divides img_size {img_size} (need img_size % 2**depth == 0)")
        return SearchSpace(self.learning_rate, self.base_filters, depths, self.batch_size, self.dropout_max)


class UNetHyperModel(kt.HyperModel):
    """Builds a U-Net per trial and fits it on datasets batched with the trial's batch size."""

    def __init__(self, data_dir: str | Path, space: SearchSpace, seed: int, recipe: Recipe = DEFAULT_RECIPE,
                 limit: int | None = None) -> None:
        super().__init__(name="unet")
        self.train_dir = dataset.split_dir(data_dir, "training")
        self.val_dir = dataset.split_dir(data_dir, "validation")
        self.img_size = dataset.image_size(self.train_dir)
        self.space = space.checked(self.img_size)
        # Trials train for different numbers of epochs, so a schedule over "the run" has no length here:
        # tune scores the recipe's loss, augmentation and weight decay at a constant learning rate, on the
        # trained weights (an average over epochs would lag behind in trials of a few epochs), every epoch at
        # the data's size (a trial of a few epochs has no early phase to shrink).
        self.recipe = replace(recipe, schedule="constant", ema_epochs=0.0, low_res_epochs=0)
        self.class_counts = dataset.class_pixel_counts(self.train_dir, limit) if recipe.loss == "weighted_ce" else None
        self.seed, self.limit = seed, limit
        # keras-tuner clears the Keras session before every trial, and the global dtype policy with it:
        # the precision in effect now (`training.configure_device`) is set again for every trial.
        self.policy = keras.mixed_precision.global_policy().name

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        """A compiled U-Net for the trial's hyper-parameters, initialised from the search seed."""
        keras.mixed_precision.set_global_policy(self.policy)
        keras.utils.set_random_seed(self.seed)
        space = self.space
        learning_rate = hp.Float("learning_rate", *space.learning_rate, sampling="log")
        base_filters = hp.Choice("base_filters", list(space.base_filters))
        depth = hp.Choice("depth", list(space.depth))
        hp.Choice("batch_size", list(space.batch_size))
        # Rounded steps of 0.1 (a float range with a step gives values like 0.30000000000000004).
        dropout = hp.Choice("dropout", [round(0.1 * k, 1) for k in range(int(space.dropout_max * 10 + 1e-9) + 1)])
        model = build_unet(self.img_size, depth=depth, base_filters=base_filters, dropout=dropout)
        training.compile_model(model, learning_rate, self.recipe, class_counts=self.class_counts)
        return model

    def fit(self, hp: kt.HyperParameters, model: keras.Model, *args, **kwargs) -> keras.callbacks.History:
        """Fit on the training split batched by the trial's batch_size, validating on the validation split."""
        batch_size = hp.get("batch_size")
        train_ds = dataset.make_dataset(
            self.train_dir, batch_size, shuffle=True, augment=self.recipe.augment, seed=self.seed, limit=self.limit
        )
        val_ds = dataset.make_dataset(self.val_dir, batch_size, limit=self.limit)
        kwargs.pop("validation_data", None)
        return model.fit(train_ds, validation_data=val_ds, shuffle=False, **kwargs)


@dataclass
class SearchResult:
    """The trials in id order (one dict per row of trials.csv) and the best hyper-parameters."""

    trials: list[dict[str, object]]
    best_hp: dict[str, int | float]
    best_score: float


def trial_line(done: int, planned: int, hp: dict, score: float | None, best: float | None, elapsed_s: float) -> str:
    """One line per finished trial: n of N, its hyper-parameters, its and the best validation loss, elapsed."""
    values = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in hp.items())
    def loss(x):
        return "n/a" if x is None or math.isnan(x) else f"{x:.4f}"
    return (f"trial {done} of {planned}: {values}; val_loss {loss(score)}, best so far {loss(best)}; "
            f"{elapsed_s / 60:.1f} min elapsed")


class ReportingHyperband(kt.Hyperband):
    """keras-tuner's Hyperband that reports one `trial_line` per finished trial (its `on_trial_end` hook).

    Args:
        report: where lines go (the notebook's output, hence the datum's log and its heartbeat).
    """

    def __init__(self, *args, report: Callable[[str], None] = print, **kwargs):
        super().__init__(*args, **kwargs)
        self._report, self._started, self._done = report, time.monotonic(), 0

    def planned_trials(self) -> int:
        """Trials Hyperband's schedule plans (rounds of every bracket, every iteration), capped by max_trials."""
        oracle = self.oracle
        planned = oracle.hyperband_iterations * sum(
            oracle._get_size(b, r) for b in range(oracle._get_num_brackets()) for r in range(oracle._get_num_rounds(b)))
        return min(planned, oracle.max_trials) if oracle.max_trials else planned

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self._done += 1
        scores = [t.score for t in self.oracle.trials.values() if t.score is not None]
        hp = {key: trial.hyperparameters.values.get(key) for key in training.HP_TYPES}
        self._report(trial_line(self._done, max(self._done, self.planned_trials()), hp, trial.score,
                                min(scores) if scores else None, time.monotonic() - self._started))


def search(
    data_dir: str | Path,
    *,
    space: SearchSpace,
    max_epochs: int,
    max_trials: int = 0,
    factor: int = 3,
    hyperband_iterations: int = 1,
    seed: int = 42,
    recipe: Recipe = DEFAULT_RECIPE,
    work_dir: str | Path | None = None,
    limit: int | None = None,
    verbose: int = 0,
    report: Callable[[str], None] = print,
) -> SearchResult:
    """Run a Hyperband search and return its trials and the best hyper-parameters (lowest val_loss).

    Args:
        data_dir: Transform's output root.
        space: The search space.
        max_epochs: Most epochs any one model is trained for.
        max_trials: Upper bound on trials over all brackets (0: Hyperband's own count).
        factor: Hyperband's reduction factor (3 keeps the best third each round).
        hyperband_iterations: Times the whole Hyperband schedule is run.
        seed: Seed of the sampling, the weights and the data order.
        recipe: The training recipe trials use (at a constant learning rate).
        work_dir: Where keras-tuner keeps its trial files (default: a temporary folder, removed after).
        limit: Use at most this many samples per split.
        verbose: Keras verbosity inside trials.
        report: receives one line per finished trial (`trial_line`).

    Returns:
        The SearchResult.
    """
    if max_epochs < 1 or factor < 2 or hyperband_iterations < 1 or max_trials < 0:
        raise ValueError(
            f"need max_epochs >= 1, factor >= 2, hyperband_iterations >= 1, max_trials >= 0; got "
            f"{max_epochs}, {factor}, {hyperband_iterations}, {max_trials}"
        )
    hypermodel = UNetHyperModel(data_dir, space, seed, recipe, limit=limit)
    with tempfile.TemporaryDirectory(prefix="reproml-tune-") as scratch:
        tuner = ReportingHyperband(
            hypermodel,
            report=report,
            objective=kt.Objective(OBJECTIVE, direction="min"),
            max_epochs=max_epochs,
            factor=factor,
            hyperband_iterations=hyperband_iterations,
            seed=seed,
            directory=str(work_dir or scratch),
            project_name="unet",
            overwrite=True,
        )
        if max_trials:
            # The oracle stops handing out trials at max_trials (a documented Oracle attribute).
            tuner.oracle.max_trials = max_trials
        tuner.search(epochs=max_epochs, verbose=verbose)
        trials = [_trial_row(t) for t in sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)]
        best = tuner.oracle.get_best_trials(1)[0]
    best_hp = training.validate_hp({k: best.hyperparameters.get(k) for k in training.HP_TYPES}, "best trial")
    return SearchResult(trials, best_hp, float(best.score))


def _trial_row(trial: kt.engine.trial.Trial) -> dict[str, object]:
    values = trial.hyperparameters.values
    score = trial.score if trial.score is not None else math.nan
    row = {"trial_id": trial.trial_id, "status": trial.status, "score": float(score),
           "epochs": int(values.get("tuner/epochs", 0))}
    row.update({key: values.get(key) for key in training.HP_TYPES})
    return row


def write_trials_csv(trials: list[dict[str, object]], path: str | Path) -> None:
    """trials.csv with TRIAL_COLUMNS; floats with 6 significant digits so runs diff cleanly."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=TRIAL_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for trial in trials:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in trial.items()})
