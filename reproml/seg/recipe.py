"""How a model is trained, besides its size: augmentation, loss, weight decay, learning-rate schedule.

The hyper-parameters (`training.HP_TYPES`) say how big the U-Net is and how fast it learns; tune
searches them. The recipe is the rest, chosen once by measurement: `bench/recipe_ablation.py` trains one
model per change on the real data and the train notebook argues each default from its table.

- augment: "none", "flip" (horizontal flip and brightness) or "strong" (flip, a random zoom into
  56-100 % of the area, a rotation of up to 10 degrees, colour jitter; image and trimap moved as one,
  the trimap with nearest-neighbour sampling so no new labels appear); see `dataset.make_dataset`.
- loss: "ce" (pixel cross-entropy), "ce_dice" (plus soft Dice over the batch, which weighs each class
  by its own overlap, so the thin border class cannot vanish into the average) or "weighted_ce"
  (cross-entropy with class weights of inverse square-root pixel frequency).
- weight_decay: 0 trains with Adam; more trains with AdamW and that decoupled decay.
- schedule: "constant", or "warmup_cosine" (linear warm-up over warmup_epochs from a tenth of the
  learning rate, then cosine decay to a hundredth of it at the last epoch).
- ema_epochs: 0 keeps the trained weights; more keeps an exponential moving average of them over about
  that many epochs (momentum 1 - 1 / (ema_epochs x steps per epoch)), which validation, the checkpoints
  and the final model use (`training.fit` swaps it in).
- low_res_epochs, low_res_size: 0 trains every epoch at the transform's image size; more trains the first
  low_res_epochs epochs on images shrunk to low_res_size px after augmentation (progressive resizing: a
  96-px epoch costs ~0.56 of a 128-px one), validating at full size throughout, so the epoch kept is
  chosen as before (`training.train_model`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import keras
import numpy as np
from keras import ops

AUGMENTS: tuple[str, ...] = ("none", "flip", "strong")
LOSSES: tuple[str, ...] = ("ce", "ce_dice", "weighted_ce")
SCHEDULES: tuple[str, ...] = ("constant", "warmup_cosine")


@dataclass(frozen=True)
class Recipe:
    """The training recipe; the defaults are what bench/recipe_ablation.py measured best (see train.py)."""

    augment: str = "strong"
    loss: str = "ce"
    weight_decay: float = 0.0
    schedule: str = "warmup_cosine"
    warmup_epochs: int = 1
    ema_epochs: float = 0.0
    low_res_epochs: int = 0
    low_res_size: int = 96

    def __post_init__(self) -> None:
        problems = [
            f"{name}={value!r} (choose one of {', '.join(choices)})"
            for name, value, choices in (("augment", self.augment, AUGMENTS), ("loss", self.loss, LOSSES),
                                         ("schedule", self.schedule, SCHEDULES))
            if value not in choices
        ]
        if not self.weight_decay >= 0:
            problems.append(f"weight_decay={self.weight_decay!r} (must be >= 0)")
        if self.warmup_epochs < 0:
            problems.append(f"warmup_epochs={self.warmup_epochs!r} (must be >= 0)")
        if not self.ema_epochs >= 0:
            problems.append(f"ema_epochs={self.ema_epochs!r} (must be >= 0)")
        if self.low_res_epochs < 0:
            problems.append(f"low_res_epochs={self.low_res_epochs!r} (must be >= 0)")
        if self.low_res_size < 1:
            problems.append(f"low_res_size={self.low_res_size!r} (must be >= 1)")
        if problems:
            raise ValueError(f"bad training recipe: {'; '.join(problems)}")

    def to_json(self) -> dict[str, object]:
        return asdict(self)


DEFAULT_RECIPE = Recipe()


def class_weights(counts: np.ndarray) -> list[float]:
    """Inverse square-root frequency weights, scaled so that the average pixel still weighs 1.

    Args:
        counts: Pixels of each class in the training split (an absent class gets the largest weight).

    Returns:
        One weight per class.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() <= 0:
        raise ValueError("class_weights needs at least one labelled pixel")
    freq = np.maximum(counts / counts.sum(), 1e-6)
    weights = freq**-0.5
    return [round(float(w), 6) for w in weights / (freq * weights).sum()]


@keras.saving.register_keras_serializable(package="reproml")
class SegmentationLoss(keras.losses.Loss):
    """Pixel cross-entropy on logits, optionally class-weighted, plus an optional soft Dice term.

    y_true holds class ids (B, H, W, 1); y_pred float logits (B, H, W, C). The Dice term is computed over
    the whole batch (per class: 2|P*Y| / (|P| + |Y|), averaged over classes), so a class absent from one
    image does not make that image's term undefined.
    """

    def __init__(self, dice_weight: float = 0.0, class_weights: list[float] | None = None,
                 name: str = "segmentation_loss", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.dice_weight = float(dice_weight)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.squeeze(y_true, axis=-1), "int32")
        logits = ops.cast(y_pred, "float32")
        per_pixel = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        if self.class_weights is not None:
            per_pixel = per_pixel * ops.take(ops.convert_to_tensor(self.class_weights, "float32"), labels)
        loss = ops.mean(per_pixel, axis=(1, 2))
        if self.dice_weight:
            probs = ops.softmax(logits, axis=-1)
            onehot = ops.one_hot(labels, ops.shape(logits)[-1], dtype="float32")
            overlap = ops.sum(probs * onehot, axis=(0, 1, 2))
            total = ops.sum(probs, axis=(0, 1, 2)) + ops.sum(onehot, axis=(0, 1, 2))
            dice = (2.0 * overlap + 1.0) / (total + 1.0)
            loss = loss + self.dice_weight * (1.0 - ops.mean(dice))
        return loss

    def get_config(self) -> dict:
        return {**super().get_config(), "dice_weight": self.dice_weight, "class_weights": self.class_weights}


def make_loss(recipe: Recipe, class_counts: np.ndarray | None = None) -> SegmentationLoss:
    """The recipe's loss; "weighted_ce" needs the training split's pixel counts per class."""
    if recipe.loss == "weighted_ce":
        if class_counts is None:
            raise ValueError("loss 'weighted_ce' needs the training split's class pixel counts")
        return SegmentationLoss(class_weights=class_weights(class_counts))
    return SegmentationLoss(dice_weight=1.0 if recipe.loss == "ce_dice" else 0.0)


def learning_rate(recipe: Recipe, peak: float, steps_per_epoch: int | None = None, epochs: int | None = None):
    """The recipe's learning rate: the float itself, or a warm-up + cosine schedule over the whole run.

    A schedule spans the run, so it needs the run's length; without it a 1-step schedule would decay
    the rate to a hundredth after the first batch.
    """
    if recipe.schedule == "constant":
        return peak
    if steps_per_epoch is None or epochs is None:
        raise ValueError(f"the {recipe.schedule!r} schedule spans the run: give steps_per_epoch and epochs")
    total = max(1, steps_per_epoch * epochs)
    warmup = min(recipe.warmup_epochs * steps_per_epoch, total - 1)
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(peak, decay_steps=total, alpha=0.01)
    return keras.optimizers.schedules.CosineDecay(
        peak / 10, decay_steps=total - warmup, alpha=0.01, warmup_target=peak, warmup_steps=warmup
    )


def ema_momentum(recipe: Recipe, steps_per_epoch: int | None) -> float | None:
    """The weight average's momentum per step, or None when the recipe keeps no average."""
    if not recipe.ema_epochs:
        return None
    if steps_per_epoch is None:
        raise ValueError("ema_epochs is counted in epochs: give steps_per_epoch")
    return 1.0 - 1.0 / max(1.0, recipe.ema_epochs * steps_per_epoch)


def make_optimizer(recipe: Recipe, peak_learning_rate: float, steps_per_epoch: int | None = None,
                   epochs: int | None = None):
    """Adam, or AdamW when the recipe decays weights, on the recipe's learning rate (and weight average)."""
    rate = learning_rate(recipe, peak_learning_rate, steps_per_epoch, epochs)
    momentum = ema_momentum(recipe, steps_per_epoch)
    ema = {} if momentum is None else {"use_ema": True, "ema_momentum": momentum}
    if recipe.weight_decay > 0:
        return keras.optimizers.AdamW(rate, weight_decay=recipe.weight_decay, **ema)
    return keras.optimizers.Adam(rate, **ema)


def batches_per_epoch(n_images: int, batch_size: int) -> int:
    """Optimizer steps in one pass over n_images (the last batch may be short)."""
    return max(1, math.ceil(n_images / batch_size))
