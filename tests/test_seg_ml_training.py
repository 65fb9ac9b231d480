"""The input pipeline, the U-Net, hyper-parameter validation and deterministic training (TensorFlow, tiny data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from seg_ml_data import make_transform_output, one_epoch

from reproml.seg import dataset, training
from reproml.seg.recipe import Recipe
from reproml.seg.unet import build_unet

TINY_HP = {"learning_rate": 0.01, "base_filters": 4, "depth": 2, "batch_size": 4, "dropout": 0.1}
ACCEPTED = "learning_rate (float), base_filters (int), depth (int), batch_size (int), dropout (float)"


# --- hyper-parameter validation -------------------------------------------------------------


@pytest.mark.parametrize(
    ("hp", "message"),
    [
        ({"learning_rate": 0.01, "lr": 0.1}, "unknown key 'lr'; accepted keys: " + ACCEPTED),
        ({"depth": 2.5}, "key 'depth' must be int, got float 2.5; accepted keys: " + ACCEPTED),
        ({"batch_size": "16"}, "key 'batch_size' must be int, got str '16'"),
        ({"dropout": True}, "key 'dropout' must be float, got bool True"),
        ({"dropout": 1.5}, "dropout=1.5 (must be in [0, 1))"),
        ({"learning_rate": 0}, "learning_rate=0.0 (must be > 0)"),
    ],
    ids=["unknown key", "float for int", "string", "bool", "range", "zero rate"],
)
def test_validate_hp_names_the_key_and_the_accepted_ones(hp: dict, message: str) -> None:
    with pytest.raises(training.HyperParameterError) as error:
        training.validate_hp(hp, source="optimal_hp.json")
    assert str(error.value).startswith("optimal_hp.json: ")
    assert message in str(error.value)


def test_validate_hp_accepts_ints_for_floats_and_keeps_the_canonical_order() -> None:
    hp = training.validate_hp({"dropout": 0, "depth": 3, "learning_rate": 1})
    assert hp == {"learning_rate": 1.0, "depth": 3, "dropout": 0.0}
    assert list(hp) == ["learning_rate", "depth", "dropout"] and isinstance(hp["learning_rate"], float)


def test_load_hp_file_reports_the_path(tmp_path: Path) -> None:
    path = tmp_path / "optimal_hp.json"
    path.write_text(json.dumps({**TINY_HP, "momentum": 0.9}))
    with pytest.raises(training.HyperParameterError, match=f"{path}: unknown key 'momentum'"):
        training.load_hp_file(path)
    path.write_text("{not json")
    with pytest.raises(training.HyperParameterError, match="not valid JSON"):
        training.load_hp_file(path)
    path.write_text(json.dumps(TINY_HP))
    assert training.load_hp_file(path) == TINY_HP


# --- U-Net ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("depth", "base_filters", "batch_norm"), [(2, 4, True), (3, 8, False)])
def test_unet_outputs_float32_logits_of_the_input_size(depth: int, base_filters: int, batch_norm: bool) -> None:
    model = build_unet(32, depth=depth, base_filters=base_filters, dropout=0.2, batch_norm=batch_norm)
    logits = model.predict(np.random.default_rng(0).random((2, 32, 32, 3), np.float32), verbose=0)
    assert logits.shape == (2, 32, 32, 3) and logits.dtype == np.float32
    assert model.get_layer("logits").activation.__name__ == "linear"
    assert any("bn" in layer.name for layer in model.layers) == batch_norm


def test_mixed_precision_keeps_float32_logits_and_is_switched_back() -> None:
    try:
        device = training.configure_device(mixed_precision=True)
        assert device["precision_policy"] == ("mixed_float16" if device["gpus"] else "mixed_bfloat16")
        model = build_unet(16, depth=2, base_filters=4)
        assert model.get_layer("down0_conv1").compute_dtype != "float32"
        assert model.predict(np.zeros((1, 16, 16, 3), np.float32), verbose=0).dtype == np.float32
    finally:
        assert training.configure_device(mixed_precision=False)["precision_policy"] == "float32"


def test_unet_rejects_sizes_and_options_it_cannot_honour() -> None:
    with pytest.raises(ValueError, match=r"img_size 36 is not divisible by 2\*\*depth = 8; choose a depth <= 2"):
        build_unet(36, depth=3)
    with pytest.raises(ValueError, match="needs encoder='mobilenetv2'"):
        build_unet(32, depth=2, weights="imagenet")
    with pytest.raises(ValueError, match="unknown encoder 'resnet'"):
        build_unet(32, encoder="resnet")


# --- tf.data pipeline --------------------------------------------------------------------------


def _coded_split(folder: Path, n: int = 6, size: int = 16) -> None:
    """Samples whose image encodes the mask (grey 51, 102, 153 for labels 1, 2, 3) in asymmetric shapes."""
    rng = np.random.default_rng(0)
    for i in range(n):
        trimap = rng.integers(1, 4, (size, size)).astype(np.uint8)
        trimap[:, : size // 2] = 1 + i % 3  # a left half of one label makes every flip visible
        sample = folder / f"s{i}"
        sample.mkdir(parents=True)
        Image.fromarray(np.repeat((51 * trimap)[..., None], 3, axis=2), "RGB").save(sample / "image.png")
        Image.fromarray(trimap, "L").save(sample / "mask.png")


def test_flip_keeps_image_and_mask_aligned(tmp_path: Path) -> None:
    _coded_split(tmp_path)
    plain_images, plain_masks = one_epoch(dataset.make_dataset(tmp_path, 4))
    assert set(np.unique(plain_masks)) == {0, 1, 2}  # trimap 1, 2, 3 became class ids 0, 1, 2
    np.testing.assert_allclose(plain_images[..., 0], (plain_masks + 1) * 51 / 255, atol=1e-6)

    augmented = dataset.make_dataset(tmp_path, 4, augment="flip", seed=3)
    flipped = 0
    for _ in range(2):  # two epochs: flips are re-drawn per epoch
        images, masks = one_epoch(augmented)
        for image, mask, plain in zip(images, masks, plain_masks, strict=True):
            # Brightness shifts the whole image by one constant, so each class keeps one grey level,
            # in class order, exactly where the (possibly flipped) mask has that class.
            levels = [np.ptp(image[..., 0][mask == k]) for k in np.unique(mask)]
            assert max(levels) < 1e-6, levels
            means = [image[..., 0][mask == k].mean() for k in np.unique(mask)]
            assert means == sorted(means)
            assert np.array_equal(mask, plain) or np.array_equal(mask, plain[:, ::-1])
            flipped += not np.array_equal(mask, plain)
    assert 0 < flipped < 12, flipped


def test_pipeline_is_deterministic_for_a_seed_and_shuffles_per_epoch(tmp_path: Path) -> None:
    _coded_split(tmp_path)
    first = dataset.make_dataset(tmp_path, 2, shuffle=True, augment="flip", seed=7)
    second = dataset.make_dataset(tmp_path, 2, shuffle=True, augment="flip", seed=7)
    epoch1, epoch2 = one_epoch(first), one_epoch(first)
    np.testing.assert_array_equal(epoch1[0], one_epoch(second)[0])
    assert not np.array_equal(epoch1[0], epoch2[0])


def test_invalid_trimap_labels_are_refused(tmp_path: Path) -> None:
    _coded_split(tmp_path, n=1)
    Image.fromarray(np.zeros((16, 16), np.uint8), "L").save(tmp_path / "s0" / "mask.png")
    with pytest.raises(ValueError, match=r"holds labels \[0\]; trimaps hold only 1 pet"):
        dataset.load_arrays(tmp_path)
    import tensorflow as tf

    with pytest.raises(tf.errors.InvalidArgumentError, match="labels outside 1 pet"):
        one_epoch(dataset.make_dataset(tmp_path, 1))


def test_load_arrays_and_missing_folders(tmp_path: Path) -> None:
    root = make_transform_output(tmp_path / "t", size=32, counts={"test": 3})
    images, masks, ids = dataset.load_arrays(root / "test")
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.float32 and 0 <= images.min() <= images.max() <= 1
    assert masks.shape == (3, 32, 32) and set(np.unique(masks)) == {0, 1, 2}
    assert ids == sorted(ids)
    with pytest.raises(FileNotFoundError, match="training/"):
        dataset.split_dir(root, "training")
    with pytest.raises(FileNotFoundError, match="no samples in"):
        dataset.list_samples(tmp_path)


# --- deterministic training ---------------------------------------------------------------------


@pytest.mark.slow  # two real trainings: ~15 s alone, over 20 s on the shared CPU
def test_deterministic_training_gives_the_same_weights_fingerprint(tmp_path: Path) -> None:
    root = make_transform_output(tmp_path / "t", size=32, counts={"training": 8, "validation": 4})

    def run(seed: int, name: str) -> str:
        training.set_determinism(seed, deterministic=True)
        training.configure_device(mixed_precision=False)
        model, result = training.train_model(root, TINY_HP, epochs=1, output_dir=tmp_path / name, seed=seed)
        assert result.images_per_second > 0 and (tmp_path / name / "checkpoints" / "best.weights.h5").is_file()
        return training.weights_fingerprint(model)

    first, again = run(5, "a"), run(5, "b")
    assert first == again
    # The fingerprint does see the weights: the untrained model of the same seed has another one.
    training.set_determinism(5)
    assert training.weights_fingerprint(build_unet(32, depth=2, base_filters=4, dropout=0.1)) != first


@pytest.mark.parametrize("select_by", ["val_loss", "val_mean_iou"])
def test_fit_keeps_the_weights_of_the_best_epoch(tmp_path: Path, select_by: str) -> None:
    """The chosen epoch is the best one by `select_by`: the kept weights are those of that epoch's end."""
    import keras

    root = make_transform_output(tmp_path / "t", size=32, counts={"training": 8, "validation": 4})
    training.set_determinism(3, deterministic=True)
    training.configure_device(mixed_precision=False)
    model = build_unet(32, depth=2, base_filters=4, dropout=0.1)
    training.compile_model(model, 0.05, Recipe(schedule="constant"))  # a large, constant step: validation loss moves up and down within 4 epochs
    per_epoch: list[str] = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: per_epoch.append(training.weights_fingerprint(model))
    )
    train = dataset.make_dataset(dataset.split_dir(root, "training"), 4, shuffle=True, augment="flip", seed=3)
    val = dataset.make_dataset(dataset.split_dir(root, "validation"), 4)
    result = training.fit(model, train, val, epochs=4, output_dir=tmp_path / "out", n_train_images=8, verbose=0,
                          extra_callbacks=[record])
    assert result.best_epoch == int(np.argmin(result.history["val_loss"])) + 1
    # Not the last epoch (with this seed: epoch 1), so keeping the final weights would fail the check below.
    assert result.best_epoch < 4
    assert len(per_epoch) == 4
    assert training.weights_fingerprint(model) == per_epoch[result.best_epoch - 1]


BFLOAT16_ON_AVX2 = """
import json
import numpy as np
from reproml.seg import training
from reproml.seg.recipe import Recipe
from reproml.seg.unet import build_unet
device = training.configure_device(mixed_precision=True)
model = build_unet(32, depth=2, base_filters=4)
training.compile_model(model, 1e-3, Recipe(schedule="constant"))
model.fit(np.zeros((2, 32, 32, 3), np.float32), np.zeros((2, 32, 32, 1), np.int32), epochs=1, verbose=0)
print(json.dumps(device))
"""


def test_bfloat16_on_a_cpu_without_its_kernels_trains_in_float32_and_says_why() -> None:
    # oneDNN has no bfloat16 convolution below AVX-512: capped at AVX2, as on many laptops and older
    # servers, a mixed-precision model stage used to die in its first convolution ("could not create a
    # primitive descriptor").
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", BFLOAT16_ON_AVX2], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    device = json.loads(done.stdout.strip().splitlines()[-1])
    assert device["precision_policy"] == "float32"
    assert device["precision_note"].startswith("bfloat16 was asked for, but this CPU's kernels cannot run it")


def test_a_model_trained_in_bfloat16_still_predicts_on_a_cpu_without_its_kernels(tmp_path: Path) -> None:
    # Trained where bfloat16 runs (the model keeps its layers' bfloat16 policy), evaluated or served
    # where it does not: `inference.load_model` gives the same weights in float32 there.
    save = ("import keras\nfrom reproml.seg.unet import build_unet\n"
            "keras.mixed_precision.set_global_policy('mixed_bfloat16')\n"
            f"build_unet(32, depth=2, base_filters=4).save({str(tmp_path / 'bf16.keras')!r})\n")
    predict = ("import numpy as np\nfrom reproml.seg import inference\n"
               f"model = inference.load_model({str(tmp_path / 'bf16.keras')!r})\n"
               "logits = inference.predict_logits(model, np.zeros((2, 32, 32, 3), np.float32), tta=True)\n"
               "print(logits.shape, logits.dtype, sorted({str(l.dtype_policy) for l in model.layers}))\n")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    for script, isa in ((save, None), (predict, "AVX2")):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                              env={**env, "ONEDNN_MAX_CPU_ISA": isa} if isa else env)
        assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "(2, 32, 32, 3) float32 ['<DTypePolicy \"float32\">']"


def test_each_epoch_prints_one_line_with_the_best_so_far_and_the_time_left() -> None:
    # begin/end of each epoch: the first takes 30 s (tracing, cache fill), the next ones 20 s
    ticks = iter([0.0, 30.0, 30.0, 50.0, 50.0, 70.0, 70.0, 90.0])
    lines: list[str] = []
    progress = training.EpochProgress(4, "val_mean_iou", clock=lambda: next(ticks), out=lines.append)
    for epoch, miou in enumerate([0.40, 0.55, 0.50, 0.56]):
        progress.on_epoch_begin(epoch)
        progress.on_epoch_end(epoch, {"loss": 0.9 - epoch / 10, "val_loss": 0.8, "val_mean_iou": miou})
    assert lines == [
        "epoch 1/4  loss 0.900  val_loss 0.800  val_mean_iou 0.400 (best)  30 s  ~1.5 min left",
        "epoch 2/4  loss 0.800  val_loss 0.800  val_mean_iou 0.550 (best)  20 s  ~40 s left",
        "epoch 3/4  loss 0.700  val_loss 0.800  val_mean_iou 0.500 (best 0.550 at epoch 2)  20 s  ~20 s left",
        "epoch 4/4  loss 0.600  val_loss 0.800  val_mean_iou 0.560 (best)  20 s  done in 1.5 min",
    ]
    by_loss = training.EpochProgress(600, "val_loss", clock=iter([0.0, 20.0, 20.0, 40.0]).__next__, out=lines.append)
    for epoch, loss in enumerate([0.7, 0.9]):
        by_loss.on_epoch_begin(epoch)
        by_loss.on_epoch_end(epoch, {"loss": 1.0, "val_loss": loss})
    assert lines[-1] == "epoch   2/600  loss 1.000  val_loss 0.900 (best 0.700 at epoch 1)  20 s  ~3.3 h left"


def test_throughput_is_the_full_size_steady_rate() -> None:
    """Two low-res epochs, then a full-size one that traces its graph again, then two steady ones."""
    throughput = training.Throughput(images_per_epoch=100)
    throughput.epoch_seconds = [9.0, 2.0, 8.0, 4.0, 6.0]
    assert throughput.images_per_second(full_size_from=2) == 200 / 10.0
    assert throughput.images_per_second() == 400 / 20.0
    throughput.epoch_seconds = [5.0]
    assert throughput.images_per_second() == 20.0


def test_progress_judges_time_left_by_what_each_epoch_costs() -> None:
    """Two cheap low-res epochs (cost 0.5) then two full ones: 10 s for a cheap epoch says 20 s for a full one."""
    lines: list[str] = []
    ticks = iter([0.0, 12.0, 12.0, 22.0, 22.0, 42.0])
    progress = training.EpochProgress(4, "val_loss", clock=lambda: next(ticks), out=lines.append,
                                      costs=[0.5, 0.5, 1.0, 1.0])
    for epoch in range(3):
        progress.on_epoch_begin(epoch)
        progress.on_epoch_end(epoch, {"loss": 1.0, "val_loss": 1.0})
    assert [line.rsplit("  ", 1)[1] for line in lines] == ["~1.0 min left", "~40 s left", "~20 s left"]
    with pytest.raises(ValueError, match="need one cost per epoch: 1 for 4 epochs"):
        training.EpochProgress(4, "val_loss", costs=[1.0])


def test_fit_refuses_an_unknown_selection_rule(tmp_path: Path) -> None:
    model = build_unet(32, depth=2, base_filters=4, dropout=0.1)
    with pytest.raises(ValueError, match="select_by must be one of val_loss, val_mean_iou; got 'loss'"):
        training.fit(model, None, None, epochs=1, output_dir=tmp_path, n_train_images=1, select_by="loss")


# --- evaluation record ----------------------------------------------------------------------------


def test_evaluation_record_is_what_the_release_gate_reads() -> None:
    from reproml.seg import inference, report
    from reproml.serving.gate import gate_metrics

    labels = np.array([[[0, 1], [2, 1]]])
    logits = np.eye(3)[[[[0, 1], [1, 1]]]] * 4.0  # border predicted as background
    record = inference.evaluation_record(
        calibrate_commit="cal", model_commit="", transform_commit="tr", weights_fingerprint="f" * 64,
        temperature=1.5, sample_ids=["a"], img_size=2, logits=logits, labels=labels, class_names=dataset.CLASS_NAMES,
    )
    assert record["model_commit"] is None  # unknown, not a placeholder
    assert record["iou"] == {"pet": 1.0, "background": 2 / 3, "border": 0.0}
    assert record["confusion_matrix"]["counts"] == [[1, 0, 0], [0, 2, 0], [0, 1, 0]]
    assert inference.headline_metrics(record)["iou_border"] == 0.0
    written = json.loads(report.dumps_json(record))
    assert gate_metrics(written) == pytest.approx(
        {"pixel_accuracy": 0.75, "mean_iou": 5 / 9, "pet_iou": 1.0, "ece": record["ece"]}, abs=1e-6)
