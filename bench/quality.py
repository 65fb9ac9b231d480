"""Quality on real data: the full profile on sample+extra, each test metric with its 95 % interval.

    .venv/bin/python bench/quality.py [--store bench/results/quality-store] [--profile full] [--source SRC]

Runs `reproml run --source <sample>+<extra> --profile full`, the whole pipeline as `make run
PROFILE=full` runs it (CPU; the training stages are train, the short baseline, tune and model), and
prints the test-split metrics of evaluation.json after calibration, each with its seeded 95 % bootstrap
interval over test images, then the wall time of the run and of each stage.
Targets (issue 14): pixel accuracy >= 0.87, pet IoU >= 0.75, border IoU >= 0.45, ECE <= 0.03, and the
whole profile in under 45 minutes on an idle 2-core machine. A target is met by the point estimate; the
interval says how far a rerun on other test images could move it. The store is kept, so a second call only
prints (nothing has changed, and the stage times are those of the jobs that made the commits) and `-p`
overrides re-run only what they touch. Stores made before this script ran the whole pipeline (it stopped
at evaluate) run train and release on their next call, which completes their stage times.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reproml.pfs import Store  # noqa: E402
from reproml.pps.jobs import Jobs  # noqa: E402
from reproml.seg.inference import headline_metrics  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SOURCE = f"{DATA / 'oxford-pets-sample'}+{DATA / 'oxford-pets-extra'}"
TARGETS = {"pixel_accuracy": (">=", 0.87), "iou_pet": (">=", 0.75), "iou_border": (">=", 0.45),
           "ece": ("<=", 0.03)}
SHOWN = ("pixel_accuracy", "iou_pet", "iou_background", "iou_border", "mean_iou", "dice", "ece",
         "ece_uncalibrated", "nll")
STAGES = ("stream", "warehouse", "transform", "train", "tune", "model", "calibrate", "evaluate", "release")
BUDGET_MINUTES = 45


def stage_minutes(store: Store) -> dict[str, float]:
    """Minutes of the job that made each stage's head commit (its newest successful job)."""
    latest = {}
    for job in Jobs(store).list():
        if job.state == "success" and job.pipeline not in latest and job.finished:
            latest[job.pipeline] = job
    return {name: (latest[name].finished - latest[name].started) / 60 for name in STAGES if name in latest}


def target_text(name: str, value: float) -> str:
    if name not in TARGETS:
        return ""
    relation, bound = TARGETS[name]
    met = value >= bound if relation == ">=" else value <= bound
    return f"  target {relation} {bound}: {'met' if met else 'NOT met'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default=str(ROOT / "bench" / "results" / "quality-store"))
    parser.add_argument("--profile", default="full")
    parser.add_argument("--source", default=SOURCE, help="a `reproml run --source` (default: sample+extra)")
    parser.add_argument("-p", dest="params", action="append", default=[], help="as for `reproml run`")
    args = parser.parse_args()
    command = [sys.executable, "-m", "reproml.cli", "--store", args.store, "run", "--source", args.source,
               "--profile", args.profile, *sum((["-p", p] for p in args.params), [])]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    wall = (time.perf_counter() - start) / 60
    store = Store.open(args.store)
    evaluation = json.loads(store.read_file("evaluate@master", "evaluation.json"))
    metrics, ci95 = headline_metrics(evaluation), headline_metrics(evaluation["ci95"])
    settings = evaluation["bootstrap"]
    print(f"\ntest split: {evaluation['n_samples']} images of {evaluation['img_size']} px, temperature "
          f"{evaluation['temperature']:.3f}; evaluate commit {store.branch_head('evaluate')}")
    print(f"95 % intervals: {settings['method']} bootstrap over {settings['unit']}s, "
          f"{settings['resamples']} resamples, seed {settings['seed']}")
    for name in SHOWN:
        if name in metrics and metrics[name] is not None:
            low, high = ci95[name]
            interval = "[n/a]" if low is None else f"[{low:.4f}, {high:.4f}]"
            print(f"  {name:18s} {metrics[name]:.4f} {interval}{target_text(name, metrics[name])}")
    minutes = stage_minutes(store)
    total = sum(minutes.values())
    print("stage time: " + ", ".join(f"{k} {v:.1f} min" for k, v in minutes.items()))
    print(f"pipeline time {total:.1f} min (budget {BUDGET_MINUTES} min on an idle 2-core machine: "
          f"{'met' if total < BUDGET_MINUTES else 'NOT met'}); this call's wall time {wall:.1f} min")


if __name__ == "__main__":
    main()
