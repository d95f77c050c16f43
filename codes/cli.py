"""The command line the MNIST scripts share: flag types, the common flags, the settings a run
computes (read from the flags once), where a run writes, the training device, and one script's
main() run with clear errors instead of tracebacks."""
from __future__ import annotations

import argparse
import errno
import hashlib
import io
import json
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

import common

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "results"
REPORT_DIR = REPO_ROOT / "report"
FIGURES_DIR = REPORT_DIR / "figures"
GENERATED_DIR = REPORT_DIR / "generated"
QUICK_DIR = RESULTS_DIR / "quick"  # make quick's folder
RUNS_DIR = RESULTS_DIR / "runs"  # every run not at the assignment's settings, each in its own folder
# the flags that change what an MNIST run computes; any other value than its default is not the assignment's run
COMPUTING = ("epochs", "lr", "momentum", "batch_size", "seed", "subset", "split_seed", "tf32")
SWEEP = ("flood_levels", "seeds", "lrs")  # a sweep's own such flags, in the scripts that have them
DATA_DIR = Path(os.environ.get("MNIST_DATA_DIR") or REPO_ROOT / "data").expanduser()  # holds MNIST/raw/; an empty variable is unset


def checked(convert: Callable[[str], object], ok: Callable[[object], bool], requirement: str) -> Callable[[str], object]:
    """An argparse type: convert(text), refused with `requirement` ("must be ...") unless ok(value);
    a text `convert` cannot read gets argparse's own "invalid int value" message."""
    def parse(text: str):
        value = convert(text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{requirement}, got {text}")
        return value
    parse.__name__ = convert.__name__
    return parse


positive_int = checked(int, lambda value: value >= 1, "must be a positive integer")
positive_float = checked(float, lambda value: 0 < value < math.inf, "must be > 0 and finite")
momentum = checked(float, lambda value: 0 <= value < 1, "must lie in [0, 1) (at 1 or more the steps grow without bound)")
seed = checked(int, lambda value: 0 <= value < 2**63, "must be an integer from 0 to 2**63 - 1")


def given_path(text: str) -> Path:
    """An argparse type: a folder or file, ~ expanded; an empty name (Path("") is the working folder) refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: name a path")
    return Path(text).expanduser()


def script_parser(description: str) -> argparse.ArgumentParser:
    """A script's parser: its docstring as help, and only whole flag names (--seed is not --seeds)."""
    return argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                                   allow_abbrev=False)


def comma_list(what: str, item: Callable[[str], object] = str, choices: Sequence[str] | None = None) -> Callable[[str], list]:
    """An argparse type: a non-empty comma-separated list of distinct `what`, each read by the argparse
    type `item`, or each one of `choices` and put in their order (steps run in theirs)."""
    if choices is not None:
        item = checked(str, lambda name: name in choices, f"must be one of {', '.join(choices)}")

    def parse(text: str) -> list:
        try:
            values = [item(part.strip()) for part in text.split(",") if part.strip()]
        except argparse.ArgumentTypeError as err:
            raise argparse.ArgumentTypeError(f"every {what[:-1]} {err}") from None
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be comma-separated numbers, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"{what} needs at least one value, got {text!r}")
        if len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"{what} lists a value twice: {text!r}")
        return values if choices is None else sorted(values, key=list(choices).index)
    return parse


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Where MNIST is, how it is split, and which device trains (and in what precision)."""
    parser.add_argument("--data-dir", type=given_path, default=DATA_DIR,
                        help="folder holding MNIST/raw/ (default: $MNIST_DATA_DIR or %(default)s)")
    parser.add_argument("--offline", action="store_true", help="never try to download MNIST")
    parser.add_argument("--split-seed", type=seed, default=0, help="seed of the 8:2 train/validation split (default: %(default)s)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="training device; auto picks cuda when a GPU is present (default: %(default)s)")
    parser.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True,
                        help="on a GPU, let matrix products use TF32 (10-bit-mantissa products, float32 sums) as "
                        "PyTorch's convolutions do: faster on Ampere and newer GPUs; --no-tf32 keeps full float32. "
                        "No effect on a CPU, whose runs record it as off (default: on)")


def add_training_arguments(parser: argparse.ArgumentParser, single_run: bool = True) -> None:
    """The flags of the MNIST question scripts, defaulting to the assignment's settings; a sweep
    (single_run=False) sets its learning rates and seeds with flags of its own."""
    a = common.ASSIGNMENT
    parser.add_argument("--epochs", type=positive_int, default=a["epochs"], help="training epochs (default: %(default)s)")
    if single_run:
        parser.add_argument("--lr", type=positive_float, default=a["lr"], help="SGD learning rate (default: %(default)s)")
    parser.add_argument("--momentum", type=momentum, default=a["momentum"], help="SGD momentum (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=a["batch_size"],
                        help="mini-batch size; not fixed by the assignment (default: %(default)s)")
    if single_run:
        parser.add_argument("--seed", type=seed, default=0, help="seed of the initialisation and batch order (default: %(default)s)")
    parser.add_argument("--subset", type=positive_int, default=None, metavar="N",
                        help="use only N training images and at most N validation and test images (a quick check)")
    add_data_arguments(parser)
    parser.add_argument("--output-dir", type=given_path, default=None,
                        help="where the results file, figures and snippets go (default: results/, report/figures/ "
                        "and report/generated/ for the assignment's run, results/runs/<script>-<settings>-<hash>/ otherwise)")
    parser.add_argument("--plot-only", action="store_true", help="redraw the figures from the saved results file")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--checkpoint-every", type=positive_int, default=10, metavar="EPOCHS",
                        help="save the training state every EPOCHS epochs, at the end and on Ctrl-C (default: %(default)s)")
    saved_state = parser.add_mutually_exclusive_group()
    saved_state.add_argument("--resume", action="store_true", help="continue from the saved state of a stopped run")
    saved_state.add_argument("--restart", action="store_true",
                        help="start over, discarding the saved state of a stopped run (which a run otherwise refuses to do)")


_HELD_LOCKS: dict[Path, int] = {}  # the lock files this process holds, open until it ends
LOCKED_OFFSET = 1 << 20  # Windows locks a byte range, which others cannot read: one far past the holder's text


def open_and_lock(path: Path) -> tuple[int, bool]:
    """The lock file, opened (created if need be, never through a symbolic link, whose target a run would
    overwrite), and whether this process now holds its lock (False: another does) until it ends, when
    the OS releases it even after a kill. Each OS's own call: msvcrt on Windows, flock elsewhere."""
    try:
        if path.is_symlink():
            raise OSError(errno.ELOOP, "a symbolic link")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0), 0o644)
    except OSError as err:
        reason = "it is a symbolic link" if err.errno == errno.ELOOP else err.strerror or str(err)
        raise common.UserError(f"cannot use the lock file {path} ({reason}): remove it and run again.") from None
    try:
        if os.name == "nt":
            import msvcrt
            os.lseek(fd, LOCKED_OFFSET, os.SEEK_SET)
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            finally:
                os.lseek(fd, 0, os.SEEK_SET)
        else:
            import fcntl
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd, True
    except (BlockingIOError if os.name != "nt" else OSError):  # another process holds it
        return fd, False


@dataclass
class OutputPaths:
    results: Path
    figures: Path
    generated: Path  # LaTeX snippets the report inputs
    changed: list[str]  # the settings that differ from the assignment's run, as "flag value"

    @property
    def is_assignment_run(self) -> bool:
        """True when these are the committed results, figures and snippets the report reads."""
        return self.results == RESULTS_DIR

    def claim(self, *prefixes: str) -> None:
        """Become the only writer of the outputs whose names start with `prefixes`: an OS lock on
        <results>/.<prefix>.lock, held until this process ends (so a kill never leaves a stale lock);
        then remove the temporary files a killed save of these outputs left behind."""
        folders = (self.results, self.figures, self.generated)
        for folder in folders:
            ensure_writable(folder)
        lock_path = self.results.resolve() / f".{prefixes[0]}.lock"
        if lock_path in _HELD_LOCKS:
            return
        fd, locked = open_and_lock(lock_path)
        if not locked:
            holder = os.read(fd, 1000).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise common.UserError(f"{holder} is writing the same outputs in {self.results}; wait until it ends, "
                                   "or give this run its own --output-dir.")
        os.ftruncate(fd, 0)
        os.write(fd, f"a run (pid {os.getpid()}, `{' '.join(sys.argv)}`)".encode())
        _HELD_LOCKS[lock_path] = fd
        for leftover in (path for folder in folders for prefix in prefixes for path in folder.glob(f".{prefix}*.tmp")):
            leftover.unlink(missing_ok=True)

    def refuse_other_run(self, results: dict, path: Path) -> None:
        """Refuse to draw the committed figures and snippets from a results file of another run."""
        if self.is_assignment_run and results.get("settings_changed"):
            raise common.UserError(f"{path} was written by a run at other settings ({', '.join(results['settings_changed'])}) "
                                   "and cannot be drawn into the report: rerun the assignment's run, or "
                                   "`git checkout -- results/` to get the committed results back.")

    def announce(self) -> None:
        """Say where a run that is not the assignment's writes (at its start and its end)."""
        if not self.is_assignment_run:
            why = f"not the assignment's run ({', '.join(self.changed)})" if self.changed else "--output-dir"
            print(f"note: {why}: results, figures and snippets go to {self.results}", flush=True)


@dataclass(frozen=True)
class Settings:
    """What an MNIST run computes, read from its flags once: the run, its results file's "config", its
    checkpoint's identity and its folder's name all read this. Device and TF32 as asked (config: as used)."""

    epochs: int
    lr: float | None  # None where --lrs sets the rates: each part of the run is replace(settings, lr=...)
    momentum: float
    batch_size: int
    seed: int | None  # None where a script sets it: the sweep runs seed 0's batch order
    subset: int | None
    split_seed: int
    tf32: bool
    device: str  # auto, cpu or cuda
    sweep: dict  # a sweep's own settings (SWEEP), by flag

    def computing(self) -> dict:
        """Every setting that makes a run another than the assignment's (the device does not), in flag order."""
        return {**{name: getattr(self, name) for name in COMPUTING}, **self.sweep}

    def config(self, device: str, tf32: bool) -> dict:
        """The results file's "config": one part's settings (one learning rate), device and TF32 as used."""
        return {**{name: value for name, value in self.computing().items() if name != "lrs"}, "device": device, "tf32": tf32}


@dataclass(frozen=True)
class Options:
    """How a run reads its data, saves its state and shows its progress: none of it changes the numbers."""

    data_dir: Path
    download: bool
    checkpoint_every: int
    resume: bool
    restart: bool
    progress: bool


def read_flags(args: argparse.Namespace) -> tuple[Settings, Options]:
    """The parsed flags of an MNIST script as the two values everything after main reads."""
    sweep = {name: getattr(args, name) for name in SWEEP if hasattr(args, name)}
    settings = Settings(args.epochs, None if sweep.get("lrs") else getattr(args, "lr", None), args.momentum,
                        args.batch_size, getattr(args, "seed", None), args.subset, args.split_seed, args.tf32,
                        args.device, sweep)
    return settings, Options(args.data_dir, not args.offline, args.checkpoint_every, args.resume, args.restart,
                             not args.no_progress)


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None, script: str,
          variant: Callable[[argparse.Namespace], tuple[str, dict]] | None = None,
          ) -> tuple[argparse.Namespace, Settings, Options, OutputPaths]:
    """An MNIST script's flags, read once: the parsed flags (for what main alone reads, as --plot-only),
    the settings, the options, and where the run writes. Where the flags choose another kind of run
    (Q5.5's --lrs), `variant` gives from them its script name and the defaults that replace the parser's."""
    args = parser.parse_args(argv)
    settings, options = read_flags(args)
    script, extra_defaults = variant(args) if variant else (script, {})
    return args, settings, options, output_paths(script, settings.computing(), {**defaults(parser), **extra_defaults},
                                                 args.output_dir, options.resume)


def defaults(parser: argparse.ArgumentParser, names: Sequence[str] = (*COMPUTING, *SWEEP)) -> dict:
    """The defaults of those of `names` the parser has flags for: the assignment's settings."""
    given = vars(parser.parse_args([]))
    return {name: given[name] for name in names if name in given}


def differing(ours: dict, theirs: dict, keys: Sequence[str] | None = None) -> dict[str, tuple]:
    """The settings (`keys`, else every key of either) in which two runs differ, with both values."""
    keys = dict.fromkeys([*ours, *theirs]) if keys is None else keys
    return {key: (ours.get(key), theirs.get(key)) for key in keys if ours.get(key) != theirs.get(key)}


def number_text(value) -> str:
    """A number as short as it reads, and exact: 0.1 as 0.1, 0.1000001 as 0.1000001 (not :g's 0.1)."""
    return f"{value:g}" if isinstance(value, float) and float(f"{value:g}") == value else str(value)


def flag_text(name: str, value, joiner: str = " ") -> str:
    """A setting as its flag and value, each number by number_text: "lr 0.05", "flood-levels 0,0.1"."""
    return name.replace("_", "-") + joiner + ",".join(map(number_text, value if isinstance(value, list) else [value]))


def run_folder(script: str, changed: dict) -> Path:
    """results/runs/<script>-<the changed settings, shortened>-<a hash of them, exact>/: runs at any
    two different settings get different folders, however long or close their values."""
    readable = "_".join(flag_text(name, value, "") for name, value in changed.items())
    digest = hashlib.sha256(json.dumps([script, changed], sort_keys=True, default=str).encode()).hexdigest()[:8]
    return RUNS_DIR / f"{script}-{readable if len(readable) <= 60 else readable[:60] + '..'}-{digest}"


def place(path: Path) -> str:
    """A folder's full path as its file system tells folders apart: macOS's (APFS) and Windows' ignore case."""
    text = os.path.normcase(Path(path).resolve())
    return text.casefold() if sys.platform == "darwin" else text


def committed_folder(folder: Path) -> bool:
    """Whether `folder` is, or lies inside, a folder of the committed outputs (results/, report/);
    results/runs/ and results/quick/ hold runs that are not committed."""
    folder = place(folder)

    def inside(*roots: Path) -> bool:
        return any(folder == root or folder.startswith(root + os.sep) for root in map(place, roots))
    return inside(RESULTS_DIR, REPORT_DIR) and not inside(RUNS_DIR, QUICK_DIR)


def output_paths(script: str, settings: dict, defaults: dict, output_dir: Path | None, resume: bool = False) -> OutputPaths:
    """Where a run writes: the committed results, figures and snippets only when every setting named in
    `defaults` has its default value (with no --output-dir, or --output-dir results/); otherwise
    --output-dir if given, which may not lie among the committed outputs, or results/runs/<script>-<settings>-<hash>/."""
    changed = {name: ours for name, (ours, _) in differing(settings, defaults, list(defaults)).items()}
    named = [flag_text(name, value) for name, value in changed.items()]
    root = output_dir
    if root is not None and committed_folder(root):
        is_results = place(root) == place(RESULTS_DIR)
        if not is_results or changed:
            where = "is the folder of the committed results" if is_results else \
                "lies inside the committed results, figures and snippets (results/, report/)"
            why = (f"this run is not it ({', '.join(named)}); without --output-dir it writes to "
                   f"{run_folder(script, changed)}" if changed else "it writes there without --output-dir")
            raise common.UserError(f"--output-dir {root} {where}, which only the assignment's run writes: {why}.")
        root = None  # the assignment's run, told where it writes anyway
    if root is None and changed:
        root = run_folder(script, changed)
        if resume and not root.exists():
            others = sorted(p.name for p in RUNS_DIR.glob(f"{script}-*") if p.is_dir())
            listed = f" (in {RUNS_DIR}: {', '.join(others)})" if others else ""
            raise common.UserError(
                f"--resume: no run at these settings was saved ({root} does not exist). To continue a run to another "
                f"--epochs, name its folder: --output-dir {RUNS_DIR}/<its folder> --resume --epochs N{listed}.")
    if root is None:
        return OutputPaths(RESULTS_DIR, FIGURES_DIR, GENERATED_DIR, named)
    return OutputPaths(Path(root), Path(root) / "figures", Path(root) / "generated", named)


def ensure_writable(folder: Path) -> None:
    """Fail before training, not after it, when results cannot be saved."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise common.UserError(f"Cannot write to {folder}: {err.strerror or err}.") from None


def training_device(choice: str, tf32: bool = False) -> tuple[torch.device, bool]:
    """The device --device names, and whether its matrix products would use TF32 (only CUDA has it): a lookup,
    which changes no setting (a run sets torch.backends.cuda.matmul.allow_tf32 as it starts)."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise common.UserError("--device cuda was asked for, but PyTorch sees no CUDA GPU; use --device cpu or auto.")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice), tf32 and choice == "cuda"


def run_main(main: Callable[[], int | None]) -> None:
    """Run a script's main(): user errors become one message and exit status 1, not a traceback."""
    if isinstance(sys.stdout, io.TextIOWrapper):  # (a caller's StringIO is left alone)
        # written to a file or pipe in a Windows code page, a path's other characters would end the run in a traceback
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        sys.exit(main())
    except common.RunInterrupted as err:
        print(f"\n{err}", file=sys.stderr)
        sys.exit(130)
    except common.UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
