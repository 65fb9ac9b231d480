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
# # Tune
#
# Searches the U-Net's learning rate, width, depth, batch size and dropout with Hyperband, seeded so that the same seed gives the same search.
#
# **Inputs:** `data_dir`, transform's output (`training/` to fit, `validation/` to score).
#
# **Outputs:** `optimal_hp.json` (the best trial's hyper-parameters, read by the `model` pipeline),
# `trials.csv` (every trial with its score), `trials.png`.

# %%
import json

import matplotlib.pyplot as plt

from reproml.seg import report, training, tuning
from reproml.seg.recipe import Recipe
from reproml.stage import notebook, scraps

# %% tags=["parameters"]
data_dir: str = ""  # transform's output root, holding training/ and validation/ (required)
data_commit: str = ""  # commit of transform's output, recorded in the scraps
max_trials: int = 20  # upper bound on trials over all Hyperband brackets (0: Hyperband's own count)
max_epochs: int = 10  # most epochs any one trial trains for
factor: int = 3  # Hyperband keeps the best 1/factor of each round for the next, longer round
hyperband_iterations: int = 1  # times the whole Hyperband schedule runs
learning_rate_min: float = 0.0001  # lower end of the learning-rate range (log scale)
learning_rate_max: float = 0.01  # upper end of the learning-rate range
base_filters_choices: str = "8,16,32"  # comma-separated choices of the first level's filters
depth_choices: str = "2,3,4"  # comma-separated choices of down-sampling steps
batch_size_choices: str = "8,16"  # comma-separated choices of the batch size
dropout_max: float = 0.5  # dropout is searched from 0 to this, in steps of 0.1
augment: str = "strong"  # the training recipe's augmentation, loss and weight decay, as the model will be
loss: str = "ce"  # trained (see train); trials train at a constant learning rate: a schedule over
weight_decay: float = 0.0  # "the run" has no fixed length in Hyperband
seed: int = 42  # seeds the search, the weights and the data order
deterministic: bool = True  # TensorFlow op determinism, so the same seed scores trials identically
mixed_precision: bool = False  # bfloat16 compute on a CPU (with AVX-512), float16 on a GPU, as in train
output_dir: str = ""  # where the outputs go (required)

# %% [markdown]
# ## The search space
#
# Depths the image size cannot take (it must be divisible by 2**depth) are dropped before searching.

# %%
notebook.require(data_dir=data_dir, output_dir=output_dir)
out = notebook.output_folder(output_dir)
training.set_determinism(seed, deterministic)
device = training.configure_device(mixed_precision)
space = tuning.SearchSpace(
    learning_rate=(learning_rate_min, learning_rate_max),
    base_filters=tuning.parse_choices(base_filters_choices, "base_filters_choices"),
    depth=tuning.parse_choices(depth_choices, "depth_choices"),
    batch_size=tuning.parse_choices(batch_size_choices, "batch_size_choices"),
    dropout_max=dropout_max,
)
print(space)

# %% [markdown]
# ## Search
#
# Each trial trains a fresh U-Net (weights from the same seed) and is scored by its lowest
# validation loss; Hyperband trains the better configurations for more epochs.

# %%
result = tuning.search(
    data_dir,
    space=space,
    max_epochs=max_epochs,
    max_trials=max_trials,
    factor=factor,
    hyperband_iterations=hyperband_iterations,
    seed=seed,
    recipe=Recipe(augment=augment, loss=loss, weight_decay=weight_decay),
)
print(f"{len(result.trials)} trials; best validation loss {result.best_score:.4f} with {result.best_hp}")

# %% [markdown]
# ## Trials
#
# The score of every trial, and how it depends on the learning rate and the width.

# %%
figure = report.trials_figure(result.trials, tuning.OBJECTIVE)
figure.savefig(out / "trials.png", dpi=100)
plt.show()

# %%
print(report.markdown_table(tuning.TRIAL_COLUMNS, [[t[c] for c in tuning.TRIAL_COLUMNS] for t in result.trials]))

# %% [markdown]
# ## Outputs
#
# `optimal_hp.json` keeps the exact values (a rounded learning rate would train a different model).

# %%
tuning.write_trials_csv(result.trials, out / "trials.csv")
(out / "optimal_hp.json").write_text(json.dumps(result.best_hp, indent=2) + "\n")
scraps.glue("best_hp", result.best_hp)
scraps.glue("best_score", result.best_score)
scraps.glue("objective", tuning.OBJECTIVE)
scraps.glue("n_trials", len(result.trials))
scraps.glue("trials", [{**t, "score": report.finite_or_none(t["score"])} for t in result.trials])
scraps.glue("data_commit", data_commit)
scraps.glue("device", device)
