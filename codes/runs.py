"""A training run's results file: training one from its settings, writing and reading the file,
and the numbers the scripts read from it (one copy's series, final metrics, collapse)."""
from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

import common
from latex import seconds_text


@contextlib.contextmanager
def replaced_atomically(path: Path):
    """Yield a temporary path beside `path` that replaces it in one rename on success and is
    removed on failure: a kill leaves the old file or the new one, never half of one. A failed
    write (a full disk, an unwritable folder) becomes a UserError."""
    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; results are for everyone to read
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        # torch.save reports a failed write as a RuntimeError
        if isinstance(err, (OSError, RuntimeError)) and not isinstance(err, common.UserError):
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).splitlines()[0]
            raise common.UserError(f"cannot write {path} ({reason}); the file that was there, if any, is unchanged.") from None
        raise


@dataclass
class Checkpoint:
    """Where a run saves its state, how often, and whether it starts from the saved state."""

    path: Path
    every: int  # epochs between saves; the last epoch and a Ctrl-C always save
    identity: dict  # the settings a resumed run must share with the saved one
    resume: bool = False

    def __post_init__(self):  # checked when the run is set up, before any data is loaded
        if self.resume and not self.path.exists():
            raise common.UserError(f"--resume: there is no checkpoint at {self.path} to resume from.")

    def read(self) -> dict:
        try:  # never with weights_only=False, whatever the unpickler suggests: the file may be anyone's
            state = torch.load(self.path, map_location="cpu", weights_only=True, mmap=True)
            if isinstance(state, dict) and {"identity", "trainer", "record", "epochs"} <= state.keys():
                return state
        except Exception:
            pass
        raise common.UserError(f"{self.path} is not a readable checkpoint of this project (damaged, or another file): "
                               "delete it, or start over with --restart.")

    def unfinished(self) -> str | None:
        """How far the saved run got, as "epoch E of N", if there is one that did not finish."""
        if not self.path.exists():
            return None
        state = self.read()
        done, diverged = state["record"]["history"]["epoch"][-1], state["record"]["diverged_at_epoch"]
        return None if done >= state["epochs"] or all(d is not None for d in diverged) else f"epoch {done} of {state['epochs']}"

    def restore(self, trainer: common.StackedTrainer, epochs: int) -> dict:
        """Put the saved training state into `trainer` and return the saved record of the run so far,
        if the checkpoint was made with this run's settings and for at most `epochs` epochs."""
        state = self.read()
        saved = state["identity"]
        changed = sorted(k for k in self.identity.keys() | saved.keys() if self.identity.get(k) != saved.get(k))
        if changed:
            details = ", ".join(f"{k}: saved {saved.get(k)!r}, now {self.identity.get(k)!r}" for k in changed)
            raise common.UserError(f"{self.path} was made with other settings ({details}); resume with the same flags.")
        try:  # a checkpoint of another model or a damaged one: shapes, generator states or the record differ
            trainer.load_state_dict(state["trainer"])
            record = state["record"]
            done, _ = record["history"]["epoch"][-1], record["total"]  # what fit reads first
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError):
            raise common.UserError(f"{self.path} does not hold the state of this run's model: delete it, or start "
                                   "over with --restart.") from None
        if done > epochs:
            raise common.UserError(f"{self.path} holds {done} epochs, more than the {epochs} asked for; "
                                   f"resume with --epochs {done} or more.")
        return record

    @contextlib.contextmanager
    def stop_on_ctrl_c(self):
        """The first Ctrl-C asks the loop to stop after the current epoch (so the saved state is a
        whole epoch's); a second one stops at once."""
        requested = threading.Event()

        def handler(signum, frame):
            if requested.is_set():
                raise KeyboardInterrupt
            requested.set()
            print("\nstopping after this epoch to save the state (Ctrl-C again to stop at once)", file=sys.stderr)

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield requested
        finally:
            signal.signal(signal.SIGINT, previous)

    def save(self, trainer: common.StackedTrainer, record: dict, epochs: int) -> None:
        state = {"identity": self.identity, "trainer": trainer.state_dict(), "record": record, "epochs": epochs}
        with replaced_atomically(self.path) as tmp:
            torch.save(state, tmp)


def train_and_record(question: str, config: dict, build: Callable[[], nn.Sequential], init_seeds: Sequence[int],
                     flood_levels: Sequence[float], results_path: Path, *, data_dir: Path, download: bool,
                     checkpoint_every: int, resume: bool, restart: bool, progress: bool, settings_changed: list[str],
                     desc: str):
    """Train the copies with the settings in `config` (see cli.run_config), saving the training state
    beside `results_path` as it goes; return the results record, the trained model and the splits.
    The saved state of a stopped run is continued (resume) or discarded (restart), never silently replaced."""
    start = time.perf_counter()
    device = torch.device(config["device"])
    one_copy = build()
    # --epochs is not part of the identity: with a constant learning rate a shorter run is the start
    # of a longer one, so a saved run may be continued to more epochs
    identity = {k: v for k, v in config.items() if k != "epochs"}
    identity.update(init_seeds=list(init_seeds), flood_levels=list(flood_levels), model=str(one_copy))
    checkpoint = Checkpoint(Path(results_path).with_suffix(".ckpt"), checkpoint_every, identity, resume)
    if not resume and not restart and (progress_saved := checkpoint.unfinished()):
        raise common.UserError(f"{checkpoint.path} holds the saved state of a stopped run ({progress_saved}): "
                               "continue it with --resume, or discard it and start over with --restart.")
    splits = common.prepare_splits(data_dir, device, config["split_seed"], config["subset"], download=download)
    model = common.StackedCopies(common.seeded_copies(build, init_seeds)).to(device)
    trainer = common.StackedTrainer(model, splits, lr=config["lr"], momentum=config["momentum"],
                                    batch_size=config["batch_size"], seed=config["seed"], flood_levels=flood_levels)
    outcome = common.fit(trainer, config["epochs"], progress=progress, desc=desc, checkpoint=checkpoint)
    diverged = [k for k, epoch in enumerate(outcome["diverged_at_epoch"]) if epoch is not None]
    results = {
        "question": question,
        "config": config,
        "status": "completed" if not diverged else f"copies {diverged} diverged (non-finite training loss)",
        "settings_changed": settings_changed,
        "model": {"architecture": str(one_copy), "parameters": common.parameter_count(one_copy)},
        "copies": [{"init_seed": s, "flood_level": b} for s, b in zip(init_seeds, flood_levels)],
        "split_sizes": {name: len(split) for name, split in splits.items()},
        "environment": environment(device),
        **outcome,
        "wall_seconds": time.perf_counter() - start,
    }
    return results, model, splits


def cpu_name() -> str:
    """The processor's model and its number of cores, e.g. 'AMD EPYC (2 cores)'."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def environment(device: torch.device) -> dict:
    """What the numbers were measured on."""
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cpu_threads": torch.get_num_threads(),
    }


def _json_safe(value):
    """NaN and infinity as null, so the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a file through a temporary file and a rename: a kill leaves the old file or the new one."""
    with replaced_atomically(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_json_atomic(path: Path, obj: dict) -> None:
    write_bytes_atomic(Path(path), json.dumps(_json_safe(obj), separators=(",", ":"), allow_nan=False).encode())


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(Path(path), text.encode())


def read_results(path: Path, required: Sequence[str] = ("config", "history", "copies", "diverged_at_epoch")) -> dict:
    """A results file, checked to hold the `required` keys."""
    path = Path(path)
    if not path.exists():
        raise common.UserError(f"No results file at {path}: run the script without --plot-only first.")
    try:
        results = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise common.UserError(f"{path} is not valid JSON ({err}); rerun the script to rewrite it.") from None
    missing = [key for key in required if not isinstance(results, dict) or key not in results]
    if missing:
        raise common.UserError(f"{path} is not a results file of this script (it lacks {', '.join(missing)}); "
                               "rerun the script to rewrite it.")
    return results


def differing_settings(config: dict, other: dict, keys: Sequence[str]) -> list[str]:
    """The settings among `keys` in which two runs' configs differ, as '--flag A vs B'."""
    return [f"--{key.replace('_', '-')} {config.get(key)} vs {other.get(key)}"
            for key in keys if config.get(key) != other.get(key)]


def series(results: dict, key: str, copy: int = 0) -> list:
    """One copy's values of a history key, over epochs 0..E."""
    return [row[copy] for row in results["history"][key]]


def argmin_finite(values: Sequence[float | None]) -> int:
    """Index of the smallest value, skipping the None a diverged epoch leaves (first index on ties)."""
    return min((i for i, v in enumerate(values) if v is not None), key=lambda i: values[i])


def collapse_epoch(results: dict, copy: int = 0) -> int | None:
    """The first epoch at which a copy's training loss is above its loss before training, i.e. the
    network has become worse than an untrained one (None if that never happens)."""
    losses = series(results, "train_loss", copy)
    if losses[0] is None:  # not even the untrained network's loss is finite
        return None
    return next((e for e, loss in zip(results["history"]["epoch"][1:], losses[1:])
                 if loss is not None and loss > losses[0]), None)  # a diverged epoch is None


def collapsed_copies(results: dict) -> dict[int, int]:
    """Every copy that collapsed (see collapse_epoch), with its first such epoch."""
    return {k: epoch for k in range(len(results["copies"])) if (epoch := collapse_epoch(results, k)) is not None}


def final_metrics(results: dict, copy: int = 0) -> dict:
    """One copy's last-epoch loss and error on each split; its best validation error, lowest
    validation loss and their epochs; the first epoch of zero training error (None if never)."""
    history = results["history"]
    epochs = history["epoch"]
    metrics = {f"{split}_{m}": history[f"{split}_{m}"][-1][copy] for split in ("train", "val", "test") for m in ("loss", "error")}
    val_errors, val_losses = series(results, "val_error", copy), series(results, "val_loss", copy)
    best, lowest = argmin_finite(val_errors), argmin_finite(val_losses)
    metrics.update(
        best_val_error=val_errors[best], best_val_epoch=epochs[best],
        lowest_val_loss=val_losses[lowest], lowest_val_loss_epoch=epochs[lowest],
        zero_train_error_epoch=next((e for e, err in zip(epochs, series(results, "train_error", copy)) if err == 0), None),
    )
    return metrics


def single_run_outcome(results: dict, name: str, advice: str) -> tuple[str | None, str | None, str | None]:
    """How a single-copy run ended, in words: (error, warning, summary), each None where it does not
    apply. An error if the training loss became non-finite; otherwise a warning if it ever rose above
    its value before training (a collapse), and the final and best errors with the time per epoch."""
    lr = results["config"]["lr"]
    diverged = results["diverged_at_epoch"][0]
    if diverged is not None:
        return (f"error: the {name} diverged at epoch {diverged} (the training loss is not finite) with "
                f"--lr {lr:g}; {advice}"), None, None
    collapsed = collapse_epoch(results)
    warning = None if collapsed is None else (
        f"warning: at epoch {collapsed} the {name}'s training loss rose above its value before training "
        f"(--lr {lr:g}): it did not train steadily; {advice}")
    final, seconds = final_metrics(results), results["seconds"]
    summary = (
        f"{name} final errors: train {final['train_error']:.3f}%, validation {final['val_error']:.2f}%, "
        f"test {final['test_error']:.2f}% (best validation {final['best_val_error']:.2f}% at epoch "
        f"{final['best_val_epoch']}); {seconds_text(seconds['train_per_epoch'])} s training + "
        f"{seconds_text(seconds['eval_per_epoch'])} s evaluation per epoch on {results['environment']['device_name']}"
    )
    return None, warning, summary


def print_single_run_outcome(results: dict, name: str, advice: str) -> bool:
    """Print single_run_outcome's messages (problems to stderr); True if the run diverged."""
    error, warning, summary = single_run_outcome(results, name, advice)
    for problem in (error, warning):
        if problem:
            print(problem, file=sys.stderr)
    if summary:
        print(summary)
    return error is not None
