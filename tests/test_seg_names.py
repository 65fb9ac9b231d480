"""Sample names and list.txt from outside: a bad one is a reject or an error naming the place, not a traceback."""

import json

import pytest
from seg_data_helpers import jpeg, png, trimap, write_oxford

from reproml.seg import warehouse
from reproml.seg.archives import write_tar_gz

pytestmark = pytest.mark.unit


def test_a_name_too_long_for_the_filesystem_is_a_reject(tmp_path):
    long_name = "Abyssinian_" + "9" * 300
    names = ["Abyssinian_1", long_name]
    archives = write_oxford(tmp_path / "in", {n: jpeg(8, 8) for n in names}, {n: png(trimap(8, 8)) for n in names},
                            names)
    summary, rejects = warehouse.build(archives, tmp_path / "out")
    assert summary["samples"] == 1
    assert [(r["id"], r["reason"]) for r in rejects] == [(long_name, "name_too_long")]
    assert json.loads((tmp_path / "out" / "rejects.json").read_text())[0]["reason"] == "name_too_long"


def test_a_list_that_is_not_utf8_names_the_file_and_line(tmp_path):
    archives = write_oxford(tmp_path / "in", {"Abyssinian_1": jpeg(8, 8)}, {"Abyssinian_1": png(trimap(8, 8))},
                            ["Abyssinian_1"])
    listing = b"#header\nAbyssinian_1 1 1 1\nAbyssinian_\xe9 1 1 1\n"
    write_tar_gz(archives / "annotations.tar.gz", [("annotations/list.txt", listing)])
    with pytest.raises(ValueError, match=r"annotations.tar.gz:annotations/list.txt, line 3: byte 0xe9 is not UTF-8"):
        warehouse.build(archives, tmp_path / "out")
