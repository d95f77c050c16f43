"""The main job on a GPU machine, in two parts of under ten minutes each, packed for the trip back.

    python3 codes/gpu_job.py --part 1 --out "$OUT"   # CUDA tests, benchmark (TF32 and float32), checks, Q1, Q5.2, Q5.5, its lr check
    python3 codes/gpu_job.py --part 2 --out "$OUT"   # Q5.3's two sweeps
    python codes/gpu_job.py --part 1 --out /tmp/job --quick --data-dir DIR   # the same commands, quick, on a CPU

The main job's steps run through run_all.py, which records them in run_summary.json. The CUDA tests
need pytest (the log says where it is missing). Every command's output goes to OUT/gpu_job_part<N>.log,
and the results, figures and snippets (the quick folder with --quick) to OUT/gpu_job_part<N>.tar.gz.
The job stops at the first command that fails, and still packs what it has.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import cli

CODES = Path(__file__).resolve().parent
PARTS = {1: "checks,q1,q5_2,q5_5,q5_5_lrs", 2: "q5_3"}


def commands(part: int, data_flags: list[str], quick_dir: Path | None, with_pytest: bool) -> list[tuple[str, list[str]]]:
    """(name, command) of every step of one part, in their quick form when quick_dir is given."""
    quick = ["--output-dir", str(quick_dir)] if quick_dir else []
    run_all = [sys.executable, str(CODES / "run_all.py"), "--steps", PARTS[part], *data_flags,
               *(["--quick", *quick] if quick else [])]
    if part == 2:
        return [(f"main job: {PARTS[part]}", run_all)]
    tests = [sys.executable, "-m", "pytest", "-q", "-x", "-k", "cuda", str(CODES.parent / "tests" / "test_trainer.py")]
    benchmark = [sys.executable, str(CODES / "benchmark.py"), *data_flags, *quick,
                 *(["--epochs", "1", "--batch-size", "16", "--workloads", "mlp"] if quick else ["--replace-committed"])]
    return [*([("CUDA tests", tests)] if with_pytest else []), ("benchmark, TF32", benchmark),
            ("benchmark, float32", [*benchmark, "--no-tf32"]), (f"main job: {PARTS[part]}", run_all)]


def kept(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """What travels back: no checkpoints, locks or temporary files, no runs of other settings."""
    parts = Path(info.name).parts
    return None if info.name.endswith((".ckpt", ".lock", ".tmp")) or {"runs", "quick"} & set(parts[1:]) else info


def main(argv: list[str] | None = None) -> int:
    parser = cli.script_parser(__doc__)
    parser.add_argument("--part", type=int, choices=sorted(PARTS), required=True, help="which half of the job")
    parser.add_argument("--out", type=cli.given_path, required=True, help="where the log and the packed outputs go")
    parser.add_argument("--quick", action="store_true", help="the quick form of every command (into OUT/results)")
    parser.add_argument("--data-dir", type=cli.given_path, default=None, help="MNIST's folder (default: the scripts' own)")
    args = parser.parse_args(argv)
    cli.ensure_writable(args.out)
    quick_dir = args.out / "results" if args.quick else None
    data_flags = ["--data-dir", str(args.data_dir), "--offline"] if args.data_dir else []
    with_pytest = importlib.util.find_spec("pytest") is not None
    log_path, packed = args.out / f"gpu_job_part{args.part}.log", args.out / f"gpu_job_part{args.part}.tar.gz"
    status = 0
    with log_path.open("w", buffering=1) as log:  # line-buffered: each line is out before a command writes
        if args.part == 1 and not with_pytest:
            log.write("== CUDA tests: not run, pytest cannot be imported here\n")
        for name, command in commands(args.part, data_flags, quick_dir, with_pytest):
            start = time.perf_counter()
            print(f"== {name}", flush=True)
            log.write(f"== {name}: {' '.join(command)}\n")
            status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
            log.write(f"== {name}: exit status {status}, {time.perf_counter() - start:.0f} s\n")
            if status != 0:
                print(f"error: {name} failed (exit status {status}); see {log_path}", file=sys.stderr)
                break
    # a quick run's folder, or the committed results, figures and snippets where the checkout has them
    root = args.out if quick_dir else cli.REPO_ROOT
    with tarfile.open(packed, "w:gz") as archive:
        for folder in [quick_dir] if quick_dir else [cli.RESULTS_DIR, cli.FIGURES_DIR, cli.GENERATED_DIR]:
            if folder.exists():  # a job that failed early has not made its quick folder
                archive.add(folder, arcname=str(folder.relative_to(root)), filter=kept)
    print(f"log: {log_path}\npacked: {packed}")
    return status


if __name__ == "__main__":
    cli.run_main(main)
