"""The Seldon Core v1 model class that serves a release: `seldon-core-microservice reproml.serving.model.SegmentationModel`.

It loads a release (model.keras, calibration.json, release.json) from a folder (`model_dir`, what
`reproml serve` lays out from the local store) or, on a cluster, from Pachyderm by release commit id.
Requests carry one image as binData or strData (JPEG/PNG, base64) or a batch as data.ndarray (uint8);
the answer is the class mask (0 pet, 1 background, 2 border) at the model's output size, in the
request's form, and calibrated probabilities when `meta.tags.probabilities` is true. Every answer's
`meta.tags` name the release that gave it. Runs in the serving environment (`.venv-serving`).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from reproml.errors import ReproError
from reproml.serving.guard import DEFAULT_BODY_TIMEOUT_S, request_guard
from reproml.serving.payload import (
    BadRequest,
    answer,
    read_images,
    read_mask,
    request_image_bytes,
    wants_probabilities,
)

COUNTERS = ("requests", "images", "bad_requests", "feedback")

log = logging.getLogger(__name__)


class _Stats:
    """Counters (reported to Seldon as increments since the last report) and the last request's timers."""

    def __init__(self):
        self.lock = threading.Lock()
        self.totals = dict.fromkeys(COUNTERS, 0)
        self.reported = dict.fromkeys(COUNTERS, 0)
        self.timers: dict[str, float] = {}

    def add(self, name: str, count: int = 1) -> None:
        with self.lock:
            self.totals[name] += count

    def report(self) -> list[dict]:
        with self.lock:
            deltas = {name: self.totals[name] - self.reported[name] for name in COUNTERS}
            self.reported = dict(self.totals)
            timers, self.timers = self.timers, {}
        metrics = [{"type": "COUNTER", "key": f"reproml_{name}_total", "value": value}
                   for name, value in deltas.items() if value]
        metrics += [{"type": "TIMER", "key": f"reproml_{name}_ms", "value": value} for name, value in timers.items()]
        return metrics


class SegmentationModel:
    """Serve a released segmentation model.

    Args:
        model_dir: folder holding model.keras, calibration.json and release.json (env `MODEL_DIR`).
        release_commit: on a cluster, the release commit to fetch from Pachyderm when `model_dir` is empty.
        release_repo: the Pachyderm repo of releases.
        max_payload_bytes: larger request bodies get 413.
        body_timeout_s: a request whose body stops arriving for this long gets 408, freeing its thread.
        probabilities: answer with probabilities unless the request says otherwise.
        store: the local store for feedback (env `REPROML_STORE`); empty on a cluster (Pachyderm).
    """

    def __init__(self, model_dir: str = "", release_commit: str = "", release_repo: str = "release",
                 max_payload_bytes: int = 4_000_000, probabilities: bool = False, store: str = "",
                 body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S):
        self.model_dir = model_dir or os.environ.get("MODEL_DIR", "")
        self.release_commit = release_commit
        self.release_repo = release_repo
        self.max_payload_bytes = int(max_payload_bytes)
        self.probabilities = bool(probabilities)
        self.store_path = store or os.environ.get("REPROML_STORE", "")
        self.stats = _Stats()
        self.ready = False
        self.body_timeout_s = float(body_timeout_s)
        # Seldon registers this blueprint on its Flask app.
        self.model_error_handler = request_guard(self.max_payload_bytes, self.body_timeout_s)
        self._tags: dict[str, str] = {}

    def load(self) -> None:
        """Load the model and calibration, compile the inference function, warm it up, freeze the GC."""
        if self.model_dir:
            self._load_folder(Path(self.model_dir))
            return
        # Fetched files are read into memory by the load: the copy goes, leaving no model on the pod's disk.
        client = self._pachd_client()
        with tempfile.TemporaryDirectory(prefix="release-") as scratch:
            release = self._load_folder(self._fetch_release(Path(scratch), client))
        self._put_in_service(client, release)

    def _load_folder(self, folder: Path) -> dict:
        """`load` from a folder holding model.keras, calibration.json and release.json; returns release.json."""
        import tensorflow as tf

        for name in ("model.keras", "calibration.json", "release.json"):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"no {name} in the release folder {folder}; a release made by the "
                                        "release stage holds model.keras, calibration.json and release.json")
        calibration = json.loads((folder / "calibration.json").read_text())
        release = json.loads((folder / "release.json").read_text())
        from reproml.seg.inference import load_model  # float32 where this CPU cannot run bfloat16

        model = load_model(folder / "model.keras")
        height, width = model.inputs[0].shape[1:3]
        if height is None or width is None:
            raise ValueError(f"the model in {folder} has no fixed input size ({model.inputs[0].shape})")
        temperature = tf.constant(float(calibration["temperature"]), tf.float32)
        # Predict as calibrate fitted the temperature and evaluate scored the model: with or without the
        # mirror image's logits averaged in (test-time augmentation).
        tta = bool(calibration.get("tta", False))

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
        def infer(images):
            pixels = tf.image.resize(tf.cast(images, tf.float32) / 255.0, (height, width), antialias=True)
            logits = model(pixels, training=False)
            if tta:
                mirrored = model(tf.reverse(pixels, axis=[2]), training=False)
                logits = (logits + tf.reverse(mirrored, axis=[2])) / 2
            # Temperature scaling changes the probabilities, never their argmax: the mask uses the logits.
            return tf.argmax(logits, axis=-1, output_type=tf.int32), tf.nn.softmax(logits / temperature, axis=-1)

        self._model, self._infer = model, infer
        self.input_size = (int(height), int(width))
        provenance = release.get("provenance") or {}
        self._tags = {"release_commit": self.release_commit or str(release.get("release_commit", "")),
                      **{key: str(value) for key, value in provenance.items()},
                      "temperature": str(float(calibration["temperature"])),
                      "tta": str(tta).lower(),
                      "model_input": f"{height}x{width}"}
        for shape in ((1, height, width, 3), (1, 2 * height, 3 * width, 3)):  # trace once, run twice
            self._run(np.zeros(shape, np.uint8))
        gc.collect()
        gc.freeze()  # the loaded TensorFlow objects would otherwise make every full collection ~200 ms
        self.ready = True
        return release

    def _put_in_service(self, client, release: dict) -> None:
        """Record the release this server loaded as the one in service, in pachd's `deployed` repo.

        The release gate compares candidates with it; recording it here, once the release commit is
        finished and its model serves, means a release that failed or never loaded is never recorded.
        A failure to record is logged, not raised: serving the model matters more than the bookkeeping.
        """
        from reproml.serving import deployed

        try:
            commit = deployed.put_in_service_on_pachd(client, release, self.release_commit)
        except Exception as error:  # grpc.RpcError: pachd unreachable or refusing
            log.warning("could not record release@%s as in service in %s@master: %s; the release gate keeps "
                        "comparing with the release recorded before", self.release_commit, deployed.REPO, error)
            return
        log.info("release@%s %s", self.release_commit,
                 f"recorded as in service: {deployed.REPO}@{commit}" if commit else "is in service already")

    def _pachd_client(self):
        """A python-pachyderm client for `PACHD_ADDRESS` (the release's SeldonDeployment sets it)."""
        import python_pachyderm

        address = os.environ.get("PACHD_ADDRESS", "")
        if not address:
            raise ValueError("PACHD_ADDRESS is not set, so the release cannot be fetched from Pachyderm; "
                             "the release's SeldonDeployment sets it (e.g. grpc://pachd.pachyderm:30650)")
        return python_pachyderm.Client.new_from_pachd_address(address)

    def _run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        masks, probabilities = self._infer(images)
        return masks.numpy().astype(np.uint8), probabilities.numpy()

    def _fetch_release(self, folder: Path, client=None) -> Path:
        """Copy the release's files from Pachyderm (on a cluster) into a folder.

        Args:
            folder: an existing, empty folder.
            client: a python-pachyderm client; None connects to `PACHD_ADDRESS` (the SeldonDeployment sets it).

        Returns:
            The folder holding model.keras, calibration.json and release.json.
        """
        if not self.release_commit:
            raise ValueError("neither model_dir nor release_commit is set: nothing to serve; set MODEL_DIR, "
                             "or the release_commit parameter that the release's SeldonDeployment carries")
        client = client or self._pachd_client()
        # (repo, branch, id): python-pachyderm would read a 2-tuple's id as a branch name unless it looks
        # like a UUIDv4, so the id is named explicitly.
        commit = (self.release_repo, None, self.release_commit)
        self._wait_finished(client, commit)
        for name in ("model.keras", "calibration.json", "release.json"):
            try:
                data = client.get_file(commit, name).read()
            except Exception as error:  # grpc.RpcError: name the commit and file, not just the RPC status
                raise FileNotFoundError(f"cannot read {name} from {self.release_repo}@{self.release_commit} on "
                                        f"pachd: {error}; check the commit with `pachctl list file "
                                        f"{self.release_repo}@{self.release_commit}`") from error
            (folder / name).write_bytes(data)
        return folder

    def _wait_finished(self, client, commit: tuple) -> None:
        """Block until the release commit is finished; refuse one whose job failed.

        The release pipeline applies the SeldonDeployment from inside its own job, while the commit is
        still open, and pachd serves an open commit without its files: waiting here makes the first
        model pod start when the files exist, and a failed job never gets served.
        """
        from python_pachyderm.proto.v2.pfs import pfs_pb2

        where = f"{self.release_repo}@{self.release_commit}"
        try:
            [info] = list(client.inspect_commit(commit, commit_state=pfs_pb2.CommitState.FINISHED))
        except Exception as error:  # grpc.RpcError: name the commit, not just the RPC status
            raise FileNotFoundError(f"cannot inspect the release commit {where} on pachd: {error}; check it "
                                    f"with `pachctl inspect commit {where}`") from error
        if info.error:
            raise FileNotFoundError(f"the release commit {where} belongs to a failed job ({info.error}), so "
                                    "there is no model to serve; see `pachctl list job` and release again")

    def predict_raw(self, request):
        """Answer one prediction request (REST JSON dict, or a SeldonMessage proto over gRPC)."""
        from seldon_core.flask_utils import SeldonMicroserviceException
        from seldon_core.utils import json_to_seldon_message, seldon_message_to_json

        is_proto = not isinstance(request, dict | list)
        message = seldon_message_to_json(request) if is_proto else request
        started = time.perf_counter()
        try:
            images, kind = read_images(message, from_proto=is_proto)
            want_probabilities = wants_probabilities(message, self.probabilities)
        except BadRequest as error:
            self.stats.add("bad_requests")
            raise SeldonMicroserviceException(str(error), status_code=error.status, reason="BAD_REQUEST") from None
        decoded = time.perf_counter()
        masks, probabilities = self._run(images)
        inferred = time.perf_counter()
        body = answer(kind, masks, probabilities if want_probabilities else None, self._tags)
        self.stats.add("requests")
        self.stats.add("images", len(images))
        self.stats.timers = {"decode": 1000 * (decoded - started), "inference": 1000 * (inferred - decoded),
                             "request": 1000 * (time.perf_counter() - started)}
        body["meta"]["metrics"] = self.metrics()
        return json_to_seldon_message(body) if is_proto else body

    def send_feedback_raw(self, feedback):
        """Store the request's image with its corrected mask as a new sample in the feedback repo.

        The corrected mask is `truth` (PNG binData/strData or data.ndarray of class ids at any size; it
        is resized to the image). Without truth, a reward of 1 confirms the `response`'s mask. The
        request's `meta.tags.breed` names the pet's breed, which the sample's annotations need.
        """
        from google.protobuf import json_format
        from PIL import Image
        from seldon_core.flask_utils import SeldonMicroserviceException
        from seldon_core.utils import json_to_seldon_message

        from reproml.seg.oxford import encode_mask
        from reproml.serving import feedback as fb

        message = json_format.MessageToDict(feedback)
        reward = float(message.get("reward", 0.0))
        try:
            request = message.get("request") or {}
            image_bytes, pixels = request_image_bytes(request)
            if message.get("truth"):
                mask = read_mask(message["truth"], "truth")
            elif reward >= 1 and message.get("response"):
                mask = read_mask(message["response"], "response")
            else:
                raise BadRequest("the feedback has no corrected mask", "send the corrected mask as truth "
                                 "(PNG binData, or data.ndarray of 0 pet / 1 background / 2 border), or "
                                 "reward 1 with the response whose mask was right")
            breed = ((request.get("meta") or {}).get("tags") or {}).get("breed", "")
            fb.check_breed(breed)
        except ReproError as error:
            self.stats.add("bad_requests")
            raise SeldonMicroserviceException(str(error), status_code=getattr(error, "status", 400),
                                              reason="BAD_REQUEST") from None
        height, width = pixels.shape[:2]
        trimap = Image.fromarray(mask + 1).resize((width, height), Image.NEAREST)  # trimap = class id + 1
        name, commit = self._store_feedback(image_bytes, encode_mask(np.asarray(trimap)), breed, reward, fb)
        self.stats.add("feedback")
        return json_to_seldon_message({
            "meta": {"tags": {**self._tags, "feedback_sample": name, "feedback_commit": commit},
                     "metrics": self.metrics()},
            "strData": f"{fb.REPO}@{commit}"})

    def _store_feedback(self, image: bytes, trimap: bytes, breed: str, reward: float, fb) -> tuple[str, str]:
        from reproml.pfs import Store

        if not self.store_path:
            # On a cluster the feedback repo is on Pachyderm, where the release came from.
            address = os.environ.get("PACHD_ADDRESS", "")
            if not address:
                raise RuntimeError("feedback needs a store: set REPROML_STORE (reproml serve does) or, on a "
                                   "cluster, PACHD_ADDRESS (the release's SeldonDeployment does)")
            return fb.add_feedback_to_pachd(self._pachd_client(), image, trimap, breed, reward, self._tags)
        store = Store.open(self.store_path)
        try:
            return fb.add_feedback(store, image, trimap, breed, reward, self._tags)
        finally:
            store.close()

    def tags(self) -> dict:
        """The provenance of the release being served."""
        return dict(self._tags)

    def metrics(self) -> list[dict]:
        """Counters since the last report and the last request's timers (ms), in Seldon's metric form."""
        return self.stats.report()

    def health_status(self) -> dict:
        """Ready only when the model is loaded and answers a real (tiny) inference with the right shape."""
        if not self.ready:
            raise RuntimeError("the model is not loaded yet")
        masks, _ = self._run(np.zeros((1, *self.input_size, 3), np.uint8))
        return {"ready": True, "output_shape": list(masks.shape[1:]), **self._tags,
                "served": self.stats.totals["requests"]}
