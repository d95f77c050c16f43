"""Run every question in order and record the whole run in one summary file.

    python codes/run_all.py            # the assignment's runs (GPU when present), as `make all` does
    python codes/run_all.py --quick    # every script with few epochs and a subset: minutes on a CPU
    python codes/run_all.py --steps q5_5   # rerun only the CNN; the record keeps the other steps

results/run_summary.json (a quick run's, with everything it writes, under results/quick/ or
--output-dir, never among the committed outputs) records each step's wall time, device and key
numbers; the run stops at the first step that fails. The summary is rewritten only when a step ran
to its end, and keeps the other steps' record from the previous run of the same mode. Without a GPU
only the checks, Q1 and Q5.2 run (it says so before starting) unless --quick or --allow-cpu is given.
"""
from __future__ import annotations

import collections
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

import cli
import common
import runs

CODES = Path(__file__).resolve().parent

QUICK = ["--epochs", "2", "--subset", "2000"]
shell_line = shlex.join if os.name == "posix" else subprocess.list2cmdline  # a command to paste into this OS's shell
CPU_STEPS = ("checks", "q1", "q5_2")  # what a CPU finishes in minutes; the rest is GPU work
# quick_flags: the quick pass's; results: the pattern of the step's results files
Step = collections.namedtuple("Step", "name script flags quick_flags reads_mnist results")
STEPS = {  # in the order they run
    "checks": Step("Q2-Q4 checks", "q2_q4_checks.py", [], [], False, None),
    "q1": Step("Q1 playground", "q1_playground.py", [], ["--epochs", "20", "--seeds", "2"], False, "q1_playground.json"),
    "q5_2": Step("Q5.2 MLP", "q5_2_mlp.py", [], QUICK, True, "q5_2_mlp.json"),
    "q5_3": Step("Q5.3 flooding", "q5_3_flooding.py", [], QUICK + ["--seeds", "2"], True, "q5_3_flooding_lr*.json"),
    "q5_5": Step("Q5.5 CNN", "q5_5_cnn.py", [], QUICK, True, "q5_5_cnn.json"),
    "q5_5_lrs": Step("Q5.5 learning-rate check", "q5_5_cnn.py", ["--lrs", "0.1,0.01", "--epochs", "158"],
                     ["--lrs", "0.1,0.01"] + QUICK, True, "q5_5_lr_check_lr*.json"),
}


def key_numbers(results_dir: Path, pattern: str | None) -> dict:
    """The headline numbers of a step that finished, from each results file it wrote, by file."""
    numbers = {}
    for path in sorted(results_dir.glob(pattern)) if pattern else []:
        run = json.loads(path.read_text())
        numbers[path.stem] = (  # Q1's search, or a training run
            {"best_config": run["best"]["config"], "best_test_loss": run["best"]["test_loss"][0],
             "seconds": run["seconds"]} if "best" in run else
            {"device": run["environment"]["device_name"], "training_seconds": run["seconds"]["total"],
             "copies": len(run["copies"]), **(runs.final_metrics(run) if len(run["copies"]) == 1 else {})})
    return numbers


def run_step(command: list[str]) -> tuple[int, str | None]:
    """Run one step to its end; return its exit status and the first signal run_all received meanwhile,
    passed on as it came (the step saves after the epoch on a Ctrl-C, at once on SIGTERM or SIGHUP)."""
    # a session of its own on POSIX, so that a terminal's Ctrl-C reaches the step once, through run_all;
    # a Windows console sends Ctrl-C to every process in it, the step included
    posix = os.name == "posix"
    step = subprocess.Popen(command, start_new_session=posix)
    received = []

    def pass_on(signum, frame):
        received.append("Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name)
        if posix:
            step.send_signal(signum)

    previous = {signum: signal.signal(signum, pass_on) for signum in common.STOP_SIGNALS}
    try:
        return step.wait(), received[0] if received else None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def previous_steps(path: Path, mode: str) -> dict[str, dict]:
    """The steps recorded in an earlier summary of the same mode, by key (none if there is no usable one)."""
    try:
        previous = json.loads(path.read_text())
        return {step["key"]: step for step in previous["steps"]} if previous["mode"] == mode else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as err:
        print(f"warning: {path} is unreadable ({err}); it is replaced by this run's record", file=sys.stderr)
        return {}


def main(argv: list[str] | None = None) -> int:
    parser = cli.script_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="few epochs and a subset, into results/quick/")
    parser.add_argument("--allow-cpu", action="store_true", help="without a GPU, run the steps that take more "
                        f"than a day on a CPU too (by default only {', '.join(CPU_STEPS)} run there)")
    parser.add_argument("--output-dir", type=cli.given_path, help="write every result, figure and snippet here "
                        "(default: results/ and report/, or results/quick/ with --quick)")
    parser.add_argument("--steps", type=cli.comma_list("steps", choices=list(STEPS)), default=list(STEPS), metavar="STEP,STEP,...",
                        help=f"run only these steps (default: all of {','.join(STEPS)})")
    cli.add_data_arguments(parser)
    args = parser.parse_args(argv)
    results_dir = args.output_dir or (cli.QUICK_DIR if args.quick else cli.RESULTS_DIR)
    # among the committed outputs only the assignment's runs write, and they are told results/ at most
    committed = cli.committed_folder(results_dir)
    if committed and (args.quick or results_dir.resolve() != cli.RESULTS_DIR.resolve()):
        raise common.UserError(
            f"--output-dir {results_dir} lies inside the committed results, figures and snippets (results/, report/), "
            "which only the assignment's runs write, without --output-dir"
            + (" (a quick run goes to results/quick/)" if args.quick else "") + ".")
    cli.ensure_writable(results_dir)
    path, mode = results_dir / "run_summary.json", "quick" if args.quick else "full"

    device, _ = cli.training_device(args.device)
    too_long = [key for key in args.steps if key not in CPU_STEPS]
    if device.type == "cpu" and too_long and not (args.quick or args.allow_cpu):
        args.steps = [key for key in args.steps if key in CPU_STEPS]
        left = ", ".join(STEPS[key].name for key in args.steps)
        print(f"No CUDA GPU: not starting {', '.join(STEPS[key].name for key in too_long)}, which take more than a day "
              f"on a 2-core CPU (docs/speed.md, 'Expected time'){'; running only ' + left if left else ''}. Instead: `make quick` "
              "(every script in minutes, into results/quick/); "
              f"`{shell_line([sys.executable, str(CODES / 'q5_3_flooding.py'), '--seeds', '1', '--lrs', '0.1'])}` "
              "(one sweep at one seed, into results/runs/); or run everything here anyway with "
              "`make all ALLOW_CPU=1` (run_all.py --allow-cpu).", file=sys.stderr, flush=True)
        if not args.steps:
            raise common.UserError(f"no step left to run; {path} is unchanged.")
    previous = previous_steps(path, mode)
    ran, interrupted, start = {}, None, time.perf_counter()
    where = [] if committed else ["--output-dir", str(results_dir)]
    data = ["--data-dir", str(args.data_dir), "--split-seed", str(args.split_seed), "--device", args.device,
            *(["--offline"] if args.offline else []), "--tf32" if args.tf32 else "--no-tf32"]
    for key in args.steps:
        name, script, flags, quick_flags, reads_mnist, results = STEPS[key]
        command = [sys.executable, str(CODES / script), *(quick_flags if args.quick else flags), *where,
                   *(data if reads_mnist else [])]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        step_start, step_began = time.perf_counter(), time.time()
        returncode, stopped_by = run_step(command)
        if stopped_by:  # its results are those of its previous run, and so is its record
            # a state this step saved (a checkpoint left by an earlier, finished run is not one to resume)
            saved = bool(results) and any(checkpoint.stat().st_mtime >= step_began
                                          for checkpoint in results_dir.glob(results.replace(".json", ".ckpt")))
            # this Python and the scripts by full path: the commands work from any folder, with or without the
            # virtual environment active (macOS has no `python`; elsewhere it may be a Python without torch)
            rerun = shell_line([*command, *(["--resume"] if saved else [])])
            later = args.steps[args.steps.index(key) + 1:]
            rest = [sys.executable, str(CODES / "run_all.py"), "--steps", ",".join(later), *(["--quick"] if args.quick else []),
                    *(["--allow-cpu"] if args.allow_cpu else []), *where, *data]
            then = f", then the steps after it with `{shell_line(rest)}`" if later else ""
            how = "its training state is saved. Continue it" if saved else "it saved no training state. Rerun it"
            interrupted = (f"stopped by {stopped_by} during {name}: {how} with `{rerun}`{then}; "
                           "the summary keeps the record of the steps that finished.")
            break
        ran[key] = {"key": key, "name": name, "script": script, "command": command[1:], "returncode": returncode,
                    "seconds": time.perf_counter() - step_start,
                    # the steps that read no MNIST (the checks, Q1's playground) run on the CPU whatever the device
                    "environment": runs.environment(device if reads_mnist else torch.device("cpu")),
                    "key_numbers": key_numbers(results_dir, results) if returncode == 0 else {}}
        if returncode != 0:
            print(f"error: {name} failed (exit status {returncode}); the later steps were not run.", file=sys.stderr)
            break
    if ran:  # this run's steps, and the others' record from the previous run of the same mode
        steps = [ran[key] if key in ran else previous[key] for key in STEPS if key in ran or key in previous]
        runs.write_atomic(path, {
            "mode": mode, "completed": len(steps) == len(STEPS) and all(step["returncode"] == 0 for step in steps),
            "total_seconds": sum(step["seconds"] for step in steps), "steps_run_last": list(ran), "steps": steps})
        print(f"summary: {path} ({time.perf_counter() - start:.0f} s now)")
    else:
        print(f"{path} is unchanged: no step ran to its end.", file=sys.stderr)
    if interrupted:
        print(interrupted, file=sys.stderr)
        return 130
    return 0 if all(step["returncode"] == 0 for step in ran.values()) else 1  # a failed step ends the loop


if __name__ == "__main__":
    cli.run_main(main)
