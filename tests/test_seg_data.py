"""The data domain: Oxford format, synthetic source, warehouse, splits and transform, sources, figures."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from seg_data_helpers import SAMPLE_DIR, jpeg, png, tree, trimap, write_oxford

from reproml.seg import figures, oxford, sources, splits, synthetic, warehouse
from reproml.seg.archives import ArchiveError, Limits, iter_members, write_tar_gz
from reproml.seg.oxford import Accepted, Reject


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    synthetic.write_archives(folder, 12, seed=7)
    return folder


@pytest.fixture(scope="module")
def real_dir() -> Path:
    if not (SAMPLE_DIR / "images.tar.gz").is_file():
        pytest.skip(f"the real sample is not at {SAMPLE_DIR}")
    return SAMPLE_DIR


# --- Oxford format --------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "breed"),
    [("Abyssinian_12", "Abyssinian"), ("american_pit_bull_terrier_3", "american_pit_bull_terrier"),
     ("Synthetic_Tabby_1", "Synthetic_Tabby")],
)
def test_breed_of(name, breed):
    assert oxford.breed_of(name) == breed


@pytest.mark.parametrize("name", ["Abyssinian", "Abyssinian_x", "_3"])
def test_breed_of_refuses_names_without_number(name):
    with pytest.raises(ValueError, match="<breed>_<number>"):
        oxford.breed_of(name)


def test_parse_list_reads_entries_and_skips_header():
    text = "\n".join(oxford.LIST_HEADER) + "\nAbyssinian_1 1 1 1\nyorkshire_terrier_9 37 2 25\n"
    entries = oxford.parse_list(text)
    assert entries == {
        "Abyssinian_1": oxford.Entry(1, "cat", 1, "Abyssinian"),
        "yorkshire_terrier_9": oxford.Entry(37, "dog", 25, "yorkshire_terrier"),
    }
    assert oxford.format_list(list(entries), entries) == text


@pytest.mark.parametrize(
    ("line", "words"),
    [("Abyssinian_1 1 1", "expected 4 fields"), ("Abyssinian_1 1 3 1", "species 3"),
     ("Abyssinian_1 one 1 1", "invalid literal"), ("Abyssinian_2 1 1 1\nAbyssinian_2 1 1 1", "listed twice")],
)
def test_parse_list_errors_name_the_line(line, words):
    with pytest.raises(ValueError, match=rf"list.txt, line \d.*{words}"):
        oxford.parse_list("#header\n" + line)


def test_real_and_synthetic_archives_go_through_one_reader(real_dir, synthetic_dir):
    real = [oxford.validate(sample) for sample in oxford.iter_samples(real_dir)]
    made = [oxford.validate(sample) for sample in oxford.iter_samples(synthetic_dir)]
    assert len(real) == 244 and all(isinstance(result, Accepted) for result in real)
    assert len(made) == 12 and all(isinstance(result, Accepted) for result in made)
    bulldog = next(result for result in real if result.id == "american_bulldog_81")
    with tarfile.open(real_dir / "images.tar.gz") as tar:
        assert bulldog.image == tar.extractfile("images/american_bulldog_81.jpg").read()
    height, width = bulldog.mask.shape
    assert bulldog.metadata == {"id": "american_bulldog_81", "class_id": 2, "species": "dog",
                                "breed": "american_bulldog", "width": width, "height": height}
    assert Image.open(io.BytesIO(bulldog.image)).size == (width, height)
    assert {result.metadata["species"] for result in real} == {"cat", "dog"}


def test_members_that_are_not_samples_are_ignored(tmp_path):
    folder = write_oxford(tmp_path, {"Bengal_1": jpeg(8, 8)},
                          {"Bengal_1": png(trimap(8, 8)), "._Bengal_1": b"\x00\x05\x16\x07 resource fork"},
                          ["Bengal_1"])
    write_tar_gz(folder / "images.tar.gz", [("images/Bengal_1.jpg", jpeg(8, 8)), ("images/Bengal_1.mat", b"M"),
                                            ("images/._Bengal_1.jpg", b"fork"), ("README", b"r")])
    samples = list(oxford.iter_samples(folder))
    assert [sample.id for sample in samples] == ["Bengal_1"]
    assert samples[0].trimap == png(trimap(8, 8))


def test_annotations_without_list_txt_is_an_error(tmp_path):
    write_tar_gz(tmp_path / "annotations.tar.gz", [("annotations/trimaps/Bengal_1.png", b"")])
    write_tar_gz(tmp_path / "images.tar.gz", [("images/Bengal_1.jpg", b"")])
    with pytest.raises(ArchiveError, match="annotations.tar.gz has no annotations/list.txt"):
        list(oxford.iter_samples(tmp_path))


def _sample(name="Abyssinian_1", image=None, mask=None, listed=True):
    entry = oxford.Entry(1, "cat", 1, "Abyssinian") if listed else None
    return oxford.Sample(name, jpeg(20, 10) if image is None else image,
                         png(trimap(20, 10)) if mask is None else mask, entry)


def _with_value(value: int) -> bytes:
    mask = trimap(20, 10)
    mask[0, 0] = value
    return png(mask)


@pytest.mark.parametrize(
    ("sample", "reason", "words"),
    [
        (_sample(listed=False), "unlisted", "not in annotations/list.txt"),
        (oxford.Sample("Abyssinian_1", None, None, oxford.Entry(1, "cat", 1, "Abyssinian")), "missing_image",
         "no images/Abyssinian_1.jpg"),
        (_sample(image=b"\xff\xd8 not really a jpeg"), "corrupt_jpeg", "does not decode"),
        (_sample(image=jpeg(20, 10)[:300]), "corrupt_jpeg", "does not decode: Truncated"),
        (_sample(image=png(np.zeros((10, 20, 3)))), "not_jpeg", "is PNG data"),
        (oxford.Sample("Abyssinian_1", jpeg(20, 10), None, oxford.Entry(1, "cat", 1, "Abyssinian")),
         "missing_mask", "no annotations/trimaps/Abyssinian_1.png"),
        (_sample(mask=b"\x89PNG broken"), "unreadable_mask", "does not decode"),
        (_sample(mask=png(np.ones((10, 20, 3)))), "unreadable_mask", "3 channels"),
        (_sample(mask=_with_value(7)), "bad_mask_values", "7 (1 px)"),
        (_sample(mask=_with_value(0)), "bad_mask_values", "0 (1 px)"),
        (_sample(mask=png(trimap(10, 20))), "size_mismatch", "image is 20x10, annotations/trimaps/Abyssinian_1.png is 10x20"),
    ],
    ids=["unlisted", "no-image", "corrupt", "truncated", "png", "no-mask", "bad-png", "rgb-mask", "value-7",
         "value-0", "size"],
)
def test_validate_rejects_with_reason(sample, reason, words):
    result = oxford.validate(sample)
    assert isinstance(result, Reject) and result.reason == reason, result
    assert reason in oxford.REASONS
    assert words in result.detail, result.detail


def test_validate_accepts_a_sound_sample():
    result = oxford.validate(_sample())
    assert isinstance(result, Accepted)
    assert result.mask.dtype == np.uint8 and set(np.unique(result.mask)) == {1, 2, 3}
    assert (result.metadata["width"], result.metadata["height"]) == (20, 10)


# --- synthetic source -----------------------------------------------------------------------------------

def test_synthetic_is_byte_identical_for_a_seed(tmp_path, synthetic_dir):
    synthetic.write_archives(tmp_path / "again", 12, seed=7)
    synthetic.write_archives(tmp_path / "other", 12, seed=8)
    for name in ("images.tar.gz", "annotations.tar.gz"):
        assert (tmp_path / "again" / name).read_bytes() == (synthetic_dir / name).read_bytes(), name
        assert (tmp_path / "other" / name).read_bytes() != (synthetic_dir / name).read_bytes(), name


def test_synthetic_sample_depends_only_on_seed_and_index(tmp_path, synthetic_dir):
    synthetic.write_archives(tmp_path, 5, seed=7)
    for name in ("images.tar.gz", "annotations.tar.gz"):
        fewer = [member for member in iter_members(tmp_path / name) if member[0].endswith((".jpg", ".png"))]
        more = [member for member in iter_members(synthetic_dir / name) if member[0].endswith((".jpg", ".png"))]
        assert len(fewer) == 5 and fewer == more[:5], name
    assert synthetic.generate(3, seed=1) != synthetic.generate(4, seed=1)


def test_synthetic_archives_have_the_oxford_layout(synthetic_dir):
    with tarfile.open(synthetic_dir / "annotations.tar.gz") as tar:
        names = tar.getnames()
        lines = tar.extractfile("annotations/list.txt").read().decode().splitlines()
        trainval = tar.extractfile("annotations/trainval.txt").read().decode().splitlines()
        test = tar.extractfile("annotations/test.txt").read().decode().splitlines()
    with tarfile.open(synthetic_dir / "images.tar.gz") as tar:
        images = tar.getnames()
    assert tuple(lines[:6]) == oxford.LIST_HEADER
    samples = [line.split()[0] for line in lines[6:]]
    assert len(samples) == 12 and sorted(trainval + test) == sorted(lines[6:])
    assert images == ["images"] + [f"images/{name}.jpg" for name in samples]
    assert names[:2] == ["annotations", "annotations/list.txt"]
    assert {f"annotations/trimaps/{name}.png" for name in samples} <= set(names)
    entries = oxford.parse_list("\n".join(lines))
    for name, entry in entries.items():
        assert entry.species == ("cat" if name[0].isupper() else "dog"), name


def test_synthetic_trimap_has_a_border_band_between_pet_and_background():
    _, _, mask_png = synthetic.generate(0, seed=0)
    mask = np.asarray(Image.open(io.BytesIO(mask_png)))
    assert set(np.unique(mask)) == {1, 2, 3}
    pet, background = mask == 1, mask == 2
    # No pet pixel touches a background pixel horizontally or vertically: the band separates them.
    assert not (pet[:, :-1] & background[:, 1:]).any() and not (background[:, :-1] & pet[:, 1:]).any()
    assert not (pet[:-1] & background[1:]).any() and not (background[:-1] & pet[1:]).any()
    assert 0.05 < pet.mean() < 0.6


# --- warehouse ------------------------------------------------------------------------------------------

@pytest.fixture()
def mixed_dir(tmp_path) -> Path:
    good = {f"Bengal_{i}": jpeg(24, 16, (10 * i, 80, 40)) for i in range(1, 6)}
    images = {**good, "Bengal_90": b"garbage", "Bengal_91": jpeg(24, 16), "Bengal_92": jpeg(24, 16),
              "Bengal_93": jpeg(24, 16), "Bengal_94": jpeg(24, 16)}
    trimaps = {name: png(trimap(24, 16)) for name in good}
    seven = trimap(24, 16)
    seven[5, 5] = 7
    trimaps.update({"Bengal_90": png(trimap(24, 16)), "Bengal_92": png(seven), "Bengal_93": png(trimap(16, 24)),
                    "Bengal_94": png(trimap(24, 16))})
    listed = [name for name in images if name != "Bengal_94"] + ["Bengal_95"]
    return write_oxford(tmp_path / "archives", images, trimaps, listed)


def test_warehouse_keeps_sound_samples_and_explains_rejects(tmp_path, mixed_dir):
    summary, rejects = warehouse.build(mixed_dir, tmp_path / "out", n_shards=3)
    assert [(reject["id"], reject["reason"]) for reject in rejects] == [
        ("Bengal_90", "corrupt_jpeg"), ("Bengal_91", "missing_mask"), ("Bengal_92", "bad_mask_values"),
        ("Bengal_93", "size_mismatch"), ("Bengal_94", "unlisted"), ("Bengal_95", "missing_image")]
    assert json.loads((tmp_path / "out" / "rejects.json").read_text()) == rejects
    assert summary["samples"] == 5 and summary["rejected"] == 6 and summary["breeds"] == {"Bengal": 5}
    assert summary["rejects_by_reason"]["size_mismatch"] == 1
    assert sum(summary["shards"].values()) == 5 and list(summary["shards"]) == ["shard-00", "shard-01", "shard-02"]
    folders = warehouse.sample_folders(tmp_path / "out")
    assert [folder.name for folder in folders] == [f"Bengal_{i}" for i in range(1, 6)]
    for folder in folders:
        expected = int(hashlib.sha256(folder.name.encode()).hexdigest(), 16) % 3
        assert folder.parent.name == f"shard-{expected:02d}"
        assert (folder / "image.jpg").read_bytes() == jpeg(24, 16, (10 * int(folder.name[7:]), 80, 40))
        mask = Image.open(folder / "mask.png")
        assert mask.mode == "L" and set(np.unique(np.asarray(mask))) == {1, 2, 3}
        text = (folder / "metadata.json").read_text()
        assert list(json.loads(text)) == ["breed", "class_id", "height", "id", "species", "width"]


def test_warehouse_fails_when_nothing_is_left(tmp_path):
    archives = write_oxford(tmp_path / "a", {"Bengal_1": b"bad"}, {"Bengal_1": png(trimap(4, 4))}, ["Bengal_1"])
    with pytest.raises(ValueError, match="no valid sample.*corrupt_jpeg.*rejects.json"):
        warehouse.build(archives, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "rejects.json").read_text())[0]["reason"] == "corrupt_jpeg"


def test_warehouse_output_is_deterministic(tmp_path, synthetic_dir):
    warehouse.build(synthetic_dir, tmp_path / "one", n_shards=4)
    warehouse.build(synthetic_dir, tmp_path / "two", n_shards=4)
    assert tree(tmp_path / "one") == tree(tmp_path / "two")


def test_warehouse_stops_on_a_truncated_or_oversized_archive(tmp_path, synthetic_dir):
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "annotations.tar.gz").write_bytes((synthetic_dir / "annotations.tar.gz").read_bytes())
    whole = (synthetic_dir / "images.tar.gz").read_bytes()
    (cut / "images.tar.gz").write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(ArchiveError, match=r"cut/images.tar.gz, at tar offset .*unexpected end of file"):
        warehouse.build(cut, tmp_path / "out")
    with pytest.raises(ArchiveError, match="over max_member_bytes=100"):
        warehouse.build(synthetic_dir, tmp_path / "out2", limits=Limits(max_member_bytes=100))


@pytest.mark.parametrize(
    ("sample_id", "n_shards", "shard"),
    [("Abyssinian_1", 16, "shard-14"), ("american_bulldog_8", 16, "shard-08"), ("Synthetic_Tabby_3", 16, "shard-10"),
     ("yorkshire_terrier_190", 16, "shard-01"), ("Abyssinian_1", 3, "shard-01"), ("Abyssinian_1", 1, "shard-00")],
)
def test_shard_table(sample_id, n_shards, shard):
    assert warehouse.shard_name(warehouse.shard_of(sample_id, n_shards), n_shards) == shard


def test_shard_name_widens_past_100_shards():
    assert warehouse.shard_name(7, 16) == "shard-07" and warehouse.shard_name(7, 1000) == "shard-007"


# --- splits and transform -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("sample_id", "digit", "split"),
    [("Abyssinian_10", 0, "training"), ("Abyssinian_8", 1, "training"), ("Abyssinian_2", 2, "training"),
     ("Abyssinian_3", 3, "training"), ("Abyssinian_5", 4, "training"), ("Abyssinian_6", 5, "training"),
     ("Abyssinian_4", 6, "training"), ("Abyssinian_0", 7, "validation"), ("Abyssinian_1", 8, "test"),
     ("Abyssinian_34", 9, "calibration")],
)
def test_split_table(sample_id, digit, split):
    assert int(hashlib.md5(sample_id.encode()).hexdigest(), 16) % 10 == digit
    assert splits.split_of(sample_id) == split


def test_resize_keeps_labels_and_squares():
    mask = trimap(30, 20)
    image, resized = splits.resize(Image.new("L", (30, 20), 9), mask, 16)
    assert image.mode == "RGB" and image.size == (16, 16)
    assert resized.shape == (16, 16) and set(np.unique(resized)) <= {1, 2, 3}


@pytest.fixture(scope="module")
def warehouse_dir(tmp_path_factory, synthetic_dir) -> Path:
    folder = tmp_path_factory.mktemp("warehouse")
    warehouse.build(synthetic_dir, folder, n_shards=3)
    return folder


def test_transform_is_byte_identical_and_puts_each_sample_in_one_split(tmp_path, warehouse_dir):
    first = splits.transform(warehouse_dir, tmp_path / "one", img_size=24)
    splits.transform(warehouse_dir, tmp_path / "two", img_size=24)
    assert tree(tmp_path / "one") == tree(tmp_path / "two")
    accepted = {folder.name for folder in warehouse.sample_folders(warehouse_dir)}
    placed = [path.parent for path in (tmp_path / "one").glob("*/*/metadata.json") if path.parts[-3] != "stats"]
    assert sorted(folder.name for folder in placed) == sorted(accepted)
    for folder in placed:
        assert folder.parent.name == splits.split_of(folder.name)
        assert json.loads((folder / "metadata.json").read_text())["split"] == folder.parent.name
        assert Image.open(folder / "image.png").size == (24, 24)
        assert set(np.unique(np.asarray(Image.open(folder / "mask.png")))) <= {1, 2, 3}
    assert first["samples"] == len(accepted) == sum(first["splits"].values())
    assert first["shards"] == ["shard-00", "shard-01", "shard-02"]
    assert sorted(path.name for path in (tmp_path / "one" / "stats").iterdir()) == [
        "shard-00.json", "shard-01.json", "shard-02.json"]
    assert sum(first["class_balance"]["all"].values()) == pytest.approx(1.0, abs=1e-5)
    assert first["pixels"]["all"]["1"] > 0 and first["pixels"]["all"]["3"] > 0


def test_transform_of_one_datum_writes_only_its_shard(tmp_path, warehouse_dir):
    datum = tmp_path / "pfs" / "warehouse"
    datum.mkdir(parents=True)
    (datum / "shard-01").symlink_to(warehouse_dir / "shard-01")
    stats = splits.transform(datum, tmp_path / "out", img_size=16)
    ids = {folder.name for folder in (warehouse_dir / "shard-01").iterdir()}
    assert stats["shards"] == ["shard-01"] and stats["samples"] == len(ids)
    assert {path.parent.name for path in (tmp_path / "out").glob("*/*/image.png")} == ids
    saved = json.loads((tmp_path / "out" / "stats" / "shard-01.json").read_text())
    assert saved["splits"] == stats["splits"] and saved["img_size"] == 16


def test_transform_without_shards_says_what_it_wants(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no shard-NN folder"):
        splits.transform(tmp_path, tmp_path / "out")


# --- sources --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "kind", "location", "samples"),
    [("oxford", "oxford", sources.OXFORD_BASE_URL, None),
     ("synthetic", "synthetic", "reproml.seg.synthetic", 64), ("synthetic:5", "synthetic", "reproml.seg.synthetic", 5),
     ("file:///data/pets", "url", "file:///data/pets/", None), ("https://x.org/p/", "url", "https://x.org/p/", None)],
)
def test_parse_source(text, kind, location, samples):
    assert sources.parse_source(text) == sources.Source(kind, location, samples)


@pytest.mark.parametrize("text", ["synthetic:0", "synthetic:x", "synthetic:-3"])
def test_bad_synthetic_count(text):
    with pytest.raises(ValueError, match="positive integer"):
        sources.parse_source(text)


def test_unknown_source_lists_the_valid_forms():
    with pytest.raises(ValueError, match="unknown source 'kaggle'.*'oxford'.*folder.*file://.*synthetic:N"):
        sources.parse_source("kaggle")


def test_folder_and_file_url_sources_give_the_same_archives(tmp_path, synthetic_dir):
    folder = sources.fetch(str(synthetic_dir), tmp_path / "folder", progress=None)
    seen = []
    url = sources.fetch(synthetic_dir.as_uri(), tmp_path / "url", progress=lambda *args: seen.append(args))
    assert folder["kind"] == "folder" and url["kind"] == "url"
    assert folder["archives"] == url["archives"]
    assert seen[-1][0] == "annotations.tar.gz" and seen[-1][1] == seen[-1][2]
    for name, archive in folder["archives"].items():
        data = (tmp_path / "folder" / name).read_bytes()
        assert data == (synthetic_dir / name).read_bytes()
        assert archive == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert not list(tmp_path.rglob("*.part"))


def test_source_json_is_byte_identical_for_the_same_source(tmp_path):
    first = sources.fetch("synthetic:3", tmp_path / "a", seed=2)
    sources.fetch("synthetic:3", tmp_path / "b", seed=2)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert json.loads((tmp_path / "a" / "source.json").read_text()) == first
    assert first["samples"] == 3 and first["seed"] == 2 and first["origin"] == "synthetic:3"


def test_folder_without_an_archive_says_which(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "images.tar.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="has no annotations.tar.gz"):
        sources.fetch(str(tmp_path / "src"), tmp_path / "out", progress=None)


def test_unreachable_url_suggests_offline_sources(tmp_path):
    with pytest.raises(OSError, match="could not download file:///.*synthetic"):
        sources.fetch((tmp_path / "nowhere").as_uri(), tmp_path / "out", progress=None)


def test_progress_lines():
    stream = io.StringIO()
    report = sources.progress_to(stream)
    report("images.tar.gz", 2**20, 2**21)
    report("images.tar.gz", 2**21, 2**21)
    assert stream.getvalue().splitlines() == ["images.tar.gz: 1.0 of 2.0 MiB (50%)",
                                              "images.tar.gz: 2.0 of 2.0 MiB (100%)"]
    assert sources.progress_line("images.tar.gz", 3 * 2**20, 20 * 2**20) is None  # between two tenths


# --- figures --------------------------------------------------------------------------------------------

def test_figures(tmp_path, warehouse_dir):
    import matplotlib.pyplot as plt

    shown = [warehouse.load_sample(folder) for folder in warehouse.sample_folders(warehouse_dir)[:5]]
    grid = figures.sample_grid(shown, columns=3)
    assert len([ax for ax in grid.axes if ax.images]) == 10
    stats = splits.transform(warehouse_dir, tmp_path / "t", img_size=8)
    balance = figures.split_balance(stats)
    assert [ax.get_title() for ax in balance.axes[:2]] == ["Split sizes", "Class balance"]
    plt.close("all")
    with pytest.raises(ValueError, match="at least one sample"):
        figures.sample_grid([])


# Lines of the real annotations/list.txt: class ids over all 37 breeds, breed ids within the species.
REAL_LIST_LINES = ["Abyssinian_106 1 1 1", "american_bulldog_108 2 2 1", "Bombay_182 8 1 4", "boxer_98 9 2 5",
                   "British_Shorthair_103 10 1 5", "Ragdoll_100 27 1 9", "Sphynx_131 34 1 12"]


@pytest.mark.unit
@pytest.mark.parametrize("line", REAL_LIST_LINES)
def test_the_breed_table_numbers_breeds_as_the_real_list_does(line):
    name = line.split()[0]
    breeds = oxford.oxford_breeds()
    assert len(breeds) == 37 and breeds["yorkshire_terrier"].class_id == 37
    assert oxford.format_list([name], {name: breeds[oxford.breed_of(name)]}, header=False) == line + "\n"
