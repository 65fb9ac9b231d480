"""References are parsed, not pattern-matched: commit prefixes are hex, long enough and unambiguous."""

import pytest

from reproml.errors import NotFound, ReproError
from reproml.pfs import Store
from reproml.pfs.refs import MIN_COMMIT_PREFIX, split_ancestry

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_path):
    store = Store.open(tmp_path / "store")
    store.create_repo("raw")
    for i in range(40):  # enough commits that two of them share a first hex digit
        with store.commit("raw") as commit:
            commit.put_file("n.txt", str(i).encode())
    return store


@pytest.mark.parametrize("wildcard", ["_", "%", "____", "%%%%", "a_b_"])
def test_sql_wildcards_match_no_commit(store, wildcard):
    with pytest.raises(ReproError, match="not a commit id|cannot read the reference"):
        store.resolve(f"raw@{wildcard}")


def test_a_prefix_must_be_hex_and_long_enough(store):
    head = store.list_commits("raw")[0].id
    assert store.resolve(f"raw@{head[:MIN_COMMIT_PREFIX + 4]}").id == head
    assert store.resolve(f"raw@{head}").id == head
    with pytest.raises(ReproError, match=f"at least {MIN_COMMIT_PREFIX} characters"):
        store.resolve(f"raw@{head[:2]}")
    with pytest.raises(NotFound, match="not a commit id"):
        store.resolve(f"raw@{head[:8].upper()}xyz")
    unknown = "0" * 32 if not head.startswith("0000") else "f" * 32
    with pytest.raises(NotFound, match="names no branch or commit"):
        store.resolve(f"raw@{unknown}")


def test_an_ambiguous_prefix_lists_the_matches(tmp_path):
    store = Store.open(tmp_path / "store")
    store.create_repo("raw")
    with store.commit("raw") as commit:
        commit.put_file("a", b"a")
    with store.commit("raw") as commit:
        commit.put_file("a", b"b")
    ids = [c.id for c in store.list_commits("raw")]
    # Commit ids are random: give two of them a shared prefix, as a big store would have.
    store.db.execute("UPDATE commits SET id='abcd' || substr(id, 5) WHERE repo='raw'")
    store.db.execute("UPDATE branches SET head='abcd' || substr(head, 5) WHERE repo='raw'")
    with pytest.raises(ReproError, match="ambiguous: 2 commits start with it") as raised:
        store.resolve("raw@abcd")
    for commit_id in ids:
        assert "abcd" + commit_id[4:] in str(raised.value)


@pytest.mark.parametrize(("ref", "name", "steps"), [
    ("master", "master", 0), ("master^", "master", 1), ("master^3", "master", 3), ("master^^", "master", 2),
    ("master~2", "master", 2), ("0a1b^2^", "0a1b", 3)])
def test_ancestry_is_parsed(ref, name, steps):
    assert split_ancestry(ref) == (name, steps)


@pytest.mark.parametrize("ref", ["master^x", "master^1x", "^2", "master^-1"])
def test_ancestry_that_is_not_a_number_is_an_error(store, ref):
    with pytest.raises(ReproError, match="cannot read"):
        store.resolve(f"raw@{ref}")
