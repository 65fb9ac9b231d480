"""What the model server reads and writes: Seldon messages holding images, masks and feedback.

Pure functions of JSON values (numpy and Pillow only), so that they are tested without a server. A
request that cannot be read raises `BadRequest`, whose message says what was expected.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re

import numpy as np
from PIL import Image

from reproml.errors import ReproError
from reproml.seg.oxford import encode_mask

CLASSES = ("pet", "background", "border")  # mask values 0, 1, 2 = Oxford trimap values 1, 2, 3 minus 1
MAX_PIXELS = 4096 * 4096  # a decoded image larger than this is refused (decompression bombs)
# Deepest JSON nesting accepted: a SeldonMessage with an NxHxWx3 ndarray needs 6; Python's parser
# fails with a RecursionError (a 500) near 1,000, and protobuf's converter recurses per level too.
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
EXPECTED = ('a JSON SeldonMessage holding one image: {"binData": "<base64 JPEG or PNG>"}, '
            '{"strData": "<base64 JPEG or PNG>"}, or {"data": {"ndarray": <HxWx3 or NxHxWx3 integers 0-255>}}')


class BadRequest(ReproError):
    """A request the server cannot answer; `status` is its HTTP status (400, 413 or 415)."""

    def __init__(self, message: str, hint: str = EXPECTED, status: int = 400):
        super().__init__(message, hint)
        self.status = status


def _bracket_steps() -> np.ndarray:
    steps = np.zeros(256, np.int8)
    steps[[ord("["), ord("{")]] = 1
    steps[[ord("]"), ord("}")]] = -1
    return steps


_STEPS = _bracket_steps()


def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text, found without parsing it (no recursion).

    About 20 ms for a 4 MB ndarray request, a tenth of parsing it.
    """
    outside = np.frombuffer(_JSON_STRING.sub(b'""', body), np.uint8)  # brackets inside strings do not count
    steps = _STEPS[outside]
    return int(np.cumsum(steps[steps != 0], dtype=np.int32).max(initial=0))


def check_json(body: bytes | str, what: str) -> bytes:
    """A request's JSON text, refused when it nests deeper than `MAX_JSON_DEPTH` (before any parser recurses)."""
    data = body.encode() if isinstance(body, str) else body
    if json_depth(data) > MAX_JSON_DEPTH:
        raise BadRequest(f"{what} nests JSON more than {MAX_JSON_DEPTH} levels deep")
    return data


def read_json(body: bytes | str, what: str, object_only: bool = True) -> object:
    """Parse a request's JSON: at most `MAX_JSON_DEPTH` deep and, unless told otherwise, an object.

    Raises:
        BadRequest: not JSON, too deep, or not an object (a bare string, number or list).
    """
    try:
        value = json.loads(check_json(body, what))
    except (ValueError, RecursionError) as error:
        raise BadRequest(f"{what} is not valid JSON ({error})") from None
    if object_only:
        must_be_object(value, what)
    return value


def must_be_object(value: object, what: str) -> None:
    """Refuse a SeldonMessage that is a bare string, number or list (Seldon would fail on it with a 500)."""
    if not isinstance(value, dict):
        raise BadRequest(f"{what} is a JSON {type(value).__name__}, not an object")


def _b64decode(text: object, field: str) -> bytes:
    if not isinstance(text, str) or not text:
        raise BadRequest(f"{field} is empty or not a string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise BadRequest(f"{field} is not valid base64 ({error})") from None


def decode_image(data: bytes, field: str) -> np.ndarray:
    """Decode JPEG or PNG bytes into an HxWx3 uint8 RGB array."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ("JPEG", "PNG"):
                raise BadRequest(f"{field} holds a {image.format} image; only JPEG and PNG are read")
            if image.width * image.height > MAX_PIXELS:
                raise BadRequest(f"{field} is {image.width}x{image.height} pixels, more than {MAX_PIXELS}",
                                 status=413)
            return np.asarray(image.convert("RGB"))
    except BadRequest:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise BadRequest(f"{field} does not decode as a JPEG or PNG image ({error})") from None


def _integral(array: np.ndarray) -> np.ndarray:
    """Whole numbers held as floats (protobuf's ListValue has no integers) as integers; others unchanged."""
    if array.dtype.kind == "f" and array.size and np.array_equal(array, np.round(array)):
        return array.astype(np.int64)
    return array


def _pixels(values: object, field: str, from_proto: bool = False) -> np.ndarray:
    """An HxWx3 or NxHxWx3 integer array in 0..255 from JSON numbers, as uint8 NxHxWx3."""
    try:
        array = np.asarray(values)
    except ValueError as error:  # ragged nested lists
        raise BadRequest(f"{field} is not a rectangular array ({error})") from None
    if from_proto:
        array = _integral(array)
    if array.ndim == 3:
        array = array[np.newaxis]
    if array.ndim != 4 or array.shape[-1] != 3 or 0 in array.shape:
        raise BadRequest(f"{field} has shape {list(array.shape)}; expected [H, W, 3] or [N, H, W, 3]")
    if array.dtype.kind not in "iu":
        raise BadRequest(f"{field} holds {array.dtype} values; expected integers 0-255 (uint8 RGB pixels)")
    if array.min() < 0 or array.max() > 255:
        raise BadRequest(f"{field} holds values in [{array.min()}, {array.max()}]; expected 0-255")
    return array.astype(np.uint8)


def read_images(message: object, from_proto: bool = False) -> tuple[np.ndarray, str]:
    """The images of a prediction request.

    Args:
        message: the request's JSON body.
        from_proto: the message was converted from protobuf, where every number is a float.

    Returns:
        `(images, kind)`: images as NxHxWx3 uint8 (N = 1 for binData and strData), and which field held
        them (`binData`, `strData` or `ndarray`), so that the answer can use the same form.
    """
    if not isinstance(message, dict):
        raise BadRequest(f"the body is a JSON {type(message).__name__}, not an object")
    if "binData" in message:
        return decode_image(_b64decode(message["binData"], "binData"), "binData")[np.newaxis], "binData"
    if "strData" in message:
        return decode_image(_b64decode(message["strData"], "strData"), "strData")[np.newaxis], "strData"
    data = message.get("data")
    if isinstance(data, dict) and "ndarray" in data:
        return _pixels(data["ndarray"], "data.ndarray", from_proto), "ndarray"
    if isinstance(data, dict) and isinstance(data.get("tensor"), dict):
        tensor = data["tensor"]
        try:
            values = np.asarray(tensor.get("values", [])).reshape(tensor.get("shape", []))
        except (ValueError, TypeError) as error:
            raise BadRequest(f"data.tensor values do not fit its shape ({error})") from None
        return _pixels(values, "data.tensor", from_proto), "ndarray"
    raise BadRequest(f"the message has none of binData, strData, data.ndarray, data.tensor "
                     f"(keys: {sorted(message)})")


def wants_probabilities(message: dict, default: bool) -> bool:
    """Whether the caller asked for probabilities, with `{"meta": {"tags": {"probabilities": true}}}`."""
    tags = (message.get("meta") or {}).get("tags") or {}
    value = tags.get("probabilities", default)
    if not isinstance(value, bool):
        raise BadRequest(f"meta.tags.probabilities is {value!r}; expected true or false")
    return value


def answer(kind: str, masks: np.ndarray, probabilities: np.ndarray | None, tags: dict) -> dict:
    """The response body: the mask in the request's form, or masks and probabilities as jsonData.

    Args:
        kind: the request's form (`binData`, `strData`, `ndarray`).
        masks: NxHxW class ids (0 pet, 1 background, 2 border).
        probabilities: NxHxWx3 calibrated probabilities, when asked for, else None.
        tags: meta.tags of the response (the release's provenance).
    """
    meta = {"tags": tags}
    if probabilities is not None:
        squeeze = kind != "ndarray"
        mask_out, prob_out = (masks[0], probabilities[0]) if squeeze else (masks, probabilities)
        return {"meta": meta, "jsonData": {"classes": list(CLASSES), "mask": mask_out.tolist(),
                                           "probabilities": np.round(prob_out, 5).tolist()}}
    if kind == "ndarray":
        return {"meta": meta, "data": {"names": ["class"], "ndarray": masks.tolist()}}
    encoded = base64.b64encode(encode_mask(masks[0], compress_level=1)).decode("ascii")
    return {"meta": meta, kind: encoded}


def read_mask(message: object, field: str) -> np.ndarray:
    """A class-id mask (HxW, values 0-2) from a SeldonMessage: binData/strData PNG or data.ndarray."""
    if not isinstance(message, dict) or not message:
        raise BadRequest(f"{field} is missing", "send the corrected mask as a PNG in truth.binData, or "
                         "as data.ndarray of class ids 0 (pet), 1 (background), 2 (border)")
    if "binData" in message or "strData" in message:
        key = "binData" if "binData" in message else "strData"
        try:
            with Image.open(io.BytesIO(_b64decode(message[key], f"{field}.{key}"))) as image:
                if image.width * image.height > MAX_PIXELS:  # checked before decoding: a bomb is tiny
                    raise BadRequest(f"{field}.{key} is {image.width}x{image.height} pixels, more than "
                                     f"{MAX_PIXELS}", "send the mask at the image's size", status=413)
                mask = np.asarray(image.convert("L"))
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise BadRequest(f"{field}.{key} does not decode as a PNG mask ({error})") from None
    else:
        try:
            mask = _integral(np.asarray((message.get("data") or {}).get("ndarray", [])))
        except ValueError as error:  # ragged nested lists
            raise BadRequest(f"{field}.data.ndarray is not a rectangular array ({error})",
                             "send an HxW array of class ids 0 (pet), 1 (background), 2 (border)") from None
        mask = mask[0] if mask.ndim == 3 and mask.shape[0] == 1 else mask
    if mask.ndim != 2 or mask.size == 0 or mask.dtype.kind not in "iu" or mask.min() < 0 or mask.max() > 2:
        raise BadRequest(f"{field} is not an HxW mask of class ids 0, 1, 2 (shape {list(mask.shape)}, "
                         f"dtype {mask.dtype})", "0 = pet, 1 = background, 2 = border, as the server answers")
    return mask.astype(np.uint8)


def request_image_bytes(message: object) -> tuple[bytes, np.ndarray]:
    """The image of a feedback's request: the original bytes when it was sent encoded, and its pixels."""
    images, kind = read_images(message, from_proto=True)  # feedback always arrives as a protobuf message
    if images.shape[0] != 1:
        raise BadRequest(f"feedback holds {images.shape[0]} images; send one image per feedback")
    if kind in ("binData", "strData"):
        data = _b64decode(message[kind], kind)
        if data[:3] == b"\xff\xd8\xff":  # a JPEG is kept byte for byte, as the Oxford archive keeps them
            return data, images[0]
    buffer = io.BytesIO()
    Image.fromarray(images[0]).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue(), images[0]
