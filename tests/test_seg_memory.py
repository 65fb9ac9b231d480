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
