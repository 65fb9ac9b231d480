"""The `deployed` repo: which release is in service, as a declared input of the release pipeline.

The release gate compares a candidate with the model served now. Reading that from the release repo itself
would hide an input from the DAG (Pachyderm also forbids a pipeline reading its own output repo), so the
step that puts a release into service records it here with a put file, and the release pipeline reads this
repo through a cross input. Every release commit's provenance then names the exact `deployed` commit it was
gated against, and `reproml reproduce` re-runs the gate against that one, not against today's.

    deployed@master:/release.json    the release.json of the release in service, with its release_commit;
                                     {"released": false, ...} until one is put into service

A cross with an input holding no file has no datums (the pipeline would never run), so the repo always holds
`release.json`: its first commit is `pachyderm/inputs/deployed/release.json`, the `NOTHING_IN_SERVICE` record,
which the local engine and `reproml deploy` put into a new repo. `reproml serve` puts the release it serves
into service locally (`put_in_service`), the model server on a cluster (`put_in_service_on_pachd`).
"""

from __future__ import annotations

import json

from reproml.errors import ReproError

REPO = "deployed"
FILE = "release.json"
DESCRIPTION = ("The release in service: written when a release is put into service, read by the release "
               "pipeline's gate.")
NOTHING_IN_SERVICE = {"released": False, "release_commit": None,
                      "reason": "nothing has been put into service yet"}


def in_service(store) -> dict:
    """The record in `deployed@master` (the "nothing in service" one before any release)."""
    if not store.has_repo(REPO) or store.branch_head(REPO) is None:
        return dict(NOTHING_IN_SERVICE)
    return json.loads(store.read_file(f"{REPO}@master", FILE))


def put_in_service(store, release_commit: str, release_repo: str = "release") -> str | None:
    """Record `release_repo@release_commit` as the release in service; return the new `deployed` commit id.

    Nothing is written (None is returned) when the release in service already has the same weights: a
    release of the model being served does not change what the gate compares against.
    """
    record = json.loads(store.read_file(f"{release_repo}@{release_commit}", FILE))
    if not record.get("released"):
        raise ReproError(f"{release_repo}@{release_commit} did not release its model: {record.get('reason')}",
                         f"put a release into service; see `reproml list commit {release_repo}`")
    if not changes_service(in_service(store), record):
        return None
    store.create_repo(REPO, description=DESCRIPTION, exist_ok=True)
    with store.commit(REPO, description=f"in service: {release_repo}@{release_commit}") as commit:
        commit.put_file(FILE, _dump({**record, "release_commit": release_commit}))
    return commit.id


def changes_service(current: dict, record: dict) -> bool:
    """Whether putting a release with this record into service changes what the gate compares against."""
    fingerprint = (record.get("provenance") or {}).get("weights_fingerprint")
    return not (current.get("released") and (current.get("provenance") or {}).get("weights_fingerprint") == fingerprint)


def put_in_service_on_pachd(client, record: dict, release_commit: str) -> str | None:
    """`put_in_service` on a cluster: the model server records the release it loaded in pachd's `deployed`.

    Called once the release commit is finished and its model loaded, so a release whose job failed, or
    that never became ready, is never recorded; the model served before it stays the one in service.

    Args:
        client: a python-pachyderm client.
        record: the loaded release's release.json.
        release_commit: its release commit id.

    Returns:
        The new `deployed` commit id, or None when the same weights are in service already.
    """
    from reproml.cluster.pachd import commit_files

    try:
        current = json.loads(client.get_file((REPO, "master"), "/" + FILE).read())
    except Exception:  # grpc.RpcError NOT_FOUND: no repo or no commit yet, so nothing is in service
        current = dict(NOTHING_IN_SERVICE)
    if not changes_service(current, record):
        return None
    return commit_files(client, REPO, {FILE: _dump({**record, "release_commit": release_commit})},
                        f"in service: release@{release_commit}", DESCRIPTION)


def _dump(record: dict) -> bytes:
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
