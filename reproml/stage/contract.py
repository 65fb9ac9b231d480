"""The contract between the engine and the stage runner: one dataclass in, one result file out.

The engine (local, `reproml.pps.engine`) starts `python -m reproml.stage ...` once per datum. Besides the
command line (the spec's `transform.cmd`, which is the same on a cluster), it hands the runner ONE value:

    REPROML_DATUM='{"pfs_root": "...", "job_id": "...", "datum_id": "...", ...}'   (a `DatumContext` as JSON)

and the runner answers with ONE file, `DatumContext.result_file`, holding a `DatumResult` as JSON: whether
the datum succeeded, the executed notebook, and on failure the error, its hint and where the partially
executed notebook was kept. The engine reads that file; it never scrapes the datum's log for its outcome
(the log is for people). A runner that dies before writing it (killed, out of memory, an import error) leaves
no result file, and the engine says so and points at the log.

On a Pachyderm cluster there is no `REPROML_DATUM`: `DatumContext.from_environment` builds the context from
the variables pachd sets for every datum (`PFS_ROOT` is implied `/pfs`, `PACH_JOB_ID`, `PACH_DATUM_ID`,
`PACH_OUTPUT_COMMIT_ID`, `PPS_PIPELINE_NAME`) and writes no result file; the local engine sets those same
Pachyderm variables too, so a notebook that reads them behaves alike in both places.

What the context deliberately does not carry: any address of the store or of pachd. A stage reads only what
its spec's inputs (laid out under `pfs_root`) and its parameters give it.
"""

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from reproml.errors import ReproError

ENV_VAR = "REPROML_DATUM"  # the one environment variable the local engine adds to Pachyderm's


@dataclass(frozen=True)
class DatumContext:
    """What the engine tells the stage runner about the datum it runs.

    Attributes:
        pfs_root: the folder holding one subfolder per input (by input name) and `out/`.
        pipeline: the pipeline's name (Pachyderm's `PPS_PIPELINE_NAME`).
        job_id: the job (Pachyderm's `PACH_JOB_ID`).
        datum_id: the datum (Pachyderm's `PACH_DATUM_ID`).
        output_commit: the commit the job writes (Pachyderm's `PACH_OUTPUT_COMMIT_ID`).
        input_commits: the commit of each input, by input name (Pachyderm's `<input>_COMMIT`).
        input_hashes: the content hash of each input part, by input name, when the engine knows it (it saves
            the runner re-hashing what the store hashed already); the runner hashes the others itself.
        profile: the parameter profile of the run (`profiles/<name>.yaml`), "" for none.
        failed_dir: where the runner keeps a failed datum's partially executed notebook; "" to leave it in
            the output folder (or, on a cluster, in the repo `REPROML_FAILED_REPO` names).
        result_file: where the runner writes its `DatumResult`; "" for none (on a cluster).
    """

    pfs_root: str = "/pfs"
    pipeline: str = ""
    job_id: str = ""
    datum_id: str = ""
    output_commit: str = ""
    input_commits: dict[str, str] = field(default_factory=dict)
    input_hashes: dict[str, str] = field(default_factory=dict)
    profile: str = ""
    failed_dir: str = ""
    result_file: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "DatumContext":
        """Parse the engine's value; unknown or malformed fields are an error, not ignored."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}")
            unknown = sorted(set(data) - {f.name for f in fields(cls)})
            if unknown:
                raise ValueError(f"unknown field(s) {', '.join(unknown)}")
            return cls(**data)
        except (ValueError, TypeError) as error:
            raise ReproError(f"${ENV_VAR} is not a datum context: {error}",
                             "the engine and the runner come from different reproml versions; reinstall one "
                             "package for both") from None

    def environment(self) -> dict[str, str]:
        """The variables to start the runner with: Pachyderm's own, plus this context as one JSON value."""
        env = {"PFS_ROOT": self.pfs_root, "PACH_JOB_ID": self.job_id, "PACH_DATUM_ID": self.datum_id,
               "PACH_OUTPUT_COMMIT_ID": self.output_commit, "PPS_PIPELINE_NAME": self.pipeline,
               ENV_VAR: self.to_json()}
        env.update({f"{name}_COMMIT": commit for name, commit in self.input_commits.items()})
        return env

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> "DatumContext":
        """The context the engine handed over, else the one Pachyderm's variables describe (on a cluster)."""
        environ = os.environ if environ is None else environ
        if environ.get(ENV_VAR):
            return cls.from_json(environ[ENV_VAR])
        pfs_root = environ.get("PFS_ROOT", "/pfs")
        commits = {key.removesuffix("_COMMIT"): value for key, value in environ.items()
                   if key.endswith("_COMMIT") and not key.startswith(("PACH_", "REPROML_")) and value}
        return cls(pfs_root=pfs_root, pipeline=environ.get("PPS_PIPELINE_NAME", ""),
                   job_id=environ.get("PACH_JOB_ID", ""), datum_id=environ.get("PACH_DATUM_ID", ""),
                   output_commit=environ.get("PACH_OUTPUT_COMMIT_ID", ""), input_commits=commits)


@dataclass(frozen=True)
class DatumResult:
    """What the runner reports back about one datum (the result file's content).

    Attributes:
        ok: whether the notebook ran to the end and its report was written.
        report: the executed notebook's path (under the output folder when `ok`).
        error: on failure, what went wrong: stage, datum and cell.
        hint: on failure, what to do about it.
        failed_notebook: on failure, where the partially executed notebook was kept ("" if none).
    """

    ok: bool
    report: str = ""
    error: str = ""
    hint: str = ""
    failed_notebook: str = ""

    def write(self, path: str | Path) -> None:
        """Write atomically, so that a reader never sees half a result."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(asdict(self), sort_keys=True))
        partial.replace(path)

    @classmethod
    def read(cls, path: str | Path) -> "DatumResult | None":
        """The result at `path`, or None when the runner wrote none (it died first)."""
        try:
            return cls(**json.loads(Path(path).read_text()))
        except FileNotFoundError:
            return None
