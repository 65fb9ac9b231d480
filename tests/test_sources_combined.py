"""Sources joined with '+', and feedback from the model server flowing back into the data."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLE, reproml
from reproml.pfs import Store
from reproml.seg import oxford, sources
from reproml.serving.feedback import add_feedback

BULLDOG = SAMPLE / "single" / "american_bulldog_8"


def test_a_combined_source_holds_every_part_once(tmp_path, sample_dir):
    info = sources.fetch(f"synthetic:4+{sample_dir}", tmp_path, progress=None)
    ids = [s.id for s in oxford.iter_samples(tmp_path)]
    assert len(ids) == len(set(ids)) == 4 + 244
    assert info["kind"] == "combined" and [p["kind"] for p in info["parts"]] == ["synthetic", "folder"]
    again = sources.fetch(f"synthetic:4+{sample_dir}", tmp_path / "again", progress=None)
    assert again["archives"] == info["archives"]  # byte-identical for the same parts


def test_a_sample_in_two_parts_is_refused(tmp_path):
    with pytest.raises(ValueError, match="more than one part"):
        sources.fetch("synthetic:4+synthetic:2", tmp_path, progress=None)


def _trimap(pet) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.where(pet, 1, 2).astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_run_with_feedback_as_a_source_includes_the_corrected_sample(tmp_path, monkeypatch):
    store_dir = tmp_path / "store"
    store = Store.open(store_dir)
    # The folder's mask.png is a 0/1 RGB mask (the seed's format): the corrected trimap is made from it.
    pet = np.asarray(Image.open(BULLDOG / "mask.png"))[..., 0] == 1
    name, commit = add_feedback(store, (BULLDOG / "image.jpg").read_bytes(), _trimap(pet),
                                "american_bulldog", 1.0, {"release_commit": "test"})
    reproml("run", "--until", "warehouse", "--source", "synthetic:6+feedback", store=store_dir)
    summary = json.loads(store.read_file("warehouse@master", "summary.json"))
    accepted = {f.path.split("/")[1] for f in store.list_files("warehouse@master") if f.path.endswith("image.jpg")}
    assert name in accepted and len(accepted) == 7, summary
    source = json.loads(store.read_file("stream@master", "source.json"))
    assert source["parts"][1]["commit"] == commit
    stream = store.inspect_commit("stream@master")
    assert ("feedback", commit) in {(c.repo, c.id) for c in stream.provenance}  # a declared input

    # A second correction is a new commit of stream's input: stream re-runs and reads it.
    second, newer = add_feedback(store, (BULLDOG / "image.jpg").read_bytes(), _trimap(~pet), "american_bulldog",
                                 0.5, {"release_commit": "test"})
    again = reproml("run", "--until", "stream", "--source", "synthetic:6+feedback", store=store_dir)
    assert "up to date" not in again.stdout, again.stdout
    source = json.loads(store.read_file("stream@master", "source.json"))
    assert source["parts"][1]["commit"] == newer and store.inspect_commit("stream@master").id != stream.id


def test_growing_the_data_moves_no_sample_between_splits(tmp_path, sample_dir):
    """sample+extra (the full profile's real data) keeps every sample's id, hence its md5 split."""
    from reproml.seg.splits import split_of

    def splits_of(source: str, folder: str) -> dict[str, str]:
        sources.fetch(source, tmp_path / folder, progress=None)
        return {s.id: split_of(s.id) for s in oxford.iter_samples(tmp_path / folder)}

    alone = splits_of(str(sample_dir), "sample")
    joined = splits_of(f"{sample_dir}+{sample_dir.parent / 'oxford-pets-extra'}", "joined")
    assert {sample_id: joined.get(sample_id) for sample_id in alone} == alone
    assert len(joined) == len(alone) + 238  # the extra subset is disjoint from the sample
    tests = [sum(split == "test" for split in found.values()) for found in (alone, joined)]
    assert tests[1] > tests[0], tests  # more test images: narrower intervals
