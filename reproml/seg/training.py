"""Training: determinism switch, device choice, hyper-parameter validation, compile and fit, fingerprint.

A deterministic run (`set_determinism(seed, True)`) seeds Python, NumPy and TensorFlow and enables
TensorFlow op determinism, so two runs on the same machine give bit-identical weights; the saved
`.keras` file still differs (it carries a timestamp), which is why runs are compared by
`weights_fingerprint`, a sha256 over the weight arrays.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from reproml.seg import dataset
from reproml.seg.recipe import DEFAULT_RECIPE, Recipe, batches_per_epoch, make_loss, make_optimizer
from reproml.seg.unet import build_unet, check_size

# The hyper-parameters tune searches and optimal_hp.json may set, with their JSON types.
HP_TYPES: dict[str, type] = {
    "learning_rate": float,
    "base_filters": int,
    "depth": int,
    "batch_size": int,
    "dropout": float,
}


# What a run uses for a hyper-parameter that neither a parameter nor optimal_hp.json sets.
DEFAULT_HP: dict[str, int | float] = {
    "learning_rate": 0.001,
    "base_filters": 16,
    "depth": 4,
    "batch_size": 16,
    "dropout": 0.1,
}


# What a run may select its kept epoch by: the lowest validation loss or the highest validation mean IoU.
SELECT_BY: tuple[str, ...] = ("val_loss", "val_mean_iou")


class HyperParameterError(ValueError):
    """A hyper-parameter set (e.g. optimal_hp.json) has an unknown key, a wrong type or a bad value."""


def _accepted() -> str:
    return ", ".join(f"{key} ({kind.__name__})" for key, kind in HP_TYPES.items())


def validate_hp(hp: object, source: str = "hyper-parameters") -> dict[str, int | float]:
    """Check a hyper-parameter mapping against HP_TYPES; a subset of the keys is allowed.

    An int is accepted where a float is expected (JSON writes 1.0 as 1 in some tools); a float is not
    accepted for an int, and a bool is never a number here.

    Args:
        hp: The parsed mapping.
        source: Where it came from (a file path), named in error messages.

    Returns:
        The mapping with values converted to the declared types, in HP_TYPES order.

    Raises:
        HyperParameterError: naming the offending key and the accepted keys and types.
    """
    if not isinstance(hp, Mapping):
        raise HyperParameterError(f"{source}: expected a JSON object of {_accepted()}; got {type(hp).__name__}")
    for key, value in hp.items():
        if key not in HP_TYPES:
            raise HyperParameterError(f"{source}: unknown key {key!r}; accepted keys: {_accepted()}")
        kind = HP_TYPES[key]
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not numeric or (kind is int and not isinstance(value, int)):
            raise HyperParameterError(
                f"{source}: key {key!r} must be {kind.__name__}, got {type(value).__name__} {value!r}; "
                f"accepted keys: {_accepted()}"
            )
    out = {key: HP_TYPES[key](hp[key]) for key in HP_TYPES if key in hp}
    problems = [
        f"{key}={out[key]!r} (must be {rule})"
        for key, ok, rule in (
            ("learning_rate", lambda v: v > 0, "> 0"),
            ("base_filters", lambda v: v >= 1, ">= 1"),
            ("depth", lambda v: v >= 1, ">= 1"),
            ("batch_size", lambda v: v >= 1, ">= 1"),
            ("dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
        )
        if key in out and not ok(out[key])
    ]
    if problems:
        raise HyperParameterError(f"{source}: bad value {'; '.join(problems)}")
    return out


def load_hp_file(path: str | Path) -> dict[str, int | float]:
    """Read and validate a hyper-parameter JSON file (tune's optimal_hp.json)."""
    path = Path(path)
    try:
        parsed = json.loads(path.read_text())
    except FileNotFoundError:
        raise HyperParameterError(f"{path}: hyper-parameter file not found") from None
    except json.JSONDecodeError as err:
        raise HyperParameterError(f"{path}: not valid JSON ({err})") from None
    return validate_hp(parsed, source=str(path))


def resolve_hp(given: Mapping[str, int | float | None], hp_file: str | Path = "") -> tuple[dict, dict]:
    """The hyper-parameters of a run: a given value wins over optimal_hp.json, which wins over DEFAULT_HP.

    Args:
        given: The notebook's hyper-parameter parameters; None means "not given".
        hp_file: Tune's optimal_hp.json, or "" for none.

    Returns:
        (hyper-parameters, where each came from: "parameter", "hp_file" or "default").
    """
    explicit = validate_hp({k: v for k, v in given.items() if v is not None}, source="notebook parameters")
    from_file = load_hp_file(hp_file) if hp_file else {}
    hp, origin = {}, {}
    for key in HP_TYPES:
        for layer, name in ((explicit, "parameter"), (from_file, "hp_file"), (DEFAULT_HP, "default")):
            if key in layer:
                hp[key], origin[key] = layer[key], name
                break
    return hp, origin


def set_determinism(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow; with deterministic=True also enable TF op determinism.

    Op determinism is process-wide and cannot be switched off again in the same process.
    """
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def bfloat16_problem() -> str | None:
    """None when this CPU's kernels run a bfloat16 convolution and its gradient; otherwise the error.

    oneDNN has bfloat16 convolutions from AVX-512 on (native with AVX512-BF16 or AMX, emulated on plain
    AVX-512); on an AVX2-only CPU the first convolution of a mixed-precision model fails.
    """
    try:
        images, kernel = tf.zeros([1, 4, 4, 3], tf.bfloat16), tf.zeros([3, 3, 3, 2], tf.bfloat16)
        with tf.GradientTape() as tape:
            tape.watch(kernel)
            out = tf.nn.conv2d(images, kernel, 1, "SAME")
        tape.gradient(out, kernel).numpy()
        return None
    except tf.errors.OpError as error:
        # oneDNN's own words, without TensorFlow's node names and source file around them
        text = error.message.splitlines()[0].split("message: ", 1)[-1].split(", in file", 1)[0]
        return f"{type(error).__name__}: {text[:160]}"


def configure_device(mixed_precision: bool = False) -> dict[str, object]:
    """Use the GPU when TensorFlow sees one (Keras places ops there itself) and set the precision policy.

    Mixed precision is float16 on a GPU and bfloat16 on a CPU (where float16 kernels are slow). A CPU whose
    kernels cannot run bfloat16 (no AVX-512) trains in float32 instead, and `precision_note` says why.

    Returns:
        dict with device ("GPU" or "CPU"), gpus (their names), precision_policy, and precision_note when
        the policy is not the one asked for.
    """
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            # Grow GPU memory on demand, so a notebook kernel does not claim the whole card.
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass  # already initialised by an earlier call in this process: the setting holds
    policy = ("mixed_float16" if gpus else "mixed_bfloat16") if mixed_precision else "float32"
    found = {}
    problem = bfloat16_problem() if policy == "mixed_bfloat16" else None
    if problem:
        policy = "float32"
        found["precision_note"] = (f"bfloat16 was asked for, but this CPU's kernels cannot run it ({problem}); "
                                   "training in float32, which is slower but gives the same kind of model")
    keras.mixed_precision.set_global_policy(policy)
    return {"device": "GPU" if gpus else "CPU", "gpus": [gpu.name for gpu in gpus], "precision_policy": policy,
            **found}


def weights_fingerprint(model: keras.Model) -> str:
    """sha256 over the model's weight arrays in order (dtype, shape and bytes of each)."""
    digest = hashlib.sha256()
    for weight in model.weights:
        array = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def compile_model(
    model: keras.Model,
    learning_rate: float,
    recipe: Recipe = DEFAULT_RECIPE,
    *,
    steps_per_epoch: int | None = None,
    epochs: int | None = None,
    class_counts: np.ndarray | None = None,
) -> None:
    """The recipe's optimiser and loss (see `reproml.seg.recipe`), pixel accuracy and mean IoU.

    Args:
        model: The model to compile.
        learning_rate: The peak learning rate.
        recipe: The training recipe.
        steps_per_epoch, epochs: Length of the run; needed by a learning-rate schedule.
        class_counts: Training pixels per class, for the "weighted_ce" loss.
    """
    num_classes = model.output_shape[-1]
    model.compile(
        optimizer=make_optimizer(recipe, learning_rate, steps_per_epoch, epochs),
        loss=make_loss(recipe, class_counts),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.MeanIoU(num_classes, sparse_y_pred=False, name="mean_iou"),
        ],
    )


class Throughput(keras.callbacks.Callback):
    """Training images per second, timing only the training batches of each epoch (not validation)."""

    def __init__(self, images_per_epoch: int) -> None:
        super().__init__()
        self.images_per_epoch = images_per_epoch
        self.epoch_seconds: list[float] = []
        self._start = self._last = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = self._last = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_seconds.append(self._last - self._start)

    def images_per_second(self, full_size_from: int = 0) -> float:
        """Steady-state rate at full size: epochs before `full_size_from` (low-res ones) and the first full-size
        epoch (graph tracing, cache fill) are left out when there are more."""
        full_size = self.epoch_seconds[full_size_from:]
        seconds = full_size[1:] or full_size
        return self.images_per_epoch * len(seconds) / sum(seconds) if sum(seconds) > 0 else float("nan")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 90 * 60 else f"{seconds / 3600:.1f} h"


class EpochProgress(keras.callbacks.Callback):
    """One line per epoch for a person waiting: losses, the selection metric and its best so far, time left.

    Replaces Keras's own line (`verbose=2`), which names neither the epoch's number among its lines nor
    how long the rest will take; a long stage's heartbeat repeats the newest line.
    """

    def __init__(self, epochs: int, select_by: str, clock: Callable[[], float] = time.perf_counter,
                 out: Callable[[str], None] | None = None, costs: Sequence[float] | None = None) -> None:
        super().__init__()
        self.epochs, self.select_by, self.clock = epochs, select_by, clock
        # Relative cost of each epoch (a low-res epoch costs less), so time left is not judged by cheap ones.
        self.costs = list(costs) if costs is not None else [1.0] * epochs
        if len(self.costs) != epochs:
            raise ValueError(f"need one cost per epoch: {len(self.costs)} for {epochs} epochs")
        self.out = out or functools.partial(print, flush=True)
        self.sign = -1 if select_by == "val_loss" else 1  # lower loss is better, higher IoU
        self.durations: list[float] = []
        self.best: tuple[float, int] | None = None  # (value, epoch)
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = self.clock()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        self.durations.append(self.clock() - self._start)
        value = logs.get(self.select_by)
        # Strictly better only, so a tie keeps the earlier epoch, as the best-epoch checkpoint does.
        if value is not None and (self.best is None or self.sign * (value - self.best[0]) > 0):
            self.best = (value, epoch + 1)
        shown = ["loss", "val_loss"] + ([self.select_by] if self.select_by != "val_loss" else [])
        parts = []
        for name in shown:
            if name in logs:
                part = f"{name} {logs[name]:.3f}"
                if name == self.select_by and self.best is not None:
                    part += " (best)" if self.best[1] == epoch + 1 else f" (best {self.best[0]:.3f} at epoch {self.best[1]})"
                parts.append(part)
        # The first epoch traces the graph and fills the cache: the estimate uses the later ones once it can.
        done = len(self.durations)
        steady = slice(1, done) if done > 1 else slice(0, done)
        per_cost = sum(self.durations[steady]) / sum(self.costs[:done][steady])
        left = per_cost * sum(self.costs[epoch + 1:])
        when = f"~{_duration(left)} left" if epoch + 1 < self.epochs else f"done in {_duration(sum(self.durations))}"
        width = len(str(self.epochs))
        self.out(f"epoch {epoch + 1:>{width}}/{self.epochs}  " + "  ".join(parts)
                 + f"  {self.durations[-1]:.0f} s  {when}")


@dataclass
class FitResult:
    """What a training run produced besides the model itself."""

    history: dict[str, list[float]]
    epochs: int
    best_epoch: int
    seconds: float
    images_per_second: float


def fit(
    model: keras.Model,
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset,
    *,
    epochs: int,
    output_dir: str | Path,
    n_train_images: int,
    restore_best: bool = True,
    verbose: int = 2,
    select_by: str = "val_loss",
    extra_callbacks: tuple[keras.callbacks.Callback, ...] | list = (),
    first_epochs_from: tuple[tf.data.Dataset, int] | None = None,
    first_epochs_cost: float = 1.0,
) -> FitResult:
    """Fit a compiled model, writing TensorBoard logs to output_dir/logs and checkpoints to output_dir/checkpoints.

    Args:
        model: A compiled model.
        train_ds: Training batches.
        val_ds: Validation batches (the best-epoch checkpoint monitors `select_by` on them).
        epochs: Number of epochs.
        output_dir: Folder for logs/ and checkpoints/ (best.weights.h5, last.weights.h5).
        n_train_images: Images per training epoch, for the throughput.
        restore_best: Load the weights of the best epoch (by `select_by`) at the end.
        verbose: 2: one `EpochProgress` line per epoch (readable in an executed notebook); 0: silent.
        select_by: One of SELECT_BY: "val_loss" (lowest) or "val_mean_iou" (highest).
        extra_callbacks: More Keras callbacks (benchmarks' timers, tune's progress line).
        first_epochs_from: (dataset, n): the first n epochs draw their batches from this dataset instead of
            train_ds (progressive resizing: the same samples, smaller); validation, checkpoints and the
            epoch count are those of one run.
        first_epochs_cost: What one of those epochs costs against a full one (for the time-left estimate).

    Returns:
        The FitResult; history maps metric names to per-epoch floats.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if select_by not in SELECT_BY:
        raise ValueError(f"select_by must be one of {', '.join(SELECT_BY)}; got {select_by!r}")
    mode = "min" if select_by == "val_loss" else "max"
    output_dir = Path(output_dir)
    checkpoints = output_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    throughput = Throughput(n_train_images)
    # With a weight average (the recipe's ema_epochs), validation and both checkpoints see the average:
    # SwapEMAWeights swaps it in for evaluation and at each epoch's end, before the checkpoints save.
    ema = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if getattr(model.optimizer, "use_ema", False) else []
    callbacks = [
        throughput,
        *ema,
        keras.callbacks.TensorBoard(str(output_dir / "logs"), histogram_freq=0, write_graph=False, profile_batch=0),
        keras.callbacks.ModelCheckpoint(
            str(checkpoints / "best.weights.h5"), monitor=select_by, mode=mode, save_best_only=True,
            save_weights_only=True,
        ),
        keras.callbacks.ModelCheckpoint(str(checkpoints / "last.weights.h5"), save_weights_only=True),
        *extra_callbacks,
    ]
    first = first_epochs_from[1] if first_epochs_from is not None else 0
    if not 0 <= first < epochs:
        raise ValueError(f"the first epochs' dataset must leave epochs at full size: got {first} of {epochs}")
    if verbose:
        callbacks.append(EpochProgress(epochs, select_by, costs=[first_epochs_cost] * first + [1.0] * (epochs - first)))
    phases = [(first_epochs_from[0], first), (train_ds, epochs)] if first else [(train_ds, epochs)]
    start = time.perf_counter()
    history: dict[str, list[float]] = {}
    begin = 0
    # One model.fit per phase, numbering epochs on (initial_epoch); the callbacks, and so the best-epoch
    # checkpoint and the learning-rate schedule (on the optimizer's step count), span both.
    for ds, end in phases:
        keras_history = model.fit(
            ds, validation_data=val_ds, initial_epoch=begin, epochs=end, callbacks=callbacks, verbose=0, shuffle=False
        )
        for key, values in keras_history.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
        begin = end
    seconds = time.perf_counter() - start
    history = dict(sorted(history.items()))
    # First best epoch on ties, as ModelCheckpoint keeps (it saves only on a strict improvement).
    pick = np.argmin if mode == "min" else np.argmax
    best_epoch = int(pick(history[select_by])) + 1
    if restore_best:
        model.load_weights(str(checkpoints / "best.weights.h5"))
    return FitResult(history, epochs, best_epoch, seconds, throughput.images_per_second(full_size_from=first))


def low_res_seed(seed: int) -> int:
    """The low-res pipeline's seed: derived from the run's seed, and unlike any seed a person would pick."""
    return int.from_bytes(hashlib.sha256(f"low-res/{seed}".encode()).digest()[:4], "big")


def train_model(
    data_dir: str | Path,
    hp: Mapping[str, int | float],
    *,
    epochs: int,
    output_dir: str | Path,
    seed: int = 42,
    recipe: Recipe = DEFAULT_RECIPE,
    batch_norm: bool = True,
    encoder: str = "scratch",
    weights: str | None = None,
    limit: int | None = None,
    select_by: str = "val_mean_iou",
    extra_callbacks: tuple[keras.callbacks.Callback, ...] | list = (),
) -> tuple[keras.Model, FitResult]:
    """Build, compile and fit a U-Net on transform's training split, validating on its validation split.

    Args:
        data_dir: Transform's output root.
        hp: All of HP_TYPES' keys (validated here).
        epochs: Number of epochs.
        output_dir: Where logs/ and checkpoints/ go.
        seed: Seed of shuffling and augmentation (weights are seeded by set_determinism).
        recipe: Augmentation, loss, weight decay and learning-rate schedule (`reproml.seg.recipe`).
        batch_norm: Batch normalisation in the U-Net.
        encoder: "scratch" or "mobilenetv2".
        weights: None or "imagenet" (mobilenetv2 only).
        limit: Use at most this many samples per split (tests, quick looks).
        select_by: Which epoch is kept: one of SELECT_BY.
        extra_callbacks: More Keras callbacks for the fit (benchmarks keep other epochs' weights).

    Returns:
        The trained model (best validation epoch) and its FitResult. With the recipe's low_res_epochs
        a model of any input size trains, and its weights are copied into the returned fixed-size model.
    """
    hp = validate_hp(hp)
    missing = sorted(set(HP_TYPES) - set(hp))
    if missing:
        raise HyperParameterError(f"missing hyper-parameters {missing}; need {_accepted()}")
    train_dir, val_dir = dataset.split_dir(data_dir, "training"), dataset.split_dir(data_dir, "validation")
    train_ds = dataset.make_dataset(
        train_dir, hp["batch_size"], shuffle=True, augment=recipe.augment, seed=seed, limit=limit
    )
    val_ds = dataset.make_dataset(val_dir, hp["batch_size"], limit=limit)
    img_size = dataset.image_size(train_dir)
    architecture = dict(depth=hp["depth"], base_filters=hp["base_filters"], dropout=hp["dropout"],
                        batch_norm=batch_norm, encoder=encoder, weights=weights)
    first_epochs_from = None
    if recipe.low_res_epochs:
        if recipe.low_res_epochs >= epochs:
            raise ValueError(f"low_res_epochs ({recipe.low_res_epochs}) must be fewer than epochs ({epochs}): "
                             "the last epochs train at the full image size")
        check_size(recipe.low_res_size, hp["depth"], name="low_res_size")
        # A seed of its own: each pipeline's draws start from its seed, so one shared with the full-size
        # batches would make the full-size phase replay the low-res phase's shuffles and augmentation.
        low_res_ds = dataset.make_dataset(train_dir, hp["batch_size"], shuffle=True, augment=recipe.augment,
                                          seed=low_res_seed(seed), limit=limit, resize=recipe.low_res_size)
        first_epochs_from = (low_res_ds, recipe.low_res_epochs)
    model = build_unet(None if first_epochs_from else img_size, **architecture)
    n_train = min(dataset.count_samples(train_dir), limit or np.inf)
    compiled = dict(
        learning_rate=hp["learning_rate"], recipe=recipe, epochs=epochs,
        steps_per_epoch=batches_per_epoch(int(n_train), hp["batch_size"]),
        class_counts=dataset.class_pixel_counts(train_dir, limit) if recipe.loss == "weighted_ce" else None,
    )
    compile_model(model, **compiled)
    result = fit(model, train_ds, val_ds, epochs=epochs, output_dir=output_dir, n_train_images=int(n_train),
                 select_by=select_by, extra_callbacks=extra_callbacks, first_epochs_from=first_epochs_from,
                 first_epochs_cost=(recipe.low_res_size / img_size) ** 2)
    if first_epochs_from:
        # Saving and serving need a fixed input size: the same layers at img_size, the trained weights.
        fixed = build_unet(img_size, **architecture)
        fixed.set_weights(model.get_weights())
        compile_model(fixed, **compiled)
        model = fixed
    return model, result
