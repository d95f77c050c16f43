"""A training run's results file: training one from its settings, writing every output atomically,
the checkpoint of a run in progress, and reading the file and the numbers the scripts take from it
(one copy's series, final metrics, collapse)."""
from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

import torch
from torch import nn

import cli
import common
from latex import seconds_text


def check_replaceable(path: Path) -> None:
    """Refuse, before any work, a path that a written file cannot replace: a folder, or a read-only file
    (which Unix would let a rename replace, against its owner's wish; Windows would not)."""
    path = Path(path)
    if path.is_dir():
        raise common.UserError(f"{path} is a folder, where this script writes a file: move it away.")
    if path.exists() and not (os.access(path, os.W_OK) and path.stat().st_mode & 0o222):  # root may write anything
        raise common.UserError(f"{path} is read-only: make it writable (chmod u+w; on Windows, clear its read-only "
                               "property) or remove it, and run again.")


def write_atomic(path: Path, content: bytes | str | dict | Callable[[BinaryIO], object]) -> Path:
    """Write bytes, text (UTF-8), a dict (strict JSON, NaN and infinity as null) or what a function writes into
    the open file to a temporary file beside `path`, renamed into place: a kill leaves the old file or the new
    one, never half of one. A failed write (a full disk, an unwritable folder) is a UserError; the old file stays."""
    if isinstance(content, dict):  # strict JSON: the NaN and infinity Python's json writes, read back as null
        content = json.dumps(json.loads(json.dumps(content), parse_constant=lambda _: None), separators=(",", ":"))
    data = content.encode() if isinstance(content, str) else content
    path, tmp = Path(path), None
    try:
        check_replaceable(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as file:
            data(file) if callable(data) else file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; results are for everyone to read
        os.replace(tmp, path)
        return path
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        failure = err if isinstance(err, Exception) else None
        while failure is not None and not isinstance(failure, OSError):
            failure = failure.__context__  # torch.save raises a RuntimeError while handling the failed write
        if failure is not None:
            raise common.UserError(f"cannot write {path} ({failure.strerror or failure}); the file that was there, "
                                   "if any, is unchanged.") from None
        raise


def finite(value) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def recorded(rows, epochs: int, copies: int) -> bool:
    """Whether `rows` has the shape of a history entry: one list of `copies` values per epoch."""
    return isinstance(rows, list) and len(rows) == epochs and all(isinstance(row, list) and len(row) == copies
                                                                  for row in rows)


def read_checkpoint(path: Path) -> dict:
    """A saved training state, checked to have the shape fit and restore read (a damaged or crafted file
    is refused here, not with an IndexError deep in the loop)."""
    try:  # never with weights_only=False, whatever the unpickler suggests: the file may be anyone's
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        record, epochs = state["record"], state["epochs"]
        if (isinstance(state["identity"], dict) and type(epochs) is int and len(record["history"]["epoch"]) <= epochs + 1
                and all(isinstance(record[k], float) for k in ("train", "eval", "total"))
                and not misplaced_history(record["history"], record["diverged_at_epoch"],
                                          len(record["diverged_at_epoch"]), lambda v: type(v) in (int, float))):
            return state
    except Exception:  # any unreadable or misshapen content ends in the message below
        pass
    raise common.UserError(f"{path} is not a readable checkpoint of this project (damaged, or another file): "
                           "delete it, or start over with --restart.")


@dataclass
class Checkpoint:
    """Where a run saves its state, how often, and whether it starts from the saved state."""

    path: Path
    every: int  # epochs between saves; the last epoch and a stop signal always save
    identity: dict  # the settings a resumed run must share with the saved one
    resume: bool = False

    def restore(self, trainer: common.StackedTrainer, epochs: int) -> dict:
        """Put the saved training state into `trainer` and return the saved record of the run so far,
        if the checkpoint was made with this run's settings and for at most `epochs` epochs."""
        state = read_checkpoint(self.path)
        if changed := differing_settings(state["identity"], self.identity):
            raise common.UserError(f"{self.path} was made with other settings (saved vs now: {', '.join(changed)}); "
                                   "resume with the same flags.")
        record, parameters = state["record"], list(trainer.model.parameters())
        try:  # a checkpoint of another model or a damaged one: shapes, generator states or the record differ
            saved_parameters, momentum = state["trainer"]["parameters"], state["trainer"]["momentum"]
            if not (len(saved_parameters) == len(momentum) == len(parameters)
                    and all(s.shape == p.shape and (m is None or m.shape == p.shape)
                            for s, m, p in zip(saved_parameters, momentum, parameters))
                    and len(record["diverged_at_epoch"]) == trainer.model.copies
                    and set(record["history"]) == {"epoch", *trainer.evaluated, *common.BATCH_STATISTICS}):
                raise ValueError
            trainer.load_state_dict(state["trainer"])
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError):
            raise common.UserError(f"{self.path} does not hold the state of this run's model: delete it, or start "
                                   "over with --restart.") from None
        done = record["history"]["epoch"][-1]
        if done > epochs:
            raise common.UserError(f"{self.path} holds {done} epochs, more than the {epochs} asked for; "
                                   f"resume with --epochs {done} or more.")
        return record

    def save(self, trainer_state: dict, record: dict, epochs: int) -> None:
        """Save a StackedTrainer.state_dict (moved to the CPU) with the record of the run so far."""
        on_cpu = {**trainer_state, "parameters": [p.cpu() for p in trainer_state["parameters"]],
                  "momentum": [None if m is None else m.cpu() for m in trainer_state["momentum"]]}
        state = {"identity": self.identity, "trainer": on_cpu, "record": record, "epochs": epochs}
        # through a Python file, whose failed write says why (torch's own writer: "enforce fail ... unexpected pos")
        write_atomic(self.path, lambda file: torch.save(state, file))


def checkpoint_path(results_path: Path) -> Path:
    return Path(results_path).with_suffix(".ckpt")


def resumed_parts(results_paths: Sequence[Path], resume: bool, restart: bool) -> list[bool]:
    """Which parts of a run continue from their saved state: a run of several parts (one results file
    each, trained one after another, as a sweep's learning rates) stopped in one part continues it with
    --resume and then trains the parts after it. Without --resume or --restart, a part's unfinished
    saved state is refused before any part trains, so that none is silently replaced."""
    checkpoints = [checkpoint_path(path) for path in results_paths]
    if resume:
        if not any(path.exists() for path in checkpoints):
            raise common.UserError(f"--resume: there is no checkpoint at {' or '.join(map(str, checkpoints))} "
                                   "to resume from.")
        return [path.exists() for path in checkpoints]
    for path in [] if restart else [path for path in checkpoints if path.exists()]:
        state = read_checkpoint(path)
        done, diverged = state["record"]["history"]["epoch"][-1], state["record"]["diverged_at_epoch"]
        if done < state["epochs"] and any(d is None for d in diverged):  # stopped, not finished or all diverged
            raise common.UserError(f"{path} holds the saved state of a stopped run (epoch {done} of {state['epochs']}): "
                                   "continue it with --resume, or discard it and start over with --restart.")
    return [False] * len(checkpoints)


def train_and_record(question: str, settings: cli.Settings, build: Callable[[], nn.Sequential], init_seeds: Sequence[int],
                     flood_levels: Sequence[float], results_path: Path, options: cli.Options, paths: cli.OutputPaths,
                     desc: str):
    """Train the copies at `settings`, saving the training state beside `results_path` as it goes;
    return the results record, the trained model and the splits. The saved state of a stopped run is
    continued (options.resume) or discarded (options.restart), never silently replaced."""
    start = time.perf_counter()
    device, tf32 = cli.training_device(settings.device, settings.tf32)
    torch.backends.cuda.matmul.allow_tf32 = tf32  # set as this run starts, for all of it
    config = settings.config(device.type, tf32)
    one_copy = build()
    # --epochs is not part of the identity: with a constant learning rate a shorter run is the start
    # of a longer one, so a saved run may be continued to more epochs
    identity = {k: v for k, v in config.items() if k != "epochs"}
    identity.update(init_seeds=list(init_seeds), flood_levels=list(flood_levels), model=str(one_copy))
    for path in (results_path, checkpoint_path(results_path)):  # before the training, not after it
        check_replaceable(path)
    [resume] = resumed_parts([results_path], options.resume, options.restart)
    checkpoint = Checkpoint(checkpoint_path(results_path), options.checkpoint_every, identity, resume)
    splits = common.prepare_splits(options.data_dir, device, settings.split_seed, settings.subset,
                                   download=options.download, original_only=paths.is_assignment_run)
    model = common.StackedCopies(common.seeded_copies(build, init_seeds)).to(device)
    trainer = common.StackedTrainer(model, splits, lr=settings.lr, momentum=settings.momentum,
                                    batch_size=settings.batch_size, seed=settings.seed, flood_levels=flood_levels)
    outcome = common.fit(trainer, settings.epochs, progress=options.progress, desc=desc, checkpoint=checkpoint)
    diverged = [k for k, epoch in enumerate(outcome["diverged_at_epoch"]) if epoch is not None]
    results = {
        "question": question,
        "config": config,
        "status": "completed" if not diverged else f"copies {diverged} diverged (non-finite training loss)",
        "settings_changed": paths.changed,
        "model": {"architecture": str(one_copy), "parameters": common.parameter_count(one_copy)},
        "copies": [{"init_seed": s, "flood_level": b} for s, b in zip(init_seeds, flood_levels)],
        "split_sizes": {name: len(split) for name, split in splits.items()},
        "environment": environment(device),
        **outcome,
        "wall_seconds": time.perf_counter() - start,
    }
    return results, model, splits


def cpu_name() -> str:
    """The processor's model and its number of cores, e.g. 'AMD EPYC (2 cores)', from where each OS names the
    model (platform.processor says "arm" on a Mac, a family and stepping on Windows)."""
    name = None
    try:
        if sys.platform == "darwin":
            name = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True).stdout
        elif os.name == "nt":
            import winreg
            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0") as key:
                name = winreg.QueryValueEx(key, "ProcessorNameString")[0]
        elif found := re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE):
            name = found[1]
    except OSError:
        pass
    return f"{(name or '').strip() or platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


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


def misplaced_history(history, diverged, copies: int, number: Callable[[object], bool] = finite) -> str | None:
    """Where a history (per epoch 0, 1, ..., a value per copy: `number` or null, a number at the last epoch of a copy
    that did not diverge, confidences excepted) or its diverged_at_epoch is misshapen, in words (None if nowhere)."""
    epochs = history.get("epoch") if isinstance(history, dict) else None
    if not (isinstance(epochs, list) and epochs and epochs == list(range(len(epochs)))):
        return "no epochs 0, 1, 2, ... in history/epoch"
    if not (isinstance(diverged, list) and copies and len(diverged) == copies
            and all(d is None or type(d) is int for d in diverged)):
        return f"no epoch or null for each of the {copies} copies in diverged_at_epoch"
    for key, rows in history.items():
        if key == "epoch":
            continue
        if not recorded(rows, len(epochs), copies):
            return f"history/{key} that is not one list of {copies} numbers per epoch"
        for epoch, row in zip(epochs, rows):
            for k, value in enumerate(row):
                ends = epoch == epochs[-1] and diverged[k] is None and epoch > 0 and "confidence" not in key
                if (value is None and ends) or (value is not None and not number(value)):
                    return f"{value!r} in history/{key} at epoch {epoch} (copy {k}), where a number belongs"
    return None


def misplaced_number(results: dict) -> str | None:
    """Where a training run's results file holds something else than the numbers the figures and
    snippets read, in words (None if nowhere): every history value is a finite number, or null where
    the copy had diverged or (confidences) no digit was counted; the last epoch of every copy that did
    not diverge, the timings and the settings are finite numbers. A diverged run stays readable."""
    copies = results["copies"]
    if not (isinstance(copies, list) and copies and all(
            isinstance(c, dict) and finite(c.get("flood_level")) and type(c.get("init_seed")) is int for c in copies)):
        return "no list of copies, each with its init_seed and flood_level"
    if problem := misplaced_history(results["history"], results["diverged_at_epoch"], len(copies)):
        return problem
    epochs = results["history"]["epoch"]
    config, seconds = (results.get(key) if isinstance(results.get(key), dict) else {} for key in ("config", "seconds"))
    read = {f"config/{k}": config.get(k) for k in ("lr", "momentum", "batch_size")}
    for name, value in read.items():
        if not finite(value):
            return f"{value!r} in {name}, where a number belongs"
    if "seconds" in results and not all(finite(seconds.get(k)) and seconds[k] > 0  # Q5.5 divides by them
                                        for k in ("train_per_epoch", "eval_per_epoch")):
        return "no seconds/train_per_epoch and seconds/eval_per_epoch above 0"
    if problem := misplaced_field(results):
        return problem
    if results.get("epochs_completed", epochs[-1]) != epochs[-1]:
        return f"epochs_completed {results['epochs_completed']!r}, not the last epoch of the history ({epochs[-1]})"
    ece = results.get("final_val_ece", [None] * len(copies))
    if not (recorded([ece], 1, len(copies)) and all(v is None or finite(v) for v in ece)):
        return "a final_val_ece that is not one number per copy"
    return None


def indices(values, size: int) -> bool:
    """Whether `values` are distinct indices of a split of `size` digits."""
    return (isinstance(values, list) and all(type(i) is int and 0 <= i < size for i in values)
            and len(set(values)) == len(values))


def image(pixels) -> bool:
    """Whether `pixels` are one MNIST image: rows of grey levels 0-255."""
    return isinstance(pixels, list) and len(pixels) == common.IMAGE_SIDE and all(
        isinstance(row, list) and len(row) == common.IMAGE_SIDE and all(type(v) is int and 0 <= v <= 255 for v in row)
        for row in pixels)


def misplaced_field(results: dict) -> str | None:
    """Where the fields a single run's figures and snippets read besides its history are not what a run
    writes, in words (None if nowhere); each is checked where the file has it (`SINGLE_RUN` requires them)."""
    model, sizes, machine = (results.get(key) for key in ("model", "split_sizes", "environment"))
    if "model" in results and not (isinstance(model, dict) and type(model.get("parameters")) is int
                                   and model["parameters"] > 0):
        return "a model without its number of parameters"
    if "split_sizes" in results and not (isinstance(sizes, dict) and all(
            type(sizes.get(split)) is int and sizes[split] >= 0 for split in ("train", "val", "test"))):
        return "split_sizes that are not the number of digits of each split"
    if "environment" in results and not (isinstance(machine, dict) and isinstance(machine.get("device_name"), str)):
        return "an environment without the name of its device"
    sizes = sizes or {}
    if "misclassified_val_digits" in results:  # Q5.5 counts and draws them
        digits = results["misclassified_val_digits"]
        if not (isinstance(digits, list) and all(isinstance(d, dict) for d in digits)
                and indices([d.get("index") for d in digits], sizes.get("val", 0)) and all(
                    d.get("label") in range(common.NUM_CLASSES) and d.get("prediction") in range(common.NUM_CLASSES)
                    and type(d["label"]) is type(d["prediction"]) is int and image(d.get("pixels")) for d in digits)):
            return ("misclassified_val_digits that are not validation digits, each with its index, label, "
                    f"prediction and {common.IMAGE_SIDE}x{common.IMAGE_SIDE} pixels")
    if "misclassified_test_indices" in results and not indices(results["misclassified_test_indices"],
                                                                sizes.get("test", 0)):
        return "misclassified_test_indices that are not distinct indices of test digits"
    return None


RUN_KEYS = ("config", "history", "copies", "diverged_at_epoch")
# what a single run's figures and snippets read (Q5.2, Q5.5)
SINGLE_RUN = ("question", *RUN_KEYS, "epochs_completed", "model", "split_sizes", "seconds", "environment")


def read_results(path: Path, required: Sequence[str] = RUN_KEYS,
                 misplaced: Callable[[dict], str | None] = misplaced_number, question: str | None = None) -> dict:
    """A results file, checked to hold the `required` keys, to be one of `question`'s (if given), and
    by `misplaced` to hold numbers where they belong."""
    path = Path(path)
    if not path.exists():
        raise common.UserError(f"No results file at {path}: run the script without --plot-only first.")
    try:
        results = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise common.UserError(f"{path} is not valid JSON ({err}); rerun the script to rewrite it.") from None
    except OSError as err:  # a folder or an unreadable file in its place
        raise common.UserError(f"{path} cannot be read ({err.strerror or err}).") from None
    missing = [key for key in required if not isinstance(results, dict) or key not in results]
    if missing:
        raise common.UserError(f"{path} is not a results file of {question or 'this script'} (it lacks "
                               f"{', '.join(missing)}); rerun its script to rewrite it.")
    if question is not None and results.get("question") != question:
        raise common.UserError(f"{path} is not a results file of {question} (its question is "
                               f"{results.get('question')!r}): name one of {question}, or rerun its script.")
    if problem := misplaced(results):
        raise common.UserError(f"{path} holds {problem}; rerun the script to rewrite it.")
    return results


def differing_settings(config: dict, other: dict, keys: Sequence[str] | None = None) -> list[str]:
    """The settings among `keys` (else every key of either) in which two runs' configs differ, as '--flag A vs B'."""
    return [f"--{key.replace('_', '-')} {ours} vs {theirs}" for key, (ours, theirs) in cli.differing(config, other, keys).items()]


def results_name(lr: float, prefix: str) -> str:
    """One part's results file, named by its exact learning rate: lr0.1, lr0.1000001 (Q5.3's sweeps, Q5.5's check)."""
    return f"{prefix}_{cli.flag_text('lr', lr, '')}.json"


def misclassified(model: common.StackedCopies, splits: dict[str, common.Split]) -> dict:
    """The digits a trained run gets wrong, from which Q5.5 draws its comparison without the data: on the
    validation split each with its index, label, the answer and its pixels (0-255); on the test split the indices."""
    val, test = splits["val"], splits["test"]
    images, labels, answers = val.images.cpu(), val.labels.cpu(), common.predict(model, val)[0].cpu()
    wrong = (answers != labels).nonzero().flatten()
    pixels = ((images[wrong, 0] * common.MNIST_STD + common.MNIST_MEAN) * 255).round().clamp(0, 255).byte()
    return {"misclassified_val_digits": [{"index": i, "label": int(labels[i]), "prediction": int(answers[i]),
                                          "pixels": digit.tolist()} for i, digit in zip(wrong.tolist(), pixels)],
            "misclassified_test_indices": (common.predict(model, test)[0] != test.labels).nonzero().flatten().tolist()}


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
    history, epochs = results["history"], results["history"]["epoch"]
    metrics = {f"{split}_{m}": history[f"{split}_{m}"][-1][copy] for split in ("train", "val", "test") for m in ("loss", "error")}
    val_errors, val_losses = series(results, "val_error", copy), series(results, "val_loss", copy)
    best, lowest = argmin_finite(val_errors), argmin_finite(val_losses)
    metrics.update(
        best_val_error=val_errors[best], best_val_epoch=epochs[best],
        lowest_val_loss=val_losses[lowest], lowest_val_loss_epoch=epochs[lowest],
        zero_train_error_epoch=next((e for e, err in zip(epochs, series(results, "train_error", copy)) if err == 0), None),
    )
    return metrics


def print_single_run_outcome(results: dict, name: str, advice: str) -> None:
    """Say how a single-copy run ended: an error (to stderr) if the training loss became non-finite; otherwise a
    warning (to stderr) if it ever rose above its value before training (a collapse), and the final and best errors."""
    lr, diverged = results["config"]["lr"], results["diverged_at_epoch"][0]
    if diverged is not None:
        print(f"error: the {name} diverged at epoch {diverged} (the training loss is not finite) with --lr {cli.number_text(lr)}; "
              f"{advice}", file=sys.stderr)
        return
    collapsed = collapse_epoch(results)
    if collapsed is not None:
        print(f"warning: at epoch {collapsed} the {name}'s training loss rose above its value before training "
              f"(--lr {cli.number_text(lr)}): it did not train steadily; {advice}", file=sys.stderr)
    final, seconds = final_metrics(results), results["seconds"]
    print(f"{name} final errors: train {final['train_error']:.3f}%, validation {final['val_error']:.2f}%, "
          f"test {final['test_error']:.2f}% (best validation {final['best_val_error']:.2f}% at epoch "
          f"{final['best_val_epoch']}); {seconds_text(seconds['train_per_epoch'])} s training + "
          f"{seconds_text(seconds['eval_per_epoch'])} s evaluation per epoch on {results['environment']['device_name']}")
