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
# # Transform: splits and one image size
#
# Assigns every sample of a shard to a split by the hash of its id and resizes its image and trimap to one square size.
#
# **Inputs:** `shard_dir`, a folder holding one or more warehouse `shard-NN` folders (one per Pachyderm datum).
#
# **Outputs:** `<split>/<id>/{image.png,mask.png,metadata.json}` for the splits training, validation, test
# and calibration, and `stats/<shard>.json` (split sizes, class balance) in `output_dir`.

# %%
import matplotlib.pyplot as plt

from reproml.seg import figures, splits
from reproml.stage import notebook, scraps

# %% tags=["parameters"]
shard_dir: str = ""  # folder with shard-NN folders: the warehouse output, or one datum of it (required)
img_size: int = 128  # side of the square output images and masks, in pixels
output_dir: str = ""  # where the split folders and stats/ are written (required)

# %% [markdown]
# ## Splitting by id
#
# The split of a sample is `md5(id) % 10`: 0-6 training, 7 validation, 8 test, 9 calibration. It depends
# on nothing but the id, so a sample never changes split when others are added, and the shards can be
# processed independently. Images are resized bilinearly; trimaps with nearest neighbour, so that no label
# other than 1, 2 and 3 appears at the edges.

# %%
notebook.require(shard_dir=shard_dir, output_dir=output_dir)
stats = splits.transform(shard_dir, output_dir, img_size=img_size)
print(f"shards {stats['shards']}: {stats['samples']} samples at {img_size}x{img_size}")

# %% [markdown]
# ## Split sizes and class balance
#
# Class balance is the fraction of pixels of each trimap label after resizing, which is what training
# sees: pet (1), background (2), border (3).

# %%
for split, count in stats["splits"].items():
    balance = stats["class_balance"][split]
    print(f"{split:12s} {count:5d} samples  pet {balance['1']:.3f}  background {balance['2']:.3f}  "
          f"border {balance['3']:.3f}")

scraps.glue("split_sizes", stats["splits"])
scraps.glue("class_balance", stats["class_balance"])
scraps.glue("samples", stats["samples"])

# %%
fig = figures.split_balance(stats)
plt.show()
