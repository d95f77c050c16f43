"""A training run's results file: training one from its settings, writing and reading the file,
and the numbers the scripts read from it (one copy's series, final metrics, collapse)."""
from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

import common
from latex import seconds_text


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
    checkpoint = common.Checkpoint(Path(results_path).with_suffix(".ckpt"), checkpoint_every, identity, resume)
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
    with common.replaced_atomically(path) as tmp, open(tmp, "wb") as f:
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
