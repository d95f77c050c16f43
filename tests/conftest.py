"""Tiny synthetic MNIST files in the real IDX format, so no test needs the real data."""
from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "codes"))


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


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run codes/<script> as a student would, capturing its output."""
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "codes" / script), *args], capture_output=True, text=True, timeout=600
    )
