"""Quality on the real sample: the full profile through evaluate, then the report's headline numbers.

    .venv/bin/python bench/quality.py [--store bench/results/quality-store] [--profile full]

Runs `reproml run --source ../shared/data/oxford-pets-sample --profile full --until evaluate` (CPU; the
training stages are train, tune and model) and prints the test-split metrics from Report.ipynb's scraps,
with the training time per stage. Targets (issue 3): pixel accuracy >= 0.80, pet IoU >= 0.65,
ECE after calibration <= 0.03, with at most 30 minutes of training. The store is kept, so a second
call only prints (nothing has changed) and `-p` overrides re-run only what they touch.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import scrapbook as sb  # noqa: E402

from reproml.pfs import Store  # noqa: E402
from reproml.pps.jobs import Jobs  # noqa: E402

SAMPLE = ROOT.parent / "shared" / "data" / "oxford-pets-sample"
TARGETS = {"pixel_accuracy": (">=", 0.80), "iou_pet": (">=", 0.65), "ece": ("<=", 0.03)}
SHOWN = ("pixel_accuracy", "iou_pet", "iou_background", "iou_border", "mean_iou", "dice", "ece",
         "ece_uncalibrated", "nll")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default=str(ROOT / "bench" / "results" / "quality-store"))
    parser.add_argument("--profile", default="full")
    parser.add_argument("-p", dest="params", action="append", default=[], help="as for `reproml run`")
    args = parser.parse_args()
    command = [sys.executable, "-m", "reproml.cli", "--store", args.store, "run", "--source", str(SAMPLE),
               "--profile", args.profile, "--until", "evaluate", *sum((["-p", p] for p in args.params), [])]
    subprocess.run(command, cwd=ROOT, check=True)
    store = Store.open(args.store)
    with tempfile.TemporaryDirectory() as tmp:
        report = store.materialize("evaluate@master", Path(tmp)) / "Report.ipynb"
        scraps = {name: scrap.data for name, scrap in sb.read_notebook(str(report)).scraps.items()}
    evaluation = json.loads(store.read_file("evaluate@master", "evaluation.json"))
    latest = {}
    for job in Jobs(store).list():
        if job.state == "success" and job.pipeline not in latest:
            latest[job.pipeline] = job
    training = {name: latest[name].finished - latest[name].started for name in ("train", "tune", "model")
                if name in latest}
    print(f"\ntest split: {evaluation['n_samples']} images of {evaluation['img_size']} px, temperature "
          f"{evaluation['temperature']}; evaluate commit {store.branch_head('evaluate')}")
    for name in SHOWN:
        if name in scraps:
            target = TARGETS.get(name)
            met = "" if target is None else (f"  target {target[0]} {target[1]}: " + (
                "met" if (scraps[name] >= target[1]) == (target[0] == ">=") else "NOT met"))
            print(f"  {name:18s} {scraps[name]:.4f}{met}")
    print("training time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in training.items())
          + f" (total {sum(training.values()) / 60:.1f} min; budget 30 min)")


if __name__ == "__main__":
    main()
