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
# # Warehouse: one checked folder per sample
#
# Unpacks the archives safely, keeps the samples whose image and trimap are sound, and spreads them over shards.
#
# **Inputs:** `archive_dir`, the stream stage's output (`images.tar.gz`, `annotations.tar.gz`).
#
# **Outputs:** `shard-NN/<id>/{image.jpg,mask.png,metadata.json}`, `rejects.json` (each rejected sample
# with its reason) and `summary.json` in `output_dir`.

# %%
import matplotlib.pyplot as plt

from reproml.seg import archives, figures, oxford, warehouse
from reproml.stage import notebook, scraps

# %% tags=["parameters"]
archive_dir: str = ""  # folder with images.tar.gz and annotations.tar.gz, the stream output (required)
n_shards: int = 16  # number of shards; a sample's shard is sha256(id) % n_shards
max_member_mb: int = 64  # largest archive member accepted, in MiB
max_total_gb: int = 8  # largest unpacked size of one archive, in GiB
max_members: int = 100000  # largest number of members in one archive
max_held_mb: int = 64  # trimaps waiting in memory for their image, in MiB; the rest wait on disk
output_dir: str = ""  # where the shard folders, rejects.json and summary.json are written (required)

# %% [markdown]
# ## Unpacking safely
#
# An archive is data from outside, so the reader refuses anything that could escape or exhaust the
# target: members outside the archive (`../evil`, absolute paths), links, devices, duplicates, and
# members or totals over the limits below. A truncated or corrupt archive stops the stage with its name.

# %%
notebook.require(archive_dir=archive_dir, output_dir=output_dir)
limits = archives.Limits(max_member_bytes=max_member_mb * 2**20, max_total_bytes=max_total_gb * 2**30,
                         max_members=max_members)
print(limits)

# %% [markdown]
# ## Checking every sample
#
# A sample is kept when it is listed in `annotations/list.txt`, its image decodes as a JPEG, and its trimap
# exists, decodes to one channel of values 1 (pet), 2 (background) and 3 (border) only, and has the image's
# size. Anything else is a reject with one of these reasons; rejects do not fail the stage unless none is left.

# %%
for reason, meaning in oxford.REASONS.items():
    print(f"{reason:16s} {meaning}")

# %%
summary, rejects = warehouse.build(archive_dir, output_dir, n_shards=n_shards, limits=limits,
                                   max_held_bytes=max_held_mb * 2**20)

# %% [markdown]
# ## What was kept

# %%
print(f"{summary['samples']} samples kept, {summary['rejected']} rejected {summary['rejects_by_reason']}")
print(f"species: {summary['species']}")
for reject in rejects[:20]:
    print(f"  rejected {reject['id']}: {reject['reason']} ({reject['detail']})")
for breed, count in summary["breeds"].items():
    print(f"{breed:28s} {count:5d}")

scraps.glue("samples", summary["samples"])
scraps.glue("rejected", summary["rejected"])
scraps.glue("rejects_by_reason", summary["rejects_by_reason"])
scraps.glue("breeds", summary["breeds"])
scraps.glue("shards", summary["shards"])

# %% [markdown]
# ## A look at the samples
#
# Eight samples spread evenly over the ids (so over the breeds), each above its trimap: red is the pet,
# blue the background and yellow the border band where annotators did not decide.

# %%
folders = warehouse.sample_folders(output_dir)
shown = [warehouse.load_sample(folder) for folder in folders[:: max(1, len(folders) // 8)][:8]]
fig = figures.sample_grid(shown)
plt.show()
