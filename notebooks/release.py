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
# # Release: the quality gate in front of the model server
#
# Decides whether the evaluated model replaces the one being served and, when it does, writes the SeldonDeployment that serves it.
#
# **Inputs:** `evaluation_dir`, evaluate's output (`evaluation.json`, `Report.ipynb`, with `model.keras` and
# `calibration.json` unless `model_dir` names another folder); `current_dir`, the `deployed` repo, whose
# `release.json` is the release in service; on the cluster, the `ml-user` service account's token in `ml_user_dir`.
#
# **Outputs:** `release.json` (the decision, the rule, the numbers with their intervals and the paired comparison,
# always; the model's per-image statistics for the next gate when released) and, when the model is released,
# `seldondeployment.yaml`, `model.keras` and `calibration.json` in `output_dir`; on the cluster, the
# SeldonDeployment applied to Kubernetes as the `ml-user` service account.

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from reproml.serving import gate, pairing, release, seldon
from reproml.stage import notebook, scraps

# %% tags=["parameters"]
evaluation_dir: str = ""  # evaluate's output folder (required)
evaluate_commit: str = ""  # the evaluate commit being judged; the runner sets it from evaluate_COMMIT
model_dir: str = ""  # folder with model.keras and calibration.json; empty means evaluation_dir
min_pixel_accuracy: float = 0.60  # least pixel accuracy on the test split, as a fraction
min_mean_iou: float = 0.30  # least IoU averaged over pet, background and border
min_pet_iou: float = 0.25  # least IoU of the pet class (a model that finds no pet scores 0 here)
max_ece: float = 0.20  # largest expected calibration error after temperature scaling
tolerance: float = 0.01  # how much worse than the current release a metric may be (absolute, metric units)
bootstrap_resamples: int = 1000  # resamples of the paired test images for the interval of the difference
bootstrap_seed: int = 0  # seed of those resamples: the same seed gives the same interval and decision
current_dir: str = ""  # the deployed repo's folder: release.json of the release in service (required)
deployed_commit: str = ""  # the deployed commit read; the runner sets it from deployed_COMMIT
serving_image: str = "ghcr.io/reproml/serving:0.1.0"  # the serving image, by exact tag or digest
namespace: str = "serving"  # Kubernetes namespace of the SeldonDeployment
deployment_name: str = "reproml-segmentation"  # name of the SeldonDeployment
apply: str = "auto"  # auto (apply when the ml-user token is mounted, i.e. on the cluster) | true | false
ml_user_dir: str = "/var/run/secrets/reproml/ml-user"  # ml-user's token and ca.crt (pachyderm/release.yaml mounts them)
kubernetes_api: str = ""  # the API server; empty means https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
output_dir: str = ""  # where release.json and, on release, the manifest and model files go (required)

# %% [markdown]
# ## The candidate
#
# The gate looks at four numbers of evaluate's test-split metrics: pixel accuracy, mean IoU and pet IoU (higher
# is better) and the expected calibration error after temperature scaling (lower is better), each printed with
# the 95 % bootstrap interval over test images that evaluate recorded.

# %%
notebook.require(evaluation_dir=evaluation_dir, current_dir=current_dir, output_dir=output_dir)
model_dir = model_dir or evaluation_dir
applying, apply_reason = seldon.should_apply(apply, ml_user_dir)  # checked first: a bad value fails before any work
evaluation = release.read_json(evaluation_dir, "evaluation.json", "evaluate")
candidate = gate.gate_metrics(evaluation, where=str(Path(evaluation_dir) / "evaluation.json"))
thresholds = gate.Thresholds(pixel_accuracy=min_pixel_accuracy, mean_iou=min_mean_iou,
                                pet_iou=min_pet_iou, ece=max_ece)
intervals = pairing.candidate_intervals(evaluation)
for name, value in candidate.items():
    print(f"{name:15s} {value:.4f}" + (f"  [{intervals[name][0]:.4f}, {intervals[name][1]:.4f}]" if intervals else ""))

# %% [markdown]
# ## The model served now
#
# The release in service is a declared input: the `deployed` repo, written by the step that puts a release into
# service (locally `reproml serve`). Its commit is in this job's provenance, so the comparison below names
# exactly what it compared against, and `reproml reproduce` compares against the same release again.

# %%
current = release.read_current_release(current_dir)
print("nothing is in service yet" if current is None else f"in service: release {current.commit} "
      f"(deployed commit {deployed_commit or 'not given'})")
if current is not None:
    for name, value in current.metrics.items():
        print(f"{name:15s} {value:.4f}")

# %% [markdown]
# ## The decision
#
# Two rules, in order. **Thresholds**: every metric's point estimate must reach its threshold (the interval is
# reported beside it). **No regression**: the candidate and the current release are compared on the test images
# both were evaluated on, as a paired bootstrap of the difference: the images are resampled together, so what
# is common to both models (hard and easy images) cancels, and a metric counts as worse only when the whole
# 95 % interval of candidate - current lies beyond the tolerance on the worse side. Twenty or forty test
# images make each number noisy; comparing point estimates would refuse good models on that noise. When the
# current release has no per-image statistics, the point estimates are compared and the record says why.
# The first rule that fails decides, and the model is then not released; a refusal is a result of the
# pipeline, not an error.

# %%
paired = pairing.pair(evaluation, current.record.get("per_image") if current else None,
                      bootstrap_resamples, bootstrap_seed)
if current is not None and paired.differences is None:
    print(f"no paired comparison: {paired.note}")
elif paired.differences is not None:
    print(f"paired on {paired.n_images} test images ({bootstrap_resamples} resamples, seed {bootstrap_seed}):")
    for name, found in paired.differences.items():
        low, high = found["ci95"]
        print(f"  {name:15s} candidate - current {found['difference']:+.4f}  [{low:+.4f}, {high:+.4f}]")
decision = gate.decide(candidate, current.metrics if current else None, thresholds, tolerance,
                          intervals=intervals, differences=paired.differences)
print(f"released: {decision.released}; rule: {decision.rule}; {decision.reason}")
scraps.glue("released", decision.released)
scraps.glue("rule", decision.rule)
scraps.glue("reason", decision.reason)
scraps.glue("decision", decision.to_json())
scraps.glue("thresholds", {"pixel_accuracy": min_pixel_accuracy, "mean_iou": min_mean_iou,
                       "pet_iou": min_pet_iou, "ece": max_ece, "tolerance": tolerance})

# %%
names = list(candidate)
x = np.arange(len(names))
fig, ax = plt.subplots(figsize=(7, 3.5))
# Error bars from the interval (clipped at 0: a percentile interval need not hold its point estimate).
errors = None if intervals is None else np.clip([[candidate[n] - intervals[n][0] for n in names],
                                                 [intervals[n][1] - candidate[n] for n in names]], 0, None)
ax.bar(x - 0.2, [candidate[n] for n in names], 0.4, yerr=errors, capsize=3, label="candidate (95 % interval)")
if current is not None:
    ax.bar(x + 0.2, [current.metrics[n] for n in names], 0.4, label="current release")
ax.scatter(x, [getattr(thresholds, n) for n in names], marker="_", s=900, color="black", label="threshold")
ax.set_xticks(x, names)
ax.set_ylim(0, 1)
ax.set_title(f"{'released' if decision.released else 'not released'}: rule {decision.rule}")
ax.legend()
plt.show()

# %% [markdown]
# ## What is released
#
# A release names everything it comes from: the evaluate, calibrate, model and transform commits, the weights
# fingerprint and the report. The SeldonDeployment carries them as labels and annotations, names the serving
# image exactly, and loads the model from this release commit.

# %%
provenance = manifest_yaml = None
commit = release.output_commit()
if decision.released:
    calibration = release.read_json(model_dir, "calibration.json", "calibrate")
    provenance = release.resolve_provenance(evaluation, calibration, evaluate_commit)
    manifest = seldon.seldon_deployment(provenance, commit, serving_image, namespace, name=deployment_name)
    manifest_yaml = seldon.to_yaml(manifest)
    print(manifest_yaml)
record = release.release_record(decision, thresholds, tolerance, provenance, current, serving_image,
                                deployment_name if decision.released else None, release_commit=commit,
                                pairing=paired.to_json() if current else None, per_image=evaluation.get("per_image"),
                                deployed_commit=deployed_commit)
written = release.write_outputs(output_dir, record, manifest_yaml, model_dir)
print("wrote", ", ".join(written))
scraps.glue("release_provenance", provenance or {})  # `provenance` is the runner's scrap of this job

# %% [markdown]
# ## Deploying
#
# A release is served where it was made. On the cluster the release pipeline's pods, and only they, mount
# the `ml-user` service account's token; with `apply=auto` its presence is what says "cluster", and the
# SeldonDeployment is created (or, when it exists, patched) with the Kubernetes API as `ml-user`, which may
# do nothing else. Locally there is no token: nothing is applied, the release is the commit this job makes in
# the store, and `reproml serve` serves it. `apply=true` or `apply=false` overrides the guess.

# %%
applied = ""
# The model server records what it serves in `deployed`, which gives release a new datum: the same model then
# passes against itself, and applying it again would only roll the pods for nothing.
in_service = bool(provenance) and current is not None and current.weights_fingerprint == provenance["weights_fingerprint"]
if not decision.released:
    print("not applied: nothing was released")
elif in_service:
    print(f"not applied: these weights are in service already (release@{current.commit})")
elif applying:
    applied = seldon.apply(manifest, base_url=kubernetes_api or None, credentials=ml_user_dir)
    print(f"{apply_reason}\nSeldonDeployment {namespace}/{deployment_name} {applied} as ml-user")
else:
    print(f"not applied: {apply_reason}")
scraps.glue("applied", applied)
scraps.glue("apply_reason", apply_reason)
