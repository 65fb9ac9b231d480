"""The Oxford-IIIT Pet format: `annotations/list.txt`, the two archives, and what makes a sample valid.

Data quirks worth knowing: trimap pixels are 1 (pet), 2 (background), 3 (border, "not sure"); a breed
whose name starts with a capital letter is a cat breed; the breed is the image name without its last
`_<number>`; the real images archive also holds a few `.mat` files and the real annotations archive
macOS `._*` resource files, which are not samples.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from reproml.seg.archives import ArchiveError, Limits, iter_members, write_tar_gz

# The six header lines of the real annotations/list.txt, verbatim (typo included).
LIST_HEADER = (
    "#Image CLASS-ID SPECIES BREED ID",
    "#ID: 1:37 Class ids",
    "#SPECIES: 1:Cat 2:Dog",
    "#BREED ID: 1-25:Cat 1:12:Dog",
    "#All images with 1st letter as captial are cat images",
    "#images with small first letter are dog images",
)
SPECIES = {1: "cat", 2: "dog"}
# The 37 breeds of the dataset as its image names spell them (cats capitalised), each sorted case-insensitively.
CAT_BREEDS = ("Abyssinian Bengal Birman Bombay British_Shorthair Egyptian_Mau Maine_Coon Persian Ragdoll "
              "Russian_Blue Siamese Sphynx").split()
DOG_BREEDS = ("american_bulldog american_pit_bull_terrier basset_hound beagle boxer chihuahua "
              "english_cocker_spaniel english_setter german_shorthaired great_pyrenees havanese japanese_chin "
              "keeshond leonberger miniature_pinscher newfoundland pomeranian pug saint_bernard samoyed "
              "scottish_terrier shiba_inu staffordshire_bull_terrier wheaten_terrier yorkshire_terrier").split()
TRIMAP_LABELS = (1, 2, 3)
IMAGES_ARCHIVE = "images.tar.gz"
ANNOTATIONS_ARCHIVE = "annotations.tar.gz"
LIST_MEMBER = "annotations/list.txt"
TRIMAP_PREFIX = "annotations/trimaps/"
IMAGE_PREFIX = "images/"
# What bounds the warehouse's memory, whatever an archive that passes the size limits holds (its spec
# requests 1Gi): trimaps wait in memory for their image up to DEFAULT_MAX_HELD_BYTES, the rest in a
# temporary folder (the real annotations hold about 10 MB of trimaps, 1.4 KB each); an image or trimap
# is decoded only when it has at most MAX_SAMPLE_PIXELS pixels (75 MB as RGB; Oxford's photos have under
# 5 million), so a small file that decodes to gigabytes is a reject, not an out-of-memory kill.
DEFAULT_MAX_HELD_BYTES = 64 * 2**20
MAX_SAMPLE_PIXELS = 25_000_000

# Reason codes of rejected samples, with what each means (rejects.json carries the code and a detail).
REASONS = {
    "unlisted": "the image has no line in annotations/list.txt, so its class is unknown",
    "missing_image": "annotations/list.txt names a sample whose image is not in images.tar.gz",
    "corrupt_jpeg": "the image bytes do not decode",
    "not_jpeg": "the image decodes but is not a JPEG (the real archive has a few PNGs named .jpg)",
    "missing_mask": "no annotations/trimaps/<id>.png for the image",
    "unreadable_mask": "the trimap does not decode, or is not a single-channel image",
    "bad_mask_values": "the trimap holds values outside {1, 2, 3}",
    "size_mismatch": "the image and its trimap differ in width or height",
    "too_large": f"the image or trimap has more than {MAX_SAMPLE_PIXELS:,} pixels",
    "name_too_long": "the sample name is over 255 bytes, too long for a folder name on common filesystems",
}
# A sample becomes a folder named after it; NAME_MAX is 255 bytes on ext4, XFS, APFS and NTFS.
MAX_NAME_BYTES = 255


@dataclass(frozen=True)
class Entry:
    """One line of annotations/list.txt, with the breed derived from the image name."""

    class_id: int
    species: str
    breed_id: int
    breed: str


@dataclass(frozen=True)
class Sample:
    """One sample as found in the archives; any part may be missing."""

    id: str
    image: bytes | None
    trimap: bytes | None
    entry: Entry | None


@dataclass(frozen=True)
class Reject:
    """A sample left out, with its reason code (a key of `REASONS`) and a human-readable detail."""

    id: str
    reason: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        """The JSON form written to rejects.json."""
        return {"id": self.id, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class Accepted:
    """A valid sample: the original JPEG bytes, the trimap as an array, and its metadata."""

    id: str
    image: bytes
    mask: np.ndarray
    metadata: dict[str, object]


def breed_of(name: str) -> str:
    """The breed of an image name: `Abyssinian_12` -> `Abyssinian`, `american_pit_bull_terrier_3` -> ..."""
    breed, _, number = name.rpartition("_")
    if not breed or not number.isdigit():
        raise ValueError(f"image name {name!r} is not <breed>_<number> as in the Oxford-IIIT Pet dataset")
    return breed


def number_breeds(species_of: dict[str, str]) -> dict[str, Entry]:
    """Entries by breed name, numbered as the dataset's list.txt does.

    Class ids 1.. follow the breed names sorted case-insensitively; the breed id counts within the species
    in the same order.

    Args:
        species_of: breed name -> "cat" or "dog".
    """
    entries, counts = {}, dict.fromkeys(SPECIES.values(), 0)
    for class_id, breed in enumerate(sorted(species_of, key=str.lower), start=1):
        species = species_of[breed]
        counts[species] += 1
        entries[breed] = Entry(class_id, species, counts[species], breed)
    return entries


def oxford_breeds() -> dict[str, Entry]:
    """The 37 breeds of the Oxford-IIIT Pet dataset, numbered as its list.txt numbers them."""
    return number_breeds({**dict.fromkeys(CAT_BREEDS, "cat"), **dict.fromkeys(DOG_BREEDS, "dog")})


def parse_list(text: str, where: str = LIST_MEMBER) -> dict[str, Entry]:
    """Parse annotations/list.txt.

    Args:
        text: the file's content: `#` comment lines, then `<Name> <CLASS-ID> <SPECIES> <BREED ID>` lines.
        where: where the text came from, for error messages.

    Returns:
        Entries by image name.

    Raises:
        ValueError: a line is malformed, names an unknown species, or repeats a name; the message gives
            the line number.
    """
    entries: dict[str, Entry] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        try:
            if len(fields) != 4:
                raise ValueError(f"expected 4 fields, got {len(fields)}")
            name, class_id, species_id, breed_id = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
            if species_id not in SPECIES:
                raise ValueError(f"species {species_id} is neither 1 (cat) nor 2 (dog)")
            if name in entries:
                raise ValueError(f"{name} is listed twice")
            entries[name] = Entry(class_id, SPECIES[species_id], breed_id, breed_of(name))
        except ValueError as err:
            raise ValueError(f"{where}, line {number} ({line!r}): {err}") from None
    return entries


def decode_list(data: bytes, where: str) -> str:
    """The text of a list.txt; raise `ValueError` naming the file, line and byte when it is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ValueError(f"{where}, line {line}: byte {data[err.start]:#04x} is not UTF-8 ({err.reason}); "
                         "save the file as UTF-8") from None


def format_list(names: list[str], entries: dict[str, Entry], header: bool = True) -> str:
    """The text of list.txt (with its header) or trainval.txt/test.txt (without) for `names`, in order."""
    species_ids = {species: key for key, species in SPECIES.items()}
    lines = list(LIST_HEADER) if header else []
    for name in names:
        entry = entries[name]
        lines.append(f"{name} {entry.class_id} {species_ids[entry.species]} {entry.breed_id}")
    return "".join(line + "\n" for line in lines)


def write_archives(folder: str | Path, images: Mapping[str, bytes], trimaps: Mapping[str, bytes],
                   list_lines: Sequence[str], splits: Mapping[str, str] | None = None) -> dict[str, Path]:
    """Write `images.tar.gz` and `annotations.tar.gz` in the dataset's layout; every source ends this way.

    Members go in the order given, so the same arguments always give byte-identical archives.

    Args:
        folder: where the two archives go (created if missing).
        images: file name under `images/` (`Abyssinian_1.jpg`, or the real archive's `.mat` files) -> bytes.
        trimaps: file name under `annotations/trimaps/` -> PNG bytes.
        list_lines: the lines of `annotations/list.txt` after its header (`format_list(..., header=False)`).
        splits: split name (`test`, `trainval`) -> the text of `annotations/<split>.txt`, if any.

    Returns:
        The two archives' paths by archive name.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {IMAGES_ARCHIVE: folder / IMAGES_ARCHIVE, ANNOTATIONS_ARCHIVE: folder / ANNOTATIONS_ARCHIVE}
    write_tar_gz(paths[IMAGES_ARCHIVE],
                 [(IMAGE_PREFIX.rstrip("/"), None), *((IMAGE_PREFIX + name, data) for name, data in images.items())])
    listing = "".join(line + "\n" for line in (*LIST_HEADER, *list_lines))
    write_tar_gz(paths[ANNOTATIONS_ARCHIVE], [
        ("annotations", None), (LIST_MEMBER, listing.encode()),
        *((f"annotations/{split}.txt", text.encode()) for split, text in (splits or {}).items()),
        (TRIMAP_PREFIX.rstrip("/"), None), *((TRIMAP_PREFIX + name, data) for name, data in trimaps.items())])
    return paths


def _sample_name(member: str, prefix: str, suffix: str) -> str | None:
    """The sample id of an archive member, or None for members that are not samples."""
    if not member.startswith(prefix) or not member.endswith(suffix):
        return None
    name = member[len(prefix):-len(suffix)]
    if "/" in name or name.startswith("._") or not name:
        return None
    return name


class _Shelf:
    """Trimaps by sample id: in memory up to `max_held_bytes`, then in files under a temporary folder."""

    def __init__(self, folder: Path, max_held_bytes: int):
        self.folder = folder
        self.budget = max_held_bytes
        self.held: dict[str, bytes] = {}
        self.spilled: dict[str, Path] = {}

    def put(self, name: str, content: bytes) -> None:
        if len(content) <= self.budget:
            self.held[name] = content
            self.budget -= len(content)
        else:
            path = self.folder / f"{len(self.spilled)}.png"  # ids are never file names: they come from outside
            path.write_bytes(content)
            self.spilled[name] = path

    def pop(self, name: str) -> bytes | None:
        if name in self.held:
            content = self.held.pop(name)
            self.budget += len(content)
            return content
        path = self.spilled.pop(name, None)
        return path.read_bytes() if path is not None else None


def iter_samples(archive_dir: str | Path, limits: Limits | None = None,
                 max_held_bytes: int = DEFAULT_MAX_HELD_BYTES) -> Iterator[Sample]:
    """Read the samples of the two Oxford archives in `archive_dir`.

    The annotations archive (small) is read first; the images archive is then streamed, so memory
    holds at most `max_held_bytes` of trimaps (the rest wait in a temporary folder) and one image.

    Args:
        archive_dir: folder with `images.tar.gz` and `annotations.tar.gz`.
        limits: size limits applied to each archive.
        max_held_bytes: how many bytes of trimaps may wait in memory for their image.

    Returns:
        Samples: first every image in archive order, then, sorted, the listed ids without an image.

    Raises:
        ArchiveError: an archive is unsafe, damaged, or the annotations have no list.txt.
        ValueError: list.txt is malformed.
    """
    archive_dir = Path(archive_dir)
    annotations = archive_dir / ANNOTATIONS_ARCHIVE
    entries: dict[str, Entry] | None = None
    with tempfile.TemporaryDirectory(prefix="reproml-trimaps-") as spill:
        trimaps = _Shelf(Path(spill), max_held_bytes)
        for member, content in iter_members(annotations, limits):
            if member == LIST_MEMBER:
                entries = parse_list(decode_list(content, f"{annotations}:{LIST_MEMBER}"),
                                     where=f"{annotations}:{LIST_MEMBER}")
            elif (name := _sample_name(member, TRIMAP_PREFIX, ".png")) is not None:
                trimaps.put(name, content)
        if entries is None:
            raise ArchiveError(f"archive {annotations} has no {LIST_MEMBER}; is it the Oxford-IIIT Pet "
                               "annotations.tar.gz?")
        seen: set[str] = set()
        for member, content in iter_members(archive_dir / IMAGES_ARCHIVE, limits):
            name = _sample_name(member, IMAGE_PREFIX, ".jpg")
            if name is not None:
                seen.add(name)
                yield Sample(name, content, trimaps.pop(name), entries.get(name))
        for name in sorted(set(entries) - seen):
            yield Sample(name, None, trimaps.pop(name), entries[name])


class _TooLarge(ValueError):
    """An image whose header promises more than MAX_SAMPLE_PIXELS pixels; it is not decoded."""


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))  # reads the header only
    if image.width * image.height > MAX_SAMPLE_PIXELS:
        raise _TooLarge(f"{image.width}x{image.height} pixels, more than {MAX_SAMPLE_PIXELS:,}")
    image.load()
    return image


def validate(sample: Sample) -> Accepted | Reject:
    """Check one sample: listed, image decodes as JPEG, trimap present, readable, values in {1,2,3}, same size.

    Returns:
        `Accepted` with the mask as a `uint8` array and metadata `{id, class_id, species, breed, width,
        height}`, or `Reject` with the first failed check's reason code.
    """
    if len(sample.id.encode("utf-8")) > MAX_NAME_BYTES:
        return Reject(sample.id, "name_too_long", f"{len(sample.id.encode('utf-8'))} bytes; a folder name may "
                      f"have at most {MAX_NAME_BYTES}")
    if sample.entry is None:
        return Reject(sample.id, "unlisted", f"{sample.id} is not in {LIST_MEMBER}")
    if sample.image is None:
        return Reject(sample.id, "missing_image", f"no {IMAGE_PREFIX}{sample.id}.jpg in {IMAGES_ARCHIVE}")
    try:
        image = _decode(sample.image)
    except _TooLarge as err:
        return Reject(sample.id, "too_large", f"{IMAGE_PREFIX}{sample.id}.jpg is {err}")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return Reject(sample.id, "corrupt_jpeg", f"{IMAGE_PREFIX}{sample.id}.jpg does not decode: {err}")
    # Camera JPEGs with a multi-picture index open as "MPO"; their first frame is a plain JPEG. EXIF
    # orientation is deliberately not applied: Oxford's trimaps follow the stored pixel order.
    if image.format not in ("JPEG", "MPO"):
        return Reject(sample.id, "not_jpeg", f"{IMAGE_PREFIX}{sample.id}.jpg is {image.format} data")
    mask_name = f"{TRIMAP_PREFIX}{sample.id}.png"
    if sample.trimap is None:
        return Reject(sample.id, "missing_mask", f"no {mask_name} in {ANNOTATIONS_ARCHIVE}")
    try:
        mask = np.asarray(_decode(sample.trimap))
    except _TooLarge as err:
        return Reject(sample.id, "too_large", f"{mask_name} is {err}")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return Reject(sample.id, "unreadable_mask", f"{mask_name} does not decode: {err}")
    if mask.ndim != 2:
        return Reject(sample.id, "unreadable_mask", f"{mask_name} has {mask.shape[2]} channels; a trimap has 1")
    height, width = mask.shape
    if (width, height) != image.size:
        return Reject(sample.id, "size_mismatch", f"image is {image.size[0]}x{image.size[1]}, "
                      f"{mask_name} is {width}x{height} (width x height)")
    values, counts = np.unique(mask, return_counts=True)
    outside = [(int(v), int(c)) for v, c in zip(values, counts, strict=True) if v not in TRIMAP_LABELS]
    if outside:
        listed = ", ".join(f"{v} ({c} px)" for v, c in outside)
        return Reject(sample.id, "bad_mask_values", f"{mask_name} holds values outside {{1, 2, 3}}: {listed}")
    metadata = {"id": sample.id, "class_id": sample.entry.class_id, "species": sample.entry.species,
                "breed": sample.entry.breed, "width": width, "height": height}
    return Accepted(sample.id, sample.image, mask.astype(np.uint8), metadata)


def encode_png(image: Image.Image, compress_level: int = 6) -> bytes:
    """PNG bytes that depend only on the pixels and `compress_level` (no time or text chunks).

    The one PNG encoder of the package: datasets keep the default; the model server passes 1 because it
    encodes on every request and latency matters more than bytes there.
    """
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def encode_mask(mask: np.ndarray, compress_level: int = 6) -> bytes:
    """An HxW mask (trimap or class ids) as an 8-bit greyscale (mode L) PNG."""
    return encode_png(Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8)), compress_level)
