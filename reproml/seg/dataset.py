"""Input pipeline over transform's output: one split folder of `<id>/{image.png,mask.png}` samples.

Images are RGB PNGs of img_size x img_size; masks are Oxford trimaps (mode L) whose labels are
1 pet, 2 background, 3 border. Everything downstream works on class ids 0 pet, 1 background, 2 border,
so the shift by one happens here and only here. Images are normalised to float32 in [0, 1]; the model
takes that range as its input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

CLASS_NAMES: tuple[str, ...] = ("pet", "background", "border")
NUM_CLASSES = len(CLASS_NAMES)
SPLITS: tuple[str, ...] = ("training", "validation", "test", "calibration")


def split_dir(data_dir: str | Path, split: str) -> Path:
    """The folder of one split under transform's output root, checked to exist.

    Args:
        data_dir: Transform's output root (holds `training/`, `validation/`, ...).
        split: One of SPLITS.

    Returns:
        The split folder.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    path = Path(data_dir) / split
    if not path.is_dir():
        raise FileNotFoundError(
            f"split folder {path} does not exist; data_dir must be transform's output root "
            f"holding {', '.join(s + '/' for s in SPLITS)}"
        )
    return path


def list_samples(folder: str | Path) -> list[Path]:
    """Sample folders of one split, sorted by id so every run sees the same order.

    Args:
        folder: A split folder holding `<id>/image.png` and `<id>/mask.png`.

    Returns:
        The sample folders, sorted by name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"split folder {folder} does not exist")
    samples = sorted(p.parent for p in folder.glob("*/image.png") if (p.parent / "mask.png").is_file())
    if not samples:
        raise FileNotFoundError(
            f"no samples in {folder}: expected <id>/image.png and <id>/mask.png (transform's output layout)"
        )
    return samples


def image_size(folder: str | Path) -> int:
    """Side length in pixels of the (square) images of a split, read from its first sample."""
    with Image.open(list_samples(folder)[0] / "image.png") as image:
        width, height = image.size
    if width != height:
        raise ValueError(f"images in {folder} are {width}x{height}; transform writes square images")
    return width


def trimap_to_class_ids(mask: np.ndarray, where: str = "mask") -> np.ndarray:
    """Map trimap labels 1, 2, 3 to class ids 0, 1, 2, refusing any other value.

    Args:
        mask: Trimap array of labels 1 (pet), 2 (background), 3 (border).
        where: Names the mask in the error message.

    Returns:
        uint8 class ids of the same shape.
    """
    values = np.unique(mask)
    bad = values[(values < 1) | (values > NUM_CLASSES)]
    if bad.size:
        raise ValueError(f"{where} holds labels {bad.tolist()}; trimaps hold only 1 pet, 2 background, 3 border")
    return (mask - 1).astype(np.uint8)


def load_arrays(folder: str | Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Load a split into memory, for evaluation and calibration.

    Args:
        folder: A split folder.
        limit: Read at most this many samples (the first ones in id order); None reads all.

    Returns:
        images float32 (N, H, W, 3) in [0, 1], masks uint8 class ids (N, H, W), sample ids.
    """
    samples = list_samples(folder)[:limit]
    images, masks = [], []
    for sample in samples:
        with Image.open(sample / "image.png") as image:
            images.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
        with Image.open(sample / "mask.png") as mask:
            masks.append(trimap_to_class_ids(np.asarray(mask), where=str(sample / "mask.png")))
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise ValueError(f"images in {folder} differ in shape: {sorted(shapes)}; transform resizes all to one size")
    return normalise(np.stack(images)), np.stack(masks), [s.name for s in samples]


def normalise(images: np.ndarray) -> np.ndarray:
    """uint8 RGB pixels to the model's float32 input range [0, 1]."""
    return images.astype(np.float32) / 255.0


def _decode(image_path: tf.Tensor, mask_path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    image = tf.io.decode_png(tf.io.read_file(image_path), channels=3)
    mask = tf.io.decode_png(tf.io.read_file(mask_path), channels=1)
    # uint8 arithmetic: a stray label 0 wraps to 255, so one upper bound catches both ends.
    mask = mask - 1
    tf.debugging.assert_less(
        mask, tf.constant(NUM_CLASSES, tf.uint8), message="mask.png holds labels outside 1 pet, 2 background, 3 border"
    )
    return image, mask


def _flip_and_brightness(seed: tf.Tensor, image: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    # Image and mask are flipped as one tensor, so they cannot end up misaligned.
    stacked = tf.concat([image, tf.cast(mask, image.dtype)], axis=-1)
    stacked = tf.image.stateless_random_flip_left_right(stacked, seed=seed[0])
    image, mask = stacked[..., :3], tf.cast(stacked[..., 3:], tf.uint8)
    # Brightness jitter (image only) of at most 10% of the range keeps labels valid.
    image = tf.image.stateless_random_brightness(image, max_delta=0.1, seed=seed[1])
    return tf.clip_by_value(image, 0.0, 1.0), mask


# "strong": zoom into a square of 75-100 % of the side (56-100 % of the area), rotate up to 10 degrees.
MIN_ZOOM_SIDE, MAX_ROTATION_DEG = 0.75, 10.0


def _zoom_and_rotate(seed: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """A projective transform (output pixel -> input pixel) for a random zoom, rotation and shift."""
    u = tf.random.stateless_uniform((4,), seed=seed)
    side = MIN_ZOOM_SIDE + (1.0 - MIN_ZOOM_SIDE) * u[0]
    angle = (2.0 * u[1] - 1.0) * MAX_ROTATION_DEG * np.pi / 180.0
    centre_y, centre_x = tf.unstack(tf.cast(size, tf.float32) / 2.0)
    shift_x = (2.0 * u[2] - 1.0) * (1.0 - side) * centre_x
    shift_y = (2.0 * u[3] - 1.0) * (1.0 - side) * centre_y
    cos, sin = side * tf.cos(angle), side * tf.sin(angle)
    return tf.stack([
        cos, -sin, centre_x - cos * centre_x + sin * centre_y + shift_x,
        sin, cos, centre_y - sin * centre_x - cos * centre_y + shift_y,
        0.0, 0.0,
    ])[tf.newaxis]


def _strong(seed: tf.Tensor, image: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    image, mask = _flip_and_brightness(seed[:2], image, mask)
    size = tf.shape(image)[:2]
    transform = _zoom_and_rotate(seed[2], size)
    # The same transform for both; bilinear for the image, nearest for the trimap (no blended labels);
    # reflected edges, so rotated corners hold plausible pixels and labels rather than a fill colour.
    def warp(x, interpolation):
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=x[tf.newaxis], transforms=transform, output_shape=size, fill_value=0.0,
            interpolation=interpolation, fill_mode="REFLECT",
        )[0]

    image = warp(image, "BILINEAR")
    mask = warp(mask, "NEAREST")
    image = tf.image.stateless_random_contrast(image, 0.8, 1.2, seed=seed[3])
    image = tf.image.stateless_random_saturation(image, 0.8, 1.2, seed=seed[4])
    image = tf.image.stateless_random_hue(image, 0.02, seed=seed[5])
    return tf.clip_by_value(image, 0.0, 1.0), mask


def _resize(image: tf.Tensor, mask: tf.Tensor, size: int) -> tuple[tf.Tensor, tf.Tensor]:
    image = tf.image.resize(image, (size, size), method="bilinear", antialias=True)
    # Nearest neighbour: a trimap must keep its three labels, never a blend of two.
    mask = tf.image.resize(mask, (size, size), method="nearest")
    return tf.clip_by_value(image, 0.0, 1.0), tf.cast(mask, tf.uint8)


AUGMENTATIONS = {"flip": (_flip_and_brightness, 2), "strong": (_strong, 6)}  # function, seed pairs it takes


def make_dataset(
    folder: str | Path,
    batch_size: int,
    *,
    shuffle: bool = False,
    augment: str = "none",
    seed: int = 42,
    cache: bool = True,
    limit: int | None = None,
    resize: int | None = None,
) -> tf.data.Dataset:
    """A batched tf.data pipeline of (image, mask) over one split folder.

    Files are listed in id order, decoded in parallel (in order), cached as uint8, then normalised,
    shuffled and augmented with seeded ops: the same seed gives the same batches in every run, and each
    epoch draws fresh shuffles and flips from that seed.

    Args:
        folder: A split folder.
        batch_size: Images per batch.
        shuffle: Reshuffle every epoch (training).
        augment: "none"; "flip" (horizontal flip of image and mask together, brightness jitter); or
            "strong" (that, plus a random zoom, rotation and shift, and contrast, saturation and hue
            jitter); see `reproml.seg.recipe`.
        seed: Seed of the shuffle and the augmentation.
        cache: Keep decoded samples in memory after the first epoch.
        limit: Use at most this many samples (the first in id order); None uses all.
        resize: Shrink (or grow) each sample to this side in pixels after augmentation: the image
            bilinearly with antialiasing, the trimap by nearest neighbour; None keeps the stored size.

    Returns:
        Dataset of (float32 images (B, H, W, 3) in [0, 1], uint8 class ids (B, H, W, 1)).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    samples = list_samples(folder)[:limit]
    paths = tf.data.Dataset.from_tensor_slices(
        ([str(s / "image.png") for s in samples], [str(s / "mask.png") for s in samples])
    )
    ds = paths.map(_decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        ds = ds.cache()
    ds = ds.map(lambda image, mask: (tf.cast(image, tf.float32) / 255.0, mask), num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:
        ds = ds.shuffle(len(samples), seed=seed, reshuffle_each_iteration=True)
    if augment != "none":
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of none, {', '.join(AUGMENTATIONS)}; got {augment!r}")
        function, pairs = AUGMENTATIONS[augment]
        # int64 seed pairs per sample, re-drawn each epoch from `seed`: stateless ops need explicit seeds.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2 * pairs)
        seeds = seeds.map(lambda s: tf.reshape(s, (pairs, 2)))
        ds = tf.data.Dataset.zip((seeds, ds)).map(
            lambda s, pair: function(s, *pair), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    if resize is not None:
        if resize < 1:
            raise ValueError(f"resize must be >= 1 pixel, got {resize}")
        ds = ds.map(lambda image, mask: _resize(image, mask, resize), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def class_pixel_counts(folder: str | Path, limit: int | None = None) -> np.ndarray:
    """Pixels of each class over a split's masks (what class-weighted losses weigh against)."""
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    for sample in list_samples(folder)[:limit]:
        with Image.open(sample / "mask.png") as mask:
            ids = trimap_to_class_ids(np.asarray(mask), where=str(sample / "mask.png"))
        counts += np.bincount(ids.ravel(), minlength=NUM_CLASSES)
    return counts


def count_samples(folder: str | Path) -> int:
    """Number of samples in a split folder."""
    return len(list_samples(folder))
