"""The warehouse's memory is bounded by its settings, not by what an archive unpacks to."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from reproml.seg import synthetic
from reproml.seg.archives import iter_members, write_tar_gz

pytestmark = pytest.mark.unit

HUGE = 8  # trimaps of 32 MiB each (zeros: the archive stays small), under the 64 MiB member limit
HUGE_BYTES = 32 * 2**20

MEASURE = textwrap.dedent("""
    import resource, sys
    from reproml.seg import warehouse
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    warehouse.build(sys.argv[1], sys.argv[2], n_shards=2, max_held_bytes=16 * 2**20)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
""")


def test_huge_trimaps_do_not_raise_peak_memory_to_the_unpacked_size(tmp_path):
    archives = tmp_path / "archives"
    synthetic.write_archives(archives, 8, seed=5)
    members = list(iter_members(archives / "annotations.tar.gz"))
    huge = [(f"annotations/trimaps/Huge_{i}.png", bytes(HUGE_BYTES)) for i in range(HUGE)]
    write_tar_gz(archives / "annotations.tar.gz", members + huge)
    del members, huge
    result = subprocess.run([sys.executable, "-c", MEASURE, str(archives), str(tmp_path / "out")],
                            capture_output=True, text=True, check=True)
    growth = int(result.stdout.split()[-1])
    unpacked = HUGE * HUGE_BYTES
    # One member is read whole (tarfile joins its chunks, so count it three times), plus the 16 MiB held.
    assert growth < 3 * HUGE_BYTES + 16 * 2**20 + 32 * 2**20 < unpacked, (growth, unpacked)


def test_an_image_that_decodes_to_more_than_the_pixel_limit_is_a_reject(tmp_path):
    from seg_data_helpers import jpeg, png, trimap, write_oxford

    from reproml.seg import oxford, warehouse

    names = ["Abyssinian_1", "Abyssinian_2"]
    huge = jpeg(6000, 5000)  # 30 million pixels in a few hundred KB: 90 MB once decoded
    archives = write_oxford(tmp_path / "in", {names[0]: jpeg(8, 8), names[1]: huge},
                            {name: png(trimap(8, 8)) for name in names}, names)
    summary, rejects = warehouse.build(archives, tmp_path / "out")
    assert summary["samples"] == 1 and 6000 * 5000 > oxford.MAX_SAMPLE_PIXELS
    assert [(r["id"], r["reason"]) for r in rejects] == [(names[1], "too_large")]
