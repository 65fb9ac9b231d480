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
# # Stream: the Oxford-IIIT Pet archives
#
# Brings the two dataset archives into the pipeline and records where they came from and what their bytes are.
#
# **Inputs:** a source: `oxford` (the official archives), a folder or URL holding `images.tar.gz` and
# `annotations.tar.gz`, `synthetic[:N]` (generated pets, offline), or `feedback` (the samples corrected through
# the model server, read from `feedback_dir`, the feedback repo that the spec declares as an input), joined by `+`.
#
# **Outputs:** `images.tar.gz`, `annotations.tar.gz` and `source.json` (origin, bytes and sha256 of each
# archive) in `output_dir`.

# %%

import sys

from reproml.seg import sources
from reproml.stage import notebook, scraps

# %% tags=["parameters"]
source: str = "synthetic:64"  # oxford | a folder or file://, http(s):// URL with the two archives | synthetic[:N] | feedback; join with +
seed: int = 0  # seed of the synthetic generator (other sources ignore it)
feedback_dir: str = ""  # the feedback repo, stream's declared input: samples the `feedback` source reads
feedback_commit: str = ""  # that input's commit; the runner sets it from feedback_COMMIT
output_dir: str = ""  # where the two archives and source.json are written (required)

# %% [markdown]
# ## Fetching the archives
#
# Every source ends as the same two files in the layout of the original dataset: `images/<Name>.jpg` in
# one archive; `annotations/list.txt` (class, species, breed of each image), the official
# `trainval.txt`/`test.txt` split and `annotations/trimaps/<Name>.png` in the other. Downloads and copies
# go through a `.part` file, so an interrupted transfer never leaves an archive that looks complete.

# %%
notebook.require(output_dir=output_dir)
for part in source.split("+"):
    parsed = sources.parse_source(part)
    print(f"{parsed.kind} source: {parsed.location}", flush=True)
info = sources.fetch(source, output_dir, seed=seed, feedback_dir=feedback_dir, feedback_commit=feedback_commit,
                     progress=sources.progress_to(sys.stderr))  # transfers reported in the datum's log

# %% [markdown]
# ## What arrived
#
# `source.json` holds no time stamp: the same source gives the same file, so an unchanged source makes an
# unchanged commit and nothing downstream re-runs. The warehouse stage checks the archives' content.

# %%
for name, archive in info["archives"].items():
    print(f"{name:20s} {archive['bytes']:>12,d} bytes  sha256 {archive['sha256']}")

scraps.glue("origin", info["origin"])
scraps.glue("kind", info["kind"])
scraps.glue("archive_bytes", {name: archive["bytes"] for name, archive in info["archives"].items()})
scraps.glue("archive_sha256", {name: archive["sha256"] for name, archive in info["archives"].items()})
