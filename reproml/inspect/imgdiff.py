"""Pixel differences between two images, with a figure: A | B | where they differ."""

import io
from dataclasses import asdict, dataclass
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff")


@dataclass
class ImageDiff:
    """How two images differ: sizes, the share of pixels that changed, the largest change.

    `max_delta` is in 0-255 intensity units over all channels; `figure` is the PNG written, if any.
    """

    changed: bool
    size_a: tuple[int, int]
    size_b: tuple[int, int]
    changed_fraction: float
    max_delta: int
    mean_delta: float
    figure: str | None = None

    def to_json(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        if not self.changed:
            return "image unchanged (same pixels)"
        if self.size_a != self.size_b:
            text = f"image changed: size {self.size_a[0]}x{self.size_a[1]} -> {self.size_b[0]}x{self.size_b[1]}"
        else:
            text = (f"image changed: {self.changed_fraction:.1%} of pixels differ, "
                    f"max delta {self.max_delta}/255, mean {self.mean_delta:.2f}")
        return text + (f"; figure {self.figure}" if self.figure else "")


def _pixels(data: bytes):
    import numpy as np
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    return image, np.asarray(image.convert("RGBA"), dtype=np.int16)


def image_diff(a: bytes, b: bytes, figure: Path | None = None) -> ImageDiff:
    """Compare two encoded images pixel by pixel; write the difference figure to `figure` if they differ.

    Args:
        a: the old image's bytes (PNG, JPEG, ...).
        b: the new image's bytes.
        figure: where to write a PNG showing A, B and the difference (brighter = larger change).

    Returns:
        The comparison; identical pixels in different encodings count as unchanged.
    """
    import numpy as np

    image_a, pixels_a = _pixels(a)
    image_b, pixels_b = _pixels(b)
    if pixels_a.shape == pixels_b.shape:
        delta = np.abs(pixels_a - pixels_b).max(axis=2)
        changed = delta > 0
        result = ImageDiff(bool(changed.any()), image_a.size, image_b.size, float(changed.mean()),
                           int(delta.max()), float(delta.mean()))
    else:
        delta = None
        result = ImageDiff(True, image_a.size, image_b.size, 1.0, 255, 255.0)
    if result.changed and figure is not None:
        _write_figure(image_a, image_b, delta, Path(figure))
        result.figure = str(figure)
    return result


def _write_figure(image_a, image_b, delta, path: Path) -> None:
    """A | B | difference, side by side; the difference is stretched so the largest change is white-red."""
    import numpy as np
    from PIL import Image

    height = max(image_a.height, image_b.height)
    panels = [image_a.convert("RGB"), image_b.convert("RGB")]
    if delta is not None:
        scale = 255.0 / max(int(delta.max()), 1)
        heat = np.zeros((*delta.shape, 3), dtype=np.uint8)
        heat[..., 0] = np.clip(delta * scale, 0, 255).astype(np.uint8)
        heat[..., 1] = np.clip((delta * scale - 128) * 2, 0, 255).astype(np.uint8)  # large changes turn whiter
        panels.append(Image.fromarray(heat, "RGB"))
    gap = 4
    canvas = Image.new("RGB", (sum(p.width for p in panels) + gap * (len(panels) - 1), height), (255, 255, 255))
    x = 0
    for panel in panels:
        canvas.paste(panel, (x, 0))
        x += panel.width + gap
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG")


def is_image(path: str) -> bool:
    """Whether a file name looks like an image by its suffix."""
    return path.lower().endswith(IMAGE_SUFFIXES)
