"""The training recipe: strong augmentation, losses, optimiser and schedule, test-time augmentation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from release_helpers import tiny_model
from seg_ml_data import make_transform_output, one_epoch

from reproml.seg import dataset, inference, recipe, training
from reproml.seg.recipe import DEFAULT_RECIPE, Recipe
from reproml.seg.unet import build_unet

PROJECT = Path(__file__).resolve().parent.parent
TINY_HP = {"learning_rate": 0.01, "base_filters": 4, "depth": 2, "batch_size": 4, "dropout": 0.1}


@pytest.mark.unit
def test_a_bad_recipe_names_every_problem_and_the_choices():
    with pytest.raises(ValueError) as error:
        Recipe(augment="heavy", loss="focal", weight_decay=-1, schedule="cosine", warmup_epochs=-2, ema_epochs=-1)
    message = str(error.value)
    for expected in ("augment='heavy' (choose one of none, flip, strong)", "loss='focal' (choose one of ce, ce_dice",
                     "schedule='cosine'", "weight_decay=-1", "warmup_epochs=-2", "ema_epochs=-1"):
        assert expected in message


@pytest.mark.unit
def test_the_notebooks_defaults_are_the_recipes_defaults():
    """train and tune declare the recipe as parameters; their defaults must be the package's one recipe."""
    declared = {}
    for notebook in ("train", "tune"):
        text = (PROJECT / "notebooks" / f"{notebook}.py").read_text()
        declared[notebook] = {name: value for name, value in re.findall(r"^(\w+): \w+ = (\S+)", text, re.M)}
    defaults = DEFAULT_RECIPE.to_json()
    names = {"augment": "augment", "loss": "loss", "weight_decay": "weight_decay", "schedule": "lr_schedule",
             "warmup_epochs": "warmup_epochs", "ema_epochs": "ema_epochs", "low_res_epochs": "low_res_epochs",
             "low_res_size": "low_res_size"}
    for field, parameter in names.items():
        assert declared["train"][parameter] == repr(defaults[field]).replace("'", '"'), field
    for field in ("augment", "loss", "weight_decay"):
        assert declared["tune"][field] == declared["train"][field], field


@pytest.mark.unit
def test_class_weights_favour_the_rare_class_and_keep_the_average_pixel_at_one():
    counts = np.array([300, 600, 100])
    weights = recipe.class_weights(counts)
    assert weights[2] > weights[0] > weights[1]
    assert np.isclose(np.dot(counts / counts.sum(), weights), 1.0, atol=1e-5)
    assert np.isclose(weights[2] / weights[1], np.sqrt(6), atol=1e-4)  # inverse square-root frequency
    with pytest.raises(ValueError, match="at least one labelled pixel"):
        recipe.class_weights(np.zeros(3))


def _logits_for(labels: np.ndarray, confidence: float) -> np.ndarray:
    logits = np.zeros((*labels.shape, 3), np.float32)
    np.put_along_axis(logits, labels[..., None], confidence, axis=-1)
    return logits


def test_the_losses_agree_with_their_definitions():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(2, 8, 8)).astype(np.uint8)
    logits = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    ce = -np.take_along_axis(log_probs, labels[..., None].astype(int), axis=-1)[..., 0]

    plain = recipe.make_loss(Recipe(loss="ce"))
    assert np.isclose(float(plain(labels[..., None], logits)), ce.mean(), rtol=1e-5)

    counts = np.bincount(labels.ravel(), minlength=3)
    weighted = recipe.make_loss(Recipe(loss="weighted_ce"), counts)
    w = np.array(recipe.class_weights(counts))
    assert np.isclose(float(weighted(labels[..., None], logits)), (ce * w[labels]).mean(), rtol=1e-5)
    with pytest.raises(ValueError, match="class pixel counts"):
        recipe.make_loss(Recipe(loss="weighted_ce"))

    probs = np.exp(log_probs)
    onehot = np.eye(3)[labels]
    dice = (2 * (probs * onehot).sum(axis=(0, 1, 2)) + 1) / (probs.sum(axis=(0, 1, 2)) + onehot.sum(axis=(0, 1, 2)) + 1)
    with_dice = recipe.make_loss(Recipe(loss="ce_dice"))
    assert np.isclose(float(with_dice(labels[..., None], logits)), ce.mean() + 1 - dice.mean(), rtol=1e-5)


def test_dice_punishes_losing_the_thin_class_more_than_cross_entropy_does():
    """A prediction that calls the whole border background costs little pixel cross-entropy but a whole Dice class."""
    labels = np.ones((1, 32, 32), np.uint8)
    labels[0, 15:17, :] = 2  # a 2-pixel border line: 6 % of the pixels
    labels[0, :15, :] = 0
    good, border_lost = _logits_for(labels, 6.0), _logits_for(np.where(labels == 2, 1, labels).astype(np.uint8), 6.0)
    ce, ce_dice = recipe.make_loss(Recipe(loss="ce")), recipe.make_loss(Recipe(loss="ce_dice"))
    ce_cost = float(ce(labels[..., None], border_lost)) - float(ce(labels[..., None], good))
    dice_cost = float(ce_dice(labels[..., None], border_lost)) - float(ce_dice(labels[..., None], good))
    assert dice_cost > ce_cost + 0.25  # about a third of the Dice term: one class of three lost


def test_the_schedule_warms_up_then_decays_to_a_hundredth():
    schedule = recipe.learning_rate(Recipe(schedule="warmup_cosine", warmup_epochs=2), 1e-3, steps_per_epoch=10,
                                    epochs=10)
    rates = [float(schedule(step)) for step in (0, 10, 20, 60, 100)]
    assert np.isclose(rates[0], 1e-4) and rates[0] < rates[1] < rates[2]
    assert np.isclose(rates[2], 1e-3) and rates[2] > rates[3] > rates[4]
    assert np.isclose(rates[4], 1e-5, rtol=1e-3)
    assert recipe.learning_rate(Recipe(schedule="constant"), 1e-3, 10, 10) == 1e-3


def test_weight_decay_switches_to_adamw():
    import keras

    assert type(recipe.make_optimizer(Recipe(schedule="constant"), 1e-3)) is keras.optimizers.Adam
    adamw = recipe.make_optimizer(Recipe(weight_decay=0.05, schedule="constant"), 1e-3)
    assert isinstance(adamw, keras.optimizers.AdamW) and np.isclose(adamw.weight_decay, 0.05)


def test_a_weight_average_is_counted_in_epochs_and_switched_on_in_the_optimizer():
    assert recipe.ema_momentum(Recipe(), steps_per_epoch=43) is None
    assert np.isclose(recipe.ema_momentum(Recipe(ema_epochs=2.0), steps_per_epoch=43), 1 - 1 / 86)
    assert recipe.ema_momentum(Recipe(ema_epochs=0.1), steps_per_epoch=4) == 0.0  # less than a step: no average
    optimizer = recipe.make_optimizer(Recipe(ema_epochs=2.0, weight_decay=0.05), 1e-3, steps_per_epoch=10, epochs=4)
    assert optimizer.use_ema and np.isclose(optimizer.ema_momentum, 1 - 1 / 20)
    assert not recipe.make_optimizer(Recipe(), 1e-3, steps_per_epoch=10, epochs=4).use_ema
    with pytest.raises(ValueError, match="give steps_per_epoch"):
        recipe.make_optimizer(Recipe(schedule="constant", ema_epochs=2.0), 1e-3)


def test_with_a_weight_average_validation_and_the_kept_model_see_the_average(tmp_path: Path):
    """An average that barely moves after the first step (and no batch norm, whose statistics would move)
    gives the same validation loss every epoch, while the trained weights go on learning; the model kept
    holds the average, not the trained weights."""
    root = make_transform_output(tmp_path / "t", size=32, counts={"training": 8, "validation": 4})

    def run(ema_epochs: float):
        training.set_determinism(5, deterministic=True)
        training.configure_device(mixed_precision=False)
        return training.train_model(root, TINY_HP, epochs=3, output_dir=tmp_path / f"ema{ema_epochs}", seed=5,
                                    recipe=Recipe(schedule="constant", ema_epochs=ema_epochs), batch_norm=False,
                                    select_by="val_mean_iou")

    _, plain = run(0.0)
    model, averaged = run(1e6)
    assert np.ptp(plain.history["val_loss"]) > 1e-3  # without an average, validation follows training
    assert np.ptp(averaged.history["val_loss"]) < 1e-4
    assert averaged.history["loss"] == plain.history["loss"]  # the average does not change how it trains
    kept = model.evaluate(dataset.make_dataset(dataset.split_dir(root, "validation"), 4), verbose=0,
                          return_dict=True)["loss"]
    assert np.isclose(kept, averaged.history["val_loss"][averaged.best_epoch - 1], atol=1e-5)
    assert abs(kept - plain.history["val_loss"][-1]) > 1e-2  # the trained weights would score otherwise


# --- strong augmentation ---------------------------------------------------------------------------


def _coded_split(folder: Path, n: int = 6, size: int = 32) -> None:
    """Samples whose image encodes the mask: R = 80 * trimap label, a disc of pet on background with a border."""
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        radius = np.hypot(yy - size / 2 - i, xx - size / 2 + i)
        trimap = np.where(radius < 8, 1, np.where(radius < 10, 3, 2)).astype(np.uint8)
        trimap[:4, :6] = 1  # an asymmetric corner makes flips and rotations visible
        sample = folder / f"s{i}"
        sample.mkdir(parents=True)
        Image.fromarray(np.repeat((80 * trimap)[..., None], 3, axis=2), "RGB").save(sample / "image.png")
        Image.fromarray(trimap, "L").save(sample / "mask.png")


def test_strong_augmentation_moves_image_and_trimap_as_one_and_invents_no_label(tmp_path: Path):
    _coded_split(tmp_path)
    plain_images, plain_masks = one_epoch(dataset.make_dataset(tmp_path, 3))
    strong = dataset.make_dataset(tmp_path, 3, augment="strong", seed=5)
    changed = 0
    for _ in range(2):
        images, masks = one_epoch(strong)
        assert masks.dtype == np.uint8 and set(np.unique(masks)) <= {0, 1, 2}
        assert images.min() >= 0 and images.max() <= 1
        for image, mask, plain in zip(images, masks, plain_masks, strict=True):
            changed += not np.array_equal(mask, plain)
            # The image's red channel still tells the label (grey levels ~0.31/0.63/0.94 before jitter):
            # ordered by class, pet < background < border, wherever the warped mask says so, away from edges.
            inner = np.zeros_like(mask, bool)
            inner[2:-2, 2:-2] = True
            means = [image[..., 0][(mask == k) & inner].mean() for k in range(3) if ((mask == k) & inner).sum() > 4]
            assert means == sorted(means), means
            # Labels agree with the image's own (nearest) reading on nearly every pixel.
            levels = np.array(means)
            read = np.abs(image[..., 0][..., None] - levels).argmin(axis=-1)
            assert (read == mask).mean() > 0.85
    assert changed >= 10  # zoom and rotation change (nearly) every sample, every epoch


def test_strong_augmentation_is_seeded(tmp_path: Path):
    _coded_split(tmp_path)
    first = one_epoch(dataset.make_dataset(tmp_path, 2, shuffle=True, augment="strong", seed=9))
    again = one_epoch(dataset.make_dataset(tmp_path, 2, shuffle=True, augment="strong", seed=9))
    other = one_epoch(dataset.make_dataset(tmp_path, 2, shuffle=True, augment="strong", seed=10))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])
    with pytest.raises(ValueError, match="augment must be one of none, flip, strong; got 'wild'"):
        dataset.make_dataset(tmp_path, 2, augment="wild")


def test_class_pixel_counts_cover_every_pixel(tmp_path: Path):
    _coded_split(tmp_path, n=2)
    counts = dataset.class_pixel_counts(tmp_path)
    assert counts.sum() == 2 * 32 * 32 and (counts > 0).all()


# --- progressive resizing ------------------------------------------------------------------------


@pytest.mark.unit
def test_resizing_shrinks_image_and_trimap_together_and_invents_no_label(tmp_path: Path):
    _coded_split(tmp_path)
    small = dataset.make_dataset(tmp_path, 3, augment="strong", seed=5, resize=16)
    images, masks = one_epoch(small)
    assert images.shape == (6, 16, 16, 3) and masks.shape == (6, 16, 16)
    assert masks.dtype == np.uint8 and set(np.unique(masks)) == {0, 1, 2}  # nearest: no blended label
    assert images.min() >= 0 and images.max() <= 1
    # The red channel still encodes the label where the shrunk trimap says so (inner pixels of each class).
    means = [images[..., 0][masks == k].mean() for k in range(3)]
    assert means == sorted(means), means
    np.testing.assert_array_equal(one_epoch(dataset.make_dataset(tmp_path, 3, augment="strong", seed=5,
                                                                 resize=16))[1], masks)
    with pytest.raises(ValueError, match="resize must be >= 1 pixel, got 0"):
        dataset.make_dataset(tmp_path, 3, resize=0)


def test_low_res_epochs_train_small_then_keep_a_full_size_model_of_the_best_epoch(tmp_path: Path, capsys,
                                                                                 monkeypatch):
    """Two of four epochs at 16 px: the epochs number on across the switch, the kept model takes 32-px
    images and holds the best epoch's weights (it scores what validation logged for that epoch), and the
    low-res batches are seeded apart from the full-size ones (one seed would make the full-size epochs
    replay the low-res epochs' shuffles and augmentation)."""
    root = make_transform_output(tmp_path / "t", size=32, counts={"training": 8, "validation": 4})
    training_seeds = {}  # image size -> seed of the shuffled (training) pipeline
    make_dataset = dataset.make_dataset

    def recording(*args, **kwargs):
        if kwargs.get("shuffle"):
            training_seeds[kwargs.get("resize") or 32] = kwargs["seed"]
        return make_dataset(*args, **kwargs)

    monkeypatch.setattr(dataset, "make_dataset", recording)

    def run(name: str, low_res_epochs: int):
        training.set_determinism(5, deterministic=True)
        training.configure_device(mixed_precision=False)
        return training.train_model(root, TINY_HP, epochs=4, output_dir=tmp_path / name, seed=5,
                                    recipe=Recipe(low_res_epochs=low_res_epochs, low_res_size=16))

    capsys.readouterr()
    model, result = run("progressive", 2)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/4", "2/4", "3/4", "4/4"]
    assert model.input_shape == (None, 32, 32, 3)
    assert all(len(values) == 4 for values in result.history.values())
    assert result.best_epoch == int(np.argmax(result.history["val_mean_iou"])) + 1
    kept = model.evaluate(dataset.make_dataset(dataset.split_dir(root, "validation"), 4), verbose=0,
                          return_dict=True)["loss"]
    assert np.isclose(kept, result.history["val_loss"][result.best_epoch - 1], atol=1e-5)
    assert training_seeds == {32: 5, 16: training.low_res_seed(5)} and training.low_res_seed(5) != 5
    _, plain = run("plain", 0)
    # The first epochs saw other (smaller) batches; the same data and seed otherwise.
    assert result.history["loss"][0] != plain.history["loss"][0]


@pytest.mark.unit
def test_low_res_settings_that_cannot_train_are_refused(tmp_path: Path):
    root = make_transform_output(tmp_path / "t", size=32, counts={"training": 4, "validation": 4})
    with pytest.raises(ValueError, match=r"low_res_epochs \(3\) must be fewer than epochs \(3\)"):
        training.train_model(root, TINY_HP, epochs=3, output_dir=tmp_path / "a", recipe=Recipe(low_res_epochs=3))
    with pytest.raises(ValueError, match="low_res_size 18 is not divisible by 2\\*\\*depth = 4"):
        training.train_model(root, TINY_HP, epochs=3, output_dir=tmp_path / "b",
                             recipe=Recipe(low_res_epochs=1, low_res_size=18))
    with pytest.raises(ValueError, match="low_res_epochs=-1 .*low_res_size=0"):
        Recipe(low_res_epochs=-1, low_res_size=0)
    with pytest.raises(ValueError, match="the mobilenetv2 encoder needs a fixed img_size"):
        build_unet(None, encoder="mobilenetv2")


# --- the whole recipe stays deterministic ----------------------------------------------------------


@pytest.mark.slow  # two real trainings with every recipe part switched on
def test_the_full_recipe_trains_to_the_same_weights_twice(tmp_path: Path):
    root = make_transform_output(tmp_path / "t", size=32, counts={"training": 8, "validation": 4})
    full = Recipe(augment="strong", loss="weighted_ce", weight_decay=0.05, schedule="warmup_cosine", ema_epochs=1.0,
                  low_res_epochs=1, low_res_size=16)

    def run(name: str) -> str:
        training.set_determinism(5, deterministic=True)
        training.configure_device(mixed_precision=False)
        model, _ = training.train_model(root, TINY_HP, epochs=2, output_dir=tmp_path / name, seed=5, recipe=full,
                                        select_by="val_mean_iou")
        return training.weights_fingerprint(model)

    assert run("a") == run("b")


# --- test-time augmentation -------------------------------------------------------------------------


def test_tta_averages_the_mirror_images_logits(tmp_path: Path):
    model = inference.load_model(tiny_model(tmp_path, size=16) / "model.keras")
    images = np.random.default_rng(1).random((3, 16, 16, 3), dtype=np.float32)
    plain = inference.predict_logits(model, images)
    mirrored = inference.predict_logits(model, np.ascontiguousarray(images[:, :, ::-1]))[:, :, ::-1]
    np.testing.assert_allclose(inference.predict_logits(model, images, tta=True), (plain + mirrored) / 2, atol=1e-5)
    # A mirror-symmetric image gives the same prediction both ways only if TTA is really averaging.
    symmetric = np.concatenate([images[:, :, :8], images[:, :, :8][:, :, ::-1]], axis=2)
    tta = inference.predict_logits(model, symmetric, tta=True)
    np.testing.assert_allclose(tta, tta[:, :, ::-1], atol=1e-5)


SERVER_RUN = """
import sys, numpy as np
from reproml.serving.model import SegmentationModel
server = SegmentationModel(model_dir=sys.argv[1])
server.load()
masks, probabilities = server._run(np.load(sys.argv[2]))
np.savez(sys.argv[3], masks=masks, probabilities=probabilities, tta=server._tags["tta"])
"""


@pytest.mark.parametrize("tta", [False, True])
def test_the_server_predicts_as_calibration_says(tmp_path: Path, tta: bool):
    """The model server (its own environment) averages the mirror image in exactly when calibrate did."""
    import subprocess

    from reproml.serving.server import SERVING_VENV

    if not (SERVING_VENV / "bin" / "python").exists():
        pytest.skip("no .venv-serving: run `make serving-env`")
    (tmp_path / "release").mkdir()
    folder = tiny_model(tmp_path / "release", size=16)
    calibration = json.loads((folder / "calibration.json").read_text())
    (folder / "calibration.json").write_text(json.dumps({**calibration, "tta": tta}))
    (folder / "release.json").write_text(json.dumps({"released": True, "provenance": {}}))
    pixels = (np.random.default_rng(2).random((1, 16, 16, 3)) * 255).astype(np.uint8)
    np.save(tmp_path / "pixels.npy", pixels)
    subprocess.run([str(SERVING_VENV / "bin" / "python"), "-c", SERVER_RUN, str(folder), str(tmp_path / "pixels.npy"),
                    str(tmp_path / "out.npz")], check=True, cwd=PROJECT, timeout=300)
    served = np.load(tmp_path / "out.npz")
    logits = inference.predict_logits(inference.load_model(folder / "model.keras"), dataset.normalise(pixels), tta=tta)
    expected = np.exp(logits / calibration["temperature"])
    np.testing.assert_allclose(served["probabilities"], expected / expected.sum(axis=-1, keepdims=True), atol=1e-4)
    np.testing.assert_array_equal(served["masks"], logits.argmax(axis=-1))
    assert str(served["tta"]) == str(tta).lower()
