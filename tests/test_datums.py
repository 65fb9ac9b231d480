"""Datums from globs, cross and union, computed on in-memory file lists."""

import pytest

from reproml.errors import InvalidSpec
from reproml.pfs import CommitRef, FileInfo
from reproml.pps.datums import compute_datums, glob_matches

FILES = [FileInfo(p, p, 1) for p in ("a/x.txt", "a/y/z.txt", "b/w.txt", "optimal_hp.json", "calibration/s1/m.png")]


@pytest.mark.parametrize("glob, expected", [
    ("/", [""]),
    ("/*", ["a", "b", "calibration", "optimal_hp.json"]),
    ("/*/*", ["a/x.txt", "a/y", "b/w.txt", "calibration/s1"]),
    ("/optimal_hp.json", ["optimal_hp.json"]),
    ("/calibration", ["calibration"]),
    ("/a*", ["a"]),
    ("/missing", []),
])
def test_glob_matches(glob, expected):
    assert list(glob_matches(FILES, glob)) == expected


def test_glob_keeps_every_file_under_a_match():
    assert [f.path for f in glob_matches(FILES, "/a")["a"]] == ["a/x.txt", "a/y/z.txt"]


def _datums(tree):
    heads = {"r": CommitRef("r", "c1"), "s": CommitRef("s", "c2")}
    return compute_datums(tree, heads, lambda commit: FILES if commit.repo == "r" else FILES[:1])


def test_cross_is_the_product_and_union_the_sum():
    cross = _datums({"cross": [{"pfs": {"repo": "r", "glob": "/*"}}, {"pfs": {"repo": "s", "glob": "/"}}]})
    union = _datums({"union": [{"pfs": {"repo": "r", "glob": "/*"}}, {"pfs": {"repo": "s", "glob": "/"}}]})
    assert len(cross) == 4 and all(len(d.inputs) == 2 for d in cross)
    assert len(union) == 5


def test_datum_ids_depend_on_content_not_on_commit():
    first = _datums({"pfs": {"repo": "r", "glob": "/*"}})
    again = compute_datums({"pfs": {"repo": "r", "glob": "/*"}}, {"r": CommitRef("r", "other")},
                           lambda commit: FILES)
    assert [d.id for d in first] == [d.id for d in again]
    changed = compute_datums({"pfs": {"repo": "r", "glob": "/*"}}, {"r": CommitRef("r", "c1")},
                             lambda commit: [FileInfo("a/x.txt", "new", 1), *FILES[1:]])
    assert [d.id == e.id for d, e in zip(first, changed, strict=True)] == [False, True, True, True]


def test_cron_is_one_datum_and_join_is_refused():
    assert len(_datums({"cron": {"name": "tick", "spec": "@daily"}})) == 1
    with pytest.raises(InvalidSpec, match="join"):
        _datums({"join": [{"pfs": {"repo": "r", "glob": "/*"}}]})
