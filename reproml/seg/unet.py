"""U-Net for 3-class trimap segmentation, built from scratch (default) or on a MobileNetV2 encoder.

The model takes float32 images in [0, 1] and returns logits (B, H, W, 3), not probabilities:
temperature scaling divides logits, and a softmax is applied where probabilities are used.
"""

from __future__ import annotations

import keras
from keras import layers

ENCODERS: tuple[str, ...] = ("scratch", "mobilenetv2")

# MobileNetV2 activations at strides 2, 4, 8 and 16 (skips) and 32 (bottom), as in the Keras and
# TensorFlow segmentation examples.
_MOBILENET_SKIPS = ("block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu", "block_13_expand_relu")
_MOBILENET_BOTTOM = "block_16_project"


def _conv_block(x: keras.KerasTensor, filters: int, batch_norm: bool, name: str) -> keras.KerasTensor:
    for i in (1, 2):
        # The bias is redundant before batch norm, which adds its own shift.
        x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm, name=f"{name}_conv{i}")(x)
        if batch_norm:
            # momentum 0.9 (not Keras' 0.99): moving statistics settle within a short run
            x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn{i}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def _up_block(
    x: keras.KerasTensor, skip: keras.KerasTensor, filters: int, batch_norm: bool, name: str
) -> keras.KerasTensor:
    x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"{name}_upconv")(x)
    x = layers.Concatenate(name=f"{name}_concat")([x, skip])
    return _conv_block(x, filters, batch_norm, name)


def _logits(x: keras.KerasTensor, num_classes: int) -> keras.KerasTensor:
    # float32 output even under mixed precision: logits feed the loss and temperature scaling.
    return layers.Conv2D(num_classes, 1, dtype="float32", name="logits")(x)


def check_size(img_size: int, depth: int, name: str = "img_size") -> None:
    """Refuse an image side the U-Net's `depth` poolings cannot halve evenly; `name` is the setting to blame."""
    if img_size % (2**depth):
        raise ValueError(
            f"{name} {img_size} is not divisible by 2**depth = {2**depth}; "
            f"choose a depth <= {(img_size & -img_size).bit_length() - 1} or another {name}"
        )


def build_unet(
    img_size: int | None,
    *,
    num_classes: int = 3,
    depth: int = 4,
    base_filters: int = 16,
    dropout: float = 0.1,
    batch_norm: bool = True,
    encoder: str = "scratch",
    weights: str | None = None,
) -> keras.Model:
    """Build a U-Net that maps (B, img_size, img_size, 3) images in [0, 1] to (B, H, W, classes) logits.

    Args:
        img_size: Side of the square input in pixels; divisible by 2**depth (by 32 for mobilenetv2).
            None (scratch encoder only) takes any side divisible by 2**depth: training at two sizes
            builds this, then copies its weights into a fixed-size model for saving and serving.
        num_classes: Output channels (pet, background, border).
        depth: Number of down-sampling steps of the from-scratch encoder.
        base_filters: Filters of the first level; doubled at each step down.
        dropout: Dropout rate at the bottleneck (0 disables it).
        batch_norm: Batch normalisation after every convolution.
        encoder: "scratch" (plain U-Net) or "mobilenetv2" (Keras application as encoder).
        weights: For mobilenetv2 only: None (random init) or "imagenet" (downloads weights: needs internet).

    Returns:
        An uncompiled Keras model.
    """
    if encoder not in ENCODERS:
        raise ValueError(f"unknown encoder {encoder!r}; choose one of {', '.join(ENCODERS)}")
    if depth < 1 or base_filters < 1 or not 0.0 <= dropout < 1.0:
        raise ValueError(
            f"need depth >= 1, base_filters >= 1 and 0 <= dropout < 1; "
            f"got depth={depth}, base_filters={base_filters}, dropout={dropout}"
        )
    if weights not in (None, "imagenet"):
        raise ValueError(f"weights must be None or 'imagenet', got {weights!r}")
    if encoder == "mobilenetv2":
        if img_size is None:
            raise ValueError("the mobilenetv2 encoder needs a fixed img_size")
        return _build_mobilenet_unet(img_size, num_classes, base_filters, dropout, batch_norm, weights)
    if weights is not None:
        raise ValueError("weights='imagenet' needs encoder='mobilenetv2'; the scratch U-Net has no pretrained weights")
    if img_size is not None:
        check_size(img_size, depth)

    inputs = keras.Input((img_size, img_size, 3), name="image")
    x, skips = inputs, []
    for level in range(depth):
        x = _conv_block(x, base_filters * 2**level, batch_norm, f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"down{level}_pool")(x)
    x = _conv_block(x, base_filters * 2**depth, batch_norm, "bottleneck")
    if dropout > 0:
        x = layers.Dropout(dropout, name="bottleneck_dropout")(x)
    for level in reversed(range(depth)):
        x = _up_block(x, skips[level], base_filters * 2**level, batch_norm, f"up{level}")
    return keras.Model(inputs, _logits(x, num_classes), name=f"unet_d{depth}_f{base_filters}")


def _build_mobilenet_unet(
    img_size: int, num_classes: int, base_filters: int, dropout: float, batch_norm: bool, weights: str | None
) -> keras.Model:
    check_size(img_size, 5)
    inputs = keras.Input((img_size, img_size, 3), name="image")
    # MobileNetV2 expects pixels in [-1, 1].
    scaled = layers.Rescaling(2.0, offset=-1.0, name="to_mobilenet_range")(inputs)
    try:
        backbone = keras.applications.MobileNetV2(
            input_shape=(img_size, img_size, 3), include_top=False, weights=weights
        )
    except Exception as err:  # keras.utils.get_file raises a bare Exception when a download fails
        if weights is None:
            raise
        raise RuntimeError(
            f"could not load MobileNetV2 ImageNet weights ({err}); they are downloaded on first use and need "
            "internet access: run with imagenet_weights false, or pre-fill ~/.keras/models/"
        ) from err
    encoder = keras.Model(
        backbone.input,
        [backbone.get_layer(n).output for n in (*_MOBILENET_SKIPS, _MOBILENET_BOTTOM)],
        name="mobilenetv2_encoder",
    )
    *skips, x = encoder(scaled)
    if dropout > 0:
        x = layers.Dropout(dropout, name="bottleneck_dropout")(x)
    for level in reversed(range(len(skips))):
        x = _up_block(x, skips[level], base_filters * 2**level, batch_norm, f"up{level + 1}")
    # The shallowest skip is at stride 2: one more up-sampling returns to full resolution.
    x = layers.Conv2DTranspose(base_filters, 2, strides=2, padding="same", name="up0_upconv")(x)
    x = _conv_block(x, base_filters, batch_norm, "up0")
    return keras.Model(inputs, _logits(x, num_classes), name="unet_mobilenetv2")
