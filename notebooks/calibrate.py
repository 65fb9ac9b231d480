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
# # Calibrate
#
# Fits one temperature that makes the model's pixel probabilities honest, on the calibration split it never trained on.
#
# **Inputs:** `data_dir`, transform's `calibration/` split; `model_path`, the `model.keras` of the `model` pipeline.
#
# **Outputs:** `calibration.json` (temperature, ECE and NLL before and after, the model's commit and
# weights fingerprint), `reliability.png`, and `model.keras` (the input's bytes, carried along so that
# evaluate and release find model and temperature together).

# %%
import shutil

import matplotlib.pyplot as plt

from reproml.seg import calibration, dataset, inference, metrics, report, training
from reproml.stage import notebook, scraps

# %% tags=["parameters"]
data_dir: str = ""  # transform's calibration split folder, holding <id>/image.png and mask.png (required)
model_path: str = ""  # the model.keras to calibrate (required)
model_commit: str = ""  # commit of the model pipeline's output, recorded in calibration.json
n_bins: int = 15  # equal-width confidence bins of the expected calibration error
t_min: float = 0.05  # smallest temperature searched
t_max: float = 20.0  # largest temperature searched
batch_size: int = 16  # images per prediction batch
tta: bool = False  # predict with horizontal-flip test-time augmentation; evaluate and serving follow (see below)
output_dir: str = ""  # where the outputs go (required)

# %% [markdown]
# ## Predictions on the calibration split
#
# The logits of every pixel, before any softmax: temperature scaling divides them by T. With `tta`
# they are the mean of the image's and its mirror image's logits; the temperature is fitted on what
# will be served, so `tta` is recorded in `calibration.json`, and evaluate and the model server predict
# the same way. It is off by default: on sample+extra it moved test mean IoU by +0.005 [-0.005, +0.014]
# (train's ablation table) for twice the cost of every prediction. The full profile turns it on: on its
# 32-filter model it raised mean IoU on validation and calibration by +0.004 each and border IoU by
# +0.007, each border interval above zero (`bench/tta_check.py`, bench/README.md).

# %%
notebook.require(data_dir=data_dir, model_path=model_path, output_dir=output_dir)
out = notebook.output_folder(output_dir)
model = inference.load_model(model_path)
fingerprint = training.weights_fingerprint(model)
images, labels, ids = dataset.load_arrays(data_dir)
logits = inference.predict_logits(model, images, batch_size, tta=tta)
print(f"{len(ids)} calibration images of {images.shape[1]}x{images.shape[2]}; model weights {fingerprint}; "
      f"test-time augmentation {'on' if tta else 'off'}")

# %% [markdown]
# ## Temperature scaling
#
# T minimises the negative log-likelihood of the true labels under softmax(logits / T): T > 1 means
# the model was over-confident. The predicted classes do not change, only their probabilities.

# %%
# Rounded as calibration.json stores it, so evaluate applies exactly the temperature reported here.
temperature = round(calibration.fit_temperature(logits, labels, t_min=t_min, t_max=t_max), report.FLOAT_DECIMALS)
scores = calibration.calibration_metrics(logits, labels, temperature, n_bins)
print(f"temperature {temperature:.4f}")
if min(temperature / t_min, t_max / temperature) < 1.01:
    print(f"note: the temperature sits at the edge of [{t_min}, {t_max}]: the model's confidence is far off "
          "(typical of a barely trained model); widen t_min/t_max to search further")
print(report.markdown_table(
    ["", "ECE", "NLL (nats/pixel)"],
    [["before (T = 1)", scores["ece_before"], scores["nll_before"]],
     [f"after (T = {temperature:.3f})", scores["ece_after"], scores["nll_after"]]],
))

# %% [markdown]
# ## Reliability diagram
#
# Pixels binned by their confidence: a calibrated model's bars follow the diagonal.

# %%
figure = report.reliability_figure({
    "before (T = 1)": metrics.reliability(metrics.softmax(logits), labels, n_bins),
    f"after (T = {temperature:.3f})": metrics.reliability(metrics.softmax(logits, temperature), labels, n_bins),
})
figure.savefig(out / "reliability.png", dpi=100)
plt.show()

# %% [markdown]
# ## Outputs

# %%
record = {
    "temperature": temperature,
    "tta": tta,
    **scores,
    "n_bins": n_bins,
    "n_samples": len(ids),
    "model_commit": model_commit,
    "weights_fingerprint": fingerprint,
}
report.write_json(record, out / "calibration.json")
shutil.copyfile(model_path, out / "model.keras")
for name, value in record.items():
    scraps.glue(name, value)
