# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Report: how well does the model segment pets it has never seen?
#
# Evaluates the calibrated model on the held-out test split and reports its accuracy, overlap and calibration.
#
# **Inputs:** `data_dir`, transform's `test/` split; `model_dir`, calibrate's output (`model.keras`,
# `calibration.json`).
#
# **Outputs:** `evaluation.json` (every headline number with its 95 % bootstrap interval and the per-image
# statistics it is drawn from, stable key order, fixed float formatting),
# `confusion_matrix.png`, `reliability.png`, `predictions.png`, `worst_samples.png`, and the evaluated
# `model.keras` and `calibration.json`, carried on for the release gate (the store keeps their bytes once).

# %%
import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from reproml.seg import dataset, inference, metrics, report, training
from reproml.stage import notebook, scraps

# %% tags=["parameters"]
data_dir: str = ""  # transform's test split folder, holding <id>/image.png and mask.png (required)
model_dir: str = ""  # calibrate's output, holding model.keras and calibration.json (required)
model_commit: str = ""  # commit of calibrate's output (the calibrated model evaluated)
data_commit: str = ""  # commit of transform's output (the test data)
n_bins: int = 15  # equal-width confidence bins of the expected calibration error
n_examples: int = 4  # test images shown with truth and prediction
n_worst: int = 4  # lowest-IoU test images shown
batch_size: int = 16  # images per prediction batch
bootstrap_resamples: int = 1000  # resamples of the test images for the 95 % intervals
bootstrap_seed: int = 0  # seed of those resamples: the same seed gives the same intervals
output_dir: str = ""  # where the outputs go (required)

# %% [markdown]
# The model and its temperature come from calibrate's output (the weights must be the ones the
# temperature was fitted for, with or without test-time augmentation as calibrate chose); every test
# image is predicted once, and everything below reads from these predictions.

# %%
notebook.require(data_dir=data_dir, model_dir=model_dir, output_dir=output_dir)
out = notebook.output_folder(output_dir)
calibration_file = Path(model_dir) / "calibration.json"
calibrated = json.loads(calibration_file.read_text())
model = inference.load_model(Path(model_dir) / "model.keras")
fingerprint = training.weights_fingerprint(model)
if fingerprint != calibrated["weights_fingerprint"]:
    raise ValueError(
        f"{model_dir}: model.keras has weights {fingerprint} but {calibration_file.name} was fitted for "
        f"{calibrated['weights_fingerprint']}; rerun calibrate on this model"
    )
temperature = float(calibrated["temperature"])
tta = bool(calibrated.get("tta", False))  # predict as the temperature was fitted (and as the server will)
images, labels, ids = dataset.load_arrays(data_dir)
logits = inference.predict_logits(model, images, batch_size, tta=tta)
predictions = logits.argmax(axis=-1)
evaluation = inference.evaluation_record(
    calibrate_commit=model_commit,
    model_commit=calibrated.get("model_commit", ""),
    transform_commit=data_commit,
    weights_fingerprint=fingerprint,
    temperature=temperature,
    tta=tta,
    sample_ids=ids,
    img_size=images.shape[1],
    logits=logits,
    labels=labels,
    class_names=dataset.CLASS_NAMES,
    n_bins=n_bins,
    bootstrap_resamples=bootstrap_resamples,
    bootstrap_seed=bootstrap_seed,
)
headline = inference.headline_metrics(evaluation)
ci95 = inference.headline_intervals(evaluation)
with_ci = {name: report.with_interval(value, ci95[f"{name}_ci95"], 4 if name.startswith("ece") else 3)
           for name, value in headline.items()}  # "0.826 [0.801, 0.848]", as the report prints them

# %% [markdown]
# ## Summary

# %%
not_recorded = "not recorded (run outside a pipeline)"
display(Markdown(f"""
**Model:** calibrate commit `{model_commit or not_recorded}` (model commit
`{calibrated.get("model_commit") or not_recorded}`), weights fingerprint `{fingerprint[:16]}…`,
temperature {temperature:.3f} (from `calibration.json`).

**Data:** transform commit `{data_commit or not_recorded}`, test split of {len(ids)} images of
{images.shape[1]}x{images.shape[2]} pixels.

**Headline** (95 % bootstrap intervals over the {len(ids)} test images in brackets): pixel accuracy
**{with_ci['pixel_accuracy']}**, mean IoU **{with_ci['mean_iou']}** (pet {with_ci['iou_pet']}), Dice
{with_ci['dice']}, ECE after calibration {with_ci['ece']} (before {with_ci['ece_uncalibrated']}).
"""))

# %% [markdown]
# ## How sure are these numbers?
#
# A test split of a few dozen images makes every number noisy: one image can move pet IoU by several
# points. Each interval above is a percentile bootstrap: the test images are drawn with replacement
# `bootstrap_resamples` times (seed `bootstrap_seed`), each draw is scored like the whole split, and the
# middle 95 % of the scores is the interval. The image is the unit of resampling because the pixels of
# one image are not independent. Two models whose intervals overlap may still differ reliably: the
# release gate compares them on the same images (a paired bootstrap of the difference).

# %% [markdown]
# ## Per-class overlap
#
# IoU and Dice per class on all test pixels together, each with its 95 % interval. The border class is
# a thin ring around the pet and is the hardest: its IoU is where most of the error lives. A class absent
# from both truth and prediction would show as n/a and is left out of the means.

# %%
display(Markdown(report.markdown_table(
    ["class", "IoU [95 % interval]", "Dice [95 % interval]"],
    [[name, with_ci[f"iou_{name}"], with_ci[f"dice_{name}"]] for name in dataset.CLASS_NAMES]
    + [["mean", with_ci["mean_iou"], with_ci["dice"]]],
)))

# %% [markdown]
# ## Confusion matrix
#
# Rows are the true class, columns the predicted one; each row is normalised to the share of that
# class's pixels.

# %%
cm = metrics.confusion_matrix(labels, predictions, len(dataset.CLASS_NAMES))
figure = report.confusion_figure(cm, dataset.CLASS_NAMES)
figure.savefig(out / "confusion_matrix.png", dpi=100)
plt.show()

# %% [markdown]
# ## Calibration
#
# Is a pixel predicted with 90% confidence right 90% of the time? Left: the raw softmax; right: after
# dividing the logits by the temperature fitted on the calibration split.

# %%
figure = report.reliability_figure({
    "uncalibrated (T = 1)": metrics.reliability(metrics.softmax(logits), labels, n_bins),
    f"calibrated (T = {temperature:.3f})": metrics.reliability(metrics.softmax(logits, temperature), labels, n_bins),
})
figure.savefig(out / "reliability.png", dpi=100)
plt.show()

# %% [markdown]
# ## Test images with truth and prediction
#
# The first test images in id order (red pet, blue background, yellow border).

# %%
shown = slice(0, n_examples)
figure = report.prediction_grid(images[shown], labels[shown], predictions[shown], ids[shown])
figure.savefig(out / "predictions.png", dpi=100)
plt.show()

# %% [markdown]
# ## Where the model fails
#
# The test images with the lowest mean IoU: look here for systematic errors (dark fur on dark
# backgrounds, several pets, pets cut by the frame).

# %%
sample_iou = metrics.per_sample_mean_iou(labels, predictions, len(dataset.CLASS_NAMES))
worst = inference.worst_samples(sample_iou, n_worst)
figure = report.prediction_grid(
    images[worst], labels[worst], predictions[worst], [f"{ids[i]} (IoU {sample_iou[i]:.2f})" for i in worst]
)
figure.savefig(out / "worst_samples.png", dpi=100)
plt.show()

# %% [markdown]
# ## Outputs
#
# `evaluation.json` is the machine-readable form of this report, read by the release gate: the commits
# it came from, then the metrics (per-class values under `iou` and `dice_per_class`), their intervals
# under `ci95` in the same layout (`ci95["iou"]["pet"]` is the interval of `iou["pet"]`) with the
# `bootstrap` settings, the confusion
# matrix, and last `per_image`: each test image's confusion matrix, confidence-bin sums and NLL sum, from
# which the intervals recompute exactly and the release gate pairs this model with the current release.
# Each headline scrap `name` has a sibling scrap `name_ci95` = [low, high]. The model and its temperature
# travel with it, so that a release is made of exactly what was evaluated.

# %%
report.write_json(evaluation, out / "evaluation.json")
for name in ("model.keras", "calibration.json"):
    shutil.copyfile(Path(model_dir) / name, out / name)
for name, value in headline.items():
    scraps.glue(name, report.finite_or_none(value) if isinstance(value, float) else value)
for name, interval in ci95.items():
    scraps.glue(name, [report.finite_or_none(bound) for bound in interval])
scraps.glue("temperature", temperature)
scraps.glue("tta", tta)
scraps.glue("n_test_samples", len(ids))
scraps.glue("model_commit", model_commit)
scraps.glue("data_commit", data_commit)
scraps.glue("weights_fingerprint", fingerprint)
scraps.glue("worst_samples", {ids[i]: report.finite_or_none(sample_iou[i]) for i in worst})
print(report.dumps_json({key: value for key, value in evaluation.items() if key != "per_image"}))
