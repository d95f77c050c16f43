"""Tiny synthetic MNIST files in the real IDX format, so no test needs the real data; scripts run in-process."""
from __future__ import annotations

import contextlib
import gzip
import importlib
import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.container import ErrorbarContainer

REPO_ROOT = Path(__file__).resolve().parent.parent
# a test that sends a process a POSIX signal: Windows has no SIGHUP, and its Popen.send_signal knows only SIGTERM
# (a kill, nothing saved) and console events
POSIX_SIGNALS = pytest.mark.skipif(os.name != "posix", reason="sends a process POSIX signals")
sys.path.insert(0, str(REPO_ROOT / "codes"))

import cli  # noqa: E402 (from codes/, just put on the path)
import plotting  # noqa: E402


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: magic 0x08 type and the number of dimensions, then the sizes."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is a bright 7x7 block at one of ten places, plus noise: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, 28, 28))
    for image, label in zip(images, labels):
        row, col = divmod(int(label), 5)
        image[2 + 12 * row : 9 + 12 * row, 1 + 5 * col : 8 + 5 * col] = 255
    return images.astype(np.uint8), labels.astype(np.uint8)


def write_mnist(root: Path, n_train: int = 100, n_test: int = 30, gz: bool = False) -> Path:
    """Write the four MNIST files under root/MNIST/raw/ (gzip-compressed if gz); return root."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = synthetic_digits(n_train, seed=1)
    test_images, test_labels = synthetic_digits(n_test, seed=2)
    files = {
        "train-images-idx3-ubyte": train_images,
        "train-labels-idx1-ubyte": train_labels,
        "t10k-images-idx3-ubyte": test_images,
        "t10k-labels-idx1-ubyte": test_labels,
    }
    for name, array in files.items():
        data = idx_bytes(array)
        if gz:
            (raw / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (raw / name).write_bytes(data)
    return root


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    return write_mnist(tmp_path / "data")


def says(message: str, *parts: str) -> bool:
    """Whether a message names each of `parts` (a file, a flag, a number): its meaning, not its wording."""
    return all(part in message for part in parts)


def panel(ax) -> dict:
    """What one panel shows: its title, axis labels, every curve's data by its label in the legend (an error
    bar's is its container's; _line<i> for a curve the legend leaves out), and its images."""
    error_bars = {bars.lines[0]: bars.get_label() for bars in ax.containers if isinstance(bars, ErrorbarContainer)}
    labels = [error_bars.get(line, line.get_label()) for line in ax.get_lines()]
    curves = {label if not label.startswith("_") else f"_line{i}": (list(line.get_xdata()), list(line.get_ydata()))
              for i, (line, label) in enumerate(zip(ax.get_lines(), labels))}
    return {"title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
            "xscale": ax.get_xscale(), "yscale": ax.get_yscale(),
            "curves": curves, "images": [np.asarray(image.get_array()) for image in ax.get_images()]}


@pytest.fixture
def drawn(monkeypatch) -> dict[str, dict]:
    """The figures the scripts save while the test runs, by file name: the title and each panel, as drawn."""
    figures = {}
    save = plotting.save

    def save_and_record(fig, path: Path) -> Path:
        figures[path.name] = {"title": fig.get_suptitle(), "panels": [panel(ax) for ax in fig.axes]}
        return save(fig, path)

    monkeypatch.setattr(plotting, "save", save_and_record)
    return figures


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run codes/<script> as a student would, but in this process: its main() under cli.run_main, so a
    user error is one message and an exit status, returned with the output as from a process. What a
    process has to itself is set for the call and put back after it: sys.argv (argparse's program name,
    a lock's holder), TF32, and the locks the run took (released at its end, as the OS does)."""
    module = importlib.import_module(Path(script).stem)
    stdout, stderr = io.StringIO(), io.StringIO()
    argv, held, tf32 = sys.argv, set(cli._HELD_LOCKS), torch.backends.cuda.matmul.allow_tf32
    sys.argv = [str(REPO_ROOT / "codes" / script), *args]
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            cli.run_main(lambda: module.main(list(args)))
    except SystemExit as ended:  # run_main always ends so, with main's status or its own
        status = ended.code or 0
    finally:
        sys.argv = argv
        torch.backends.cuda.matmul.allow_tf32 = tf32
        for path in set(cli._HELD_LOCKS) - held:
            os.close(cli._HELD_LOCKS.pop(path))
    return subprocess.CompletedProcess([script, *args], status, stdout.getvalue(), stderr.getvalue())
