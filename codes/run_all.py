"""Run every question in order and record the whole run in one summary file.

    python codes/run_all.py            # the assignment's runs (GPU when present), as `make all` does
    python codes/run_all.py --quick    # every script with few epochs and a subset: minutes on a CPU

The full run writes results/run_summary.json; a quick run writes everything,
the summary included, under results/quick/ (or --output-dir) and never touches
the real results, figures or snippets. Each step's wall time, device and key
numbers are recorded; the run stops at the first step that fails (later steps
read earlier results).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import common

CODES = Path(__file__).resolve().parent

# (name, script, extra flags of the quick pass, whether it reads MNIST)
STEPS = [
    ("Q2-Q4 checks", "q2_q4_checks.py", [], False),
    ("Q1 playground", "q1_playground.py", ["--epochs", "20", "--seeds", "2"], False),
    ("Q5.2 MLP", "q5_2_mlp.py", ["--epochs", "2", "--subset", "2000"], True),
    ("Q5.3 flooding", "q5_3_flooding.py", ["--epochs", "2", "--subset", "2000", "--seeds", "2"], True),
    ("Q5.5 CNN", "q5_5_cnn.py", ["--epochs", "2", "--subset", "2000"], True),
]


def key_numbers(script: str, results_dir: Path) -> dict:
    """The headline numbers of one step, read back from its results file."""
    def load(name: str) -> dict | None:
        path = results_dir / name
        return json.loads(path.read_text()) if path.exists() else None

    if script == "q1_playground.py" and (run := load("q1_playground.json")):
        return {"best_config": run["best"]["config"], "best_test_loss": run["best"]["test_loss"][0],
                "seconds": run["seconds"]}
    if script == "q5_2_mlp.py" and (run := load("q5_2_mlp.json")):
        return {**common.final_metrics(run), "device": run["environment"]["device_name"],
                "training_seconds": run["seconds"]["total"]}
    if script == "q5_5_cnn.py" and (run := load("q5_5_cnn.json")):
        return {**common.final_metrics(run), "device": run["environment"]["device_name"],
                "training_seconds": run["seconds"]["total"]}
    if script == "q5_3_flooding.py":
        import q5_3_flooding

        numbers = {}
        for path in sorted(results_dir.glob("q5_3_flooding_lr*.json")):
            run = json.loads(path.read_text())
            level = q5_3_flooding.chosen_level(run)
            table = q5_3_flooding.by_level(run)
            numbers[path.stem] = {"chosen_level": level, "val_error": table[level]["val_error"],
                                  "test_error": table[level]["test_error"], "device": run["environment"]["device_name"],
                                  "training_seconds": run["seconds"]["total"], "copies": len(run["copies"])}
        return numbers
    return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few epochs and a subset, into results/quick/")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="write every result, figure and snippet here (default: results/ and report/, "
                        "or results/quick/ with --quick)")
    common.add_data_arguments(parser)
    args = parser.parse_args(argv)
    if args.output_dir is None and args.quick:
        args.output_dir = common.QUICK_DIR
    results_dir = common.RESULTS_DIR if args.output_dir is None else args.output_dir
    common.ensure_writable(results_dir)

    steps, start = [], time.perf_counter()
    for name, script, quick_flags, reads_mnist in STEPS:
        command = [sys.executable, str(CODES / script)]
        if args.quick:
            command += quick_flags
        if args.output_dir is not None:
            command += ["--output-dir", str(args.output_dir)]
        if reads_mnist:
            command += ["--data-dir", str(args.data_dir), "--split-seed", str(args.split_seed), "--device", args.device]
            command += ["--offline"] if args.offline else []
            command += ["--tf32"] if args.tf32 else []
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        step_start = time.perf_counter()
        returncode = subprocess.run(command).returncode
        steps.append({"name": name, "script": script, "command": command[1:], "returncode": returncode,
                      "seconds": time.perf_counter() - step_start, "key_numbers": key_numbers(script, results_dir)})
        if returncode != 0:
            print(f"error: {name} failed (exit status {returncode}); the later steps were not run.", file=sys.stderr)
            break
    summary = {
        "mode": "quick" if args.quick else "full",
        "completed": all(step["returncode"] == 0 for step in steps) and len(steps) == len(STEPS),
        "total_seconds": time.perf_counter() - start,
        "environment": common.environment(common.select_device(args.device)),
        "steps": steps,
    }
    path = results_dir / "run_summary.json"
    common.write_json_atomic(path, summary)
    print(f"summary: {path} ({summary['total_seconds']:.0f} s)")
    return 0 if summary["completed"] else 1


if __name__ == "__main__":
    common.run_main(main)
