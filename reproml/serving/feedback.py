"""The feedback loop: corrections sent to the model server become samples that stream can read again.

Each feedback is one commit in the `feedback` repo, laid out as the Oxford-IIIT Pet archives are:

    images/<name>.jpg                  the request's image (its JPEG bytes as received, when it was a JPEG)
    annotations/trimaps/<name>.png     the corrected mask as a trimap (1 pet, 2 background, 3 border)
    annotations/list/<name>.txt        the sample's annotations/list.txt line
    feedback/<name>.json               reward, the release that answered, when

`<name>` is `<breed>_<number>` as in the dataset (the number derives from the content, so the same
correction sent twice is the same sample). The repo is a declared input of stream (`pachyderm/stream.yaml`);
`reproml.seg.sources.write_feedback_archives` turns its files into the two archives stream reads.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from reproml.errors import ReproError
from reproml.seg import oxford

REPO = "feedback"
DESCRIPTION = "corrections sent to the model server"
BREEDS = oxford.oxford_breeds()


def check_breed(breed: str) -> None:
    """Raise unless `breed` is one of the 37 Oxford-IIIT Pet breeds."""
    if breed not in BREEDS:
        raise ReproError(f"unknown breed {breed!r}", "name one of the 37 Oxford-IIIT Pet breeds in the "
                         "request's meta.tags.breed, e.g. american_bulldog or Abyssinian (cats are capitalised)")


def list_line(name: str, breed: str) -> str:
    """The annotations/list.txt line of a sample: `<Name> <CLASS-ID> <SPECIES> <BREED ID>`, as in the dataset."""
    check_breed(breed)
    return oxford.format_list([name], {name: BREEDS[breed]}, header=False).rstrip("\n")


def sample_name(breed: str, image: bytes, trimap: bytes) -> str:
    """`<breed>_<number>`, the number taken from the sample's content (above Oxford's own numbers)."""
    digest = hashlib.sha256(image + b"\0" + trimap).hexdigest()
    return f"{breed}_{10**12 + int(digest[:10], 16)}"


@contextmanager
def _feedback_lock(store):
    # A commit starts from the branch head's files: two feedbacks committed at once by two server workers
    # would each drop the other's sample, so commits to the feedback repo take turns.
    with open(Path(store.root) / "feedback.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def feedback_sample(image_jpeg: bytes, trimap_png: bytes, breed: str, reward: float,
                    release: dict) -> tuple[str, dict[str, bytes]]:
    """The files of one feedback sample, laid out as the module docstring says.

    Args:
        image_jpeg: the image as JPEG bytes.
        trimap_png: the corrected mask as a trimap PNG (mode L, values 1-3, the image's size).
        breed: the pet's breed (one of the 37), which the sample's list.txt line needs.
        reward: the reward sent with the feedback.
        release: what answered the request (release commit and provenance), recorded with the sample.

    Returns:
        `(sample name, path -> bytes)`.
    """
    name = sample_name(breed, image_jpeg, trimap_png)
    line = list_line(name, breed)
    record = {"id": name, "breed": breed, "reward": reward, "release": release, "received": time.time()}
    return name, {f"images/{name}.jpg": image_jpeg, f"annotations/trimaps/{name}.png": trimap_png,
                  f"annotations/list/{name}.txt": (line + "\n").encode(),
                  f"feedback/{name}.json": (json.dumps(record, sort_keys=True) + "\n").encode()}


def add_feedback(store, image_jpeg: bytes, trimap_png: bytes, breed: str, reward: float, release: dict,
                 repo: str = REPO) -> tuple[str, str]:
    """Store one feedback as a new commit in the feedback repo of the local store.

    Args:
        store: a `reproml.pfs.Store`.
        image_jpeg, trimap_png, breed, reward, release: as `feedback_sample` takes them.
        repo: the feedback repo.

    Returns:
        `(sample name, commit id)`.
    """
    name, files = feedback_sample(image_jpeg, trimap_png, breed, reward, release)
    store.create_repo(repo, description=DESCRIPTION, exist_ok=True)
    with _feedback_lock(store):
        with store.commit(repo, description=f"feedback {name} (reward {reward})") as commit:
            for path, data in files.items():
                commit.put_file(path, data)
    return name, commit.id


_PACHD_WRITES = threading.Lock()  # one feedback commit at a time from this server process


def add_feedback_to_pachd(client, image_jpeg: bytes, trimap_png: bytes, breed: str, reward: float,
                          release: dict, repo: str = REPO) -> tuple[str, str]:
    """Store one feedback as a new commit of the feedback repo on Pachyderm (the model server on a cluster).

    One atomic commit per sample (`reproml.cluster.pachd.commit_files`), so stream never reads half of one.

    Args:
        client: a python-pachyderm client.
        image_jpeg, trimap_png, breed, reward, release: as `feedback_sample` takes them.
        repo: the feedback repo (created when missing).

    Returns:
        `(sample name, commit id)`.
    """
    from reproml.cluster.pachd import commit_files

    name, files = feedback_sample(image_jpeg, trimap_png, breed, reward, release)
    with _PACHD_WRITES:
        commit = commit_files(client, repo, files, f"feedback {name} (reward {reward})", DESCRIPTION)
    return name, commit
