"""A seeded generator of pet-like images with trimaps, written as the two Oxford-IIIT Pet archives.

Each sample is a body, a head, ears (pointed for cats, floppy for dogs) and a tail, painted in its
breed's colours over a textured background. Its trimap follows Oxford's labels: 1 pet, 2 background,
3 a band a few pixels wide along the pet's outline. Sample `i` depends only on `(seed, i)`, so
`synthetic:80` holds the 64 samples of `synthetic:64` unchanged plus 16 new ones, and the same
`(n, seed)` always gives byte-identical archives.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from reproml.seg import oxford
from reproml.seg.oxford import Entry, encode_mask, format_list, number_breeds

# Breed names follow Oxford's convention: a capital first letter marks a cat breed. The RGB colours
# are the breed's coat and its markings.
BREEDS = (
    ("Synthetic_Calico", "cat", (235, 225, 210), (200, 110, 40)),
    ("Synthetic_Tabby", "cat", (170, 120, 70), (90, 60, 35)),
    ("synthetic_collie", "dog", (150, 85, 40), (245, 240, 230)),
    ("synthetic_terrier", "dog", (120, 120, 125), (200, 170, 120)),
)
# Image sides in pixels: small, so that the whole pipeline runs in seconds, and varied like real photos.
MIN_SIDE, MAX_SIDE = 112, 176
BORDER_BAND = 5  # width in pixels of the trimap's border band (label 3), centred on the outline
JPEG_QUALITY = 90


def breed_entries() -> dict[str, Entry]:
    """The synthetic breeds' entries, numbered as Oxford numbers its own (`oxford.number_breeds`)."""
    return number_breeds({name: species for name, species, _, _ in BREEDS})


def sample_name(index: int) -> str:
    """The image name of sample `index` (0-based): breeds take turns, numbers start at 1 within a breed."""
    breed = BREEDS[index % len(BREEDS)][0]
    return f"{breed}_{index // len(BREEDS) + 1}"


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Values in [0, 1] that vary over about `cells` blobs per side (low-resolution noise, upsampled)."""
    small = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
    return np.asarray(small.resize((width, height), Image.BICUBIC), dtype=np.float32) / 255.0


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A textured background: two colours mixed by stripes and blotches, plus grain."""
    colours = rng.integers(30, 226, size=(2, 3)).astype(np.float32)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(6, 30)
    stripes = 0.5 + 0.5 * np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period)
    mix = 0.5 * stripes + 0.5 * _smooth_noise(rng, width, height, int(rng.integers(3, 9)))
    pixels = colours[0] * (1 - mix[..., None]) + colours[1] * mix[..., None]
    return pixels + rng.normal(0, 6, size=pixels.shape)


def _pet_shape(rng: np.random.Generator, species: str, width: int, height: int) -> tuple[Image.Image, tuple]:
    """The pet's silhouette (mode L, 255 = pet) and where its head is, for the eyes."""
    shape = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(shape)
    cx, cy = rng.uniform(0.4, 0.6) * width, rng.uniform(0.52, 0.64) * height
    rx, ry = rng.uniform(0.22, 0.32) * width, rng.uniform(0.15, 0.22) * height
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)
    side = 1 if rng.random() < 0.5 else -1  # which end of the body carries the head
    radius = rng.uniform(0.12, 0.17) * min(width, height)
    hx, hy = cx + side * rx * 0.85, cy - ry * 0.9
    draw.ellipse((hx - radius, hy - radius, hx + radius, hy + radius), fill=255)
    for ear in (-1, 1):
        ex = hx + ear * radius * 0.6
        if species == "cat":
            draw.polygon([(ex - radius * 0.35, hy - radius * 0.6), (ex + radius * 0.35, hy - radius * 0.6),
                          (ex + ear * radius * 0.15, hy - radius * 1.5)], fill=255)
        else:
            draw.ellipse((ex - radius * 0.3, hy - radius * 0.4, ex + radius * 0.3, hy + radius * 0.7), fill=255)
    tail_x = cx - side * rx * 0.9
    draw.line([(tail_x, cy), (tail_x - side * rx * 0.5, cy - ry * rng.uniform(0.5, 1.6))],
              fill=255, width=max(5, int(radius * 0.4)))
    return shape, (hx, hy, radius)


def draw_sample(rng: np.random.Generator, breed: tuple) -> tuple[Image.Image, np.ndarray]:
    """Draw one pet on a textured background.

    Args:
        rng: the sample's random generator.
        breed: one row of `BREEDS`.

    Returns:
        The RGB image and its trimap (`uint8`, 1 pet, 2 background, 3 border band).
    """
    _, species, coat, markings = breed
    width, height = (int(side) for side in rng.integers(MIN_SIDE, MAX_SIDE + 1, size=2))
    pixels = _background(rng, width, height)
    shape, (hx, hy, radius) = _pet_shape(rng, species, width, height)
    pet = np.asarray(shape) > 127
    jitter = rng.normal(0, 12, size=3)
    patches = (_smooth_noise(rng, width, height, int(rng.integers(4, 10))) > 0.6)[..., None]
    fur = np.where(patches, np.asarray(markings, np.float32), np.asarray(coat, np.float32)) + jitter
    fur = fur + rng.normal(0, 8, size=fur.shape)
    pixels = np.where(pet[..., None], fur, pixels)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for eye in (-1, 1):
        ex, ey, er = hx + eye * radius * 0.4, hy - radius * 0.1, max(1.5, radius * 0.12)
        draw.ellipse((ex - er, ey - er, ex + er, ey + er), fill=(20, 20, 20))
    # Photos have soft edges; a slight blur keeps the outline from being a trivially sharp step.
    image = image.filter(ImageFilter.GaussianBlur(0.7))
    outer = np.asarray(shape.filter(ImageFilter.MaxFilter(BORDER_BAND))) > 127
    inner = np.asarray(shape.filter(ImageFilter.MinFilter(BORDER_BAND))) > 127
    trimap = np.where(pet, 1, 2).astype(np.uint8)
    trimap[outer & ~inner] = 3
    return image, trimap


def generate(index: int, seed: int) -> tuple[str, bytes, bytes]:
    """Sample `index` for `seed`: its name, JPEG bytes and trimap PNG bytes."""
    rng = np.random.default_rng([seed, index])
    image, trimap = draw_sample(rng, BREEDS[index % len(BREEDS)])
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return sample_name(index), buffer.getvalue(), encode_mask(trimap)


def write_archives(output_dir: str | Path, n: int, seed: int) -> dict[str, Path]:
    """Write `images.tar.gz` and `annotations.tar.gz` of `n` synthetic samples in the Oxford layout.

    Args:
        output_dir: folder to write into (created if missing).
        n: number of samples, at least 1.
        seed: the generator's seed; the same `(n, seed)` gives byte-identical archives.

    Returns:
        The paths of the two archives by archive name.
    """
    if n < 1:
        raise ValueError(f"a synthetic source needs at least 1 sample, got n={n}; use e.g. synthetic:64")
    samples = [generate(index, seed) for index in range(n)]
    names = [name for name, _, _ in samples]
    by_breed = breed_entries()
    entries = {name: by_breed[name.rpartition("_")[0]] for name in names}
    # Oxford splits each breed about half and half; alternate numbers within a breed do the same.
    trainval = [name for name in names if int(name.rpartition("_")[2]) % 2 == 1]
    test = [name for name in names if int(name.rpartition("_")[2]) % 2 == 0]
    return oxford.write_archives(output_dir, {f"{name}.jpg": jpeg for name, jpeg, _ in samples},
                                 {f"{name}.png": png for name, _, png in samples},
                                 format_list(names, entries, header=False).splitlines(),
                                 {"test": format_list(test, entries, header=False),
                                  "trainval": format_list(trainval, entries, header=False)})
