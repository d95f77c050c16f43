"""MNIST loading and the 8:2 split."""
from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import common
from conftest import REPO_ROOT, synthetic_digits, write_mnist


def test_reads_raw_idx_files(mnist_root):
    mnist = common.load_mnist(mnist_root, download=False)
    images, labels = synthetic_digits(100, seed=1)
    assert torch.equal(mnist["train"][0], torch.from_numpy(images))
    assert torch.equal(mnist["train"][1], torch.from_numpy(labels).long())
    assert mnist["test"][0].shape == (30, 28, 28)


def test_gz_only_files_are_read_in_place_even_from_a_read_only_folder(tmp_path):
    root = write_mnist(tmp_path, gz=True)
    raw = root / "MNIST" / "raw"
    raw.chmod(0o555)
    try:
        mnist = common.load_mnist(root, download=False)
    finally:
        raw.chmod(0o755)
    images, _ = synthetic_digits(30, seed=2)
    assert torch.equal(mnist["test"][0], torch.from_numpy(images))
    assert sorted(p.name for p in raw.iterdir()) == sorted(f"{name}.gz" for name in common.MNIST_FILES)


def test_a_folder_where_a_file_should_be_is_one_message(mnist_root):
    path = mnist_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    path.unlink()
    path.mkdir()
    with pytest.raises(common.DataError, match="t10k-labels-idx1-ubyte is not a regular file"):
        common.load_mnist(mnist_root, download=False)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this OS")
def test_a_pipe_where_a_file_should_be_is_refused_at_once(mnist_root):
    path = mnist_root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.unlink()
    os.mkfifo(path)  # reading it would wait forever for a writer
    with pytest.raises(common.DataError, match="train-images-idx3-ubyte is not a regular file"):
        common.load_mnist(mnist_root, download=False)


def test_files_other_than_the_original_ones_are_named_in_a_warning(tmp_path, capsys, monkeypatch):
    root = write_mnist(tmp_path, gz=True)
    raw = root / "MNIST" / "raw"
    # the synthetic files' own digests, as if they were the published ones: no warning
    digests = {name: hashlib.md5(gzip.decompress((raw / f"{name}.gz").read_bytes())).hexdigest() for name in common.MNIST_FILES}
    monkeypatch.setattr(common, "MNIST_MD5", digests)
    common.load_mnist(root, download=False)
    assert capsys.readouterr().err == ""
    # the test set copied over the training set: the training files are named, the rest is silent
    for kind in ("images-idx3", "labels-idx1"):
        (raw / f"train-{kind}-ubyte.gz").write_bytes((raw / f"t10k-{kind}-ubyte.gz").read_bytes())
    common.load_mnist(root, download=False)
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 2
    for kind, warning in zip(("images-idx3", "labels-idx1"), warnings):
        assert warning.startswith(f"warning: {raw / f'train-{kind}-ubyte.gz'} is not the original MNIST file")


def test_missing_folder_names_folder_and_files(tmp_path):
    with pytest.raises(common.DataError) as err:
        common.load_mnist(tmp_path / "nowhere", download=False)
    message = str(err.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message
    for name in common.MNIST_FILES:
        assert name in message


def test_wrong_magic_number_names_the_file(mnist_root):
    path = mnist_root / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[3] = 0x03  # now claims three dimensions
    path.write_bytes(bytes(data))
    with pytest.raises(common.DataError, match="train-labels-idx1-ubyte is not an MNIST IDX file"):
        common.load_mnist(mnist_root, download=False)


def test_truncated_file_names_the_file(mnist_root):
    path = mnist_root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(common.DataError, match="t10k-images-idx3-ubyte is truncated"):
        common.load_mnist(mnist_root, download=False)


def test_corrupt_gzip_names_the_file(tmp_path):
    root = write_mnist(tmp_path, gz=True)
    gz = root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:50])
    with pytest.raises(common.DataError, match="train-images-idx3-ubyte.gz is not a valid gzip file"):
        common.load_mnist(root, download=False)
    assert not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()


def test_image_and_label_counts_must_agree(tmp_path):
    root = write_mnist(tmp_path)
    other = write_mnist(tmp_path / "other", n_train=90)
    (root / "MNIST/raw/train-labels-idx1-ubyte").write_bytes((other / "MNIST/raw/train-labels-idx1-ubyte").read_bytes())
    with pytest.raises(common.DataError, match="holds 100 images but .* holds 90 labels"):
        common.load_mnist(root, download=False)


def test_split_is_8_to_2_disjoint_and_seeded():
    train, val = common.split_indices(60_000, split_seed=0)
    assert (len(train), len(val)) == (48_000, 12_000)
    assert torch.equal(torch.cat([train, val]).sort().values, torch.arange(60_000))
    again_train, again_val = common.split_indices(60_000, split_seed=0)
    assert torch.equal(train, again_train) and torch.equal(val, again_val)
    other_train, _ = common.split_indices(60_000, split_seed=1)
    assert not torch.equal(train, other_train)


def test_prepare_splits_normalizes_and_subsets(mnist_root):
    splits = common.prepare_splits(mnist_root, torch.device("cpu"), subset=10, download=False)
    assert {name: len(s) for name, s in splits.items()} == {"train": 10, "val": 10, "test": 10}
    images, _ = synthetic_digits(100, seed=1)
    train_idx, _ = common.split_indices(100, 0)
    expected = (images[train_idx[:10].numpy()].astype(np.float32) / 255 - common.MNIST_MEAN) / common.MNIST_STD
    assert splits["train"].images.shape == (10, 1, 28, 28)
    assert np.allclose(splits["train"].images[:, 0].numpy(), expected, atol=1e-6)
    with pytest.raises(common.UserError, match="--subset must be between 1 and 80"):
        common.prepare_splits(mnist_root, torch.device("cpu"), subset=81, download=False)


def test_the_committed_results_are_made_only_from_the_original_files(mnist_root):
    """The assignment's run (which writes the committed results) refuses other files; other runs warn."""
    with pytest.raises(common.DataError, match="is not the original MNIST file .* --output-dir"):
        common.prepare_splits(mnist_root, torch.device("cpu"), download=False, original_only=True)
    assert len(common.prepare_splits(mnist_root, torch.device("cpu"), download=False)["train"]) > 0


def test_mnist_data_dir_empty_is_the_default_and_a_quoted_tilde_is_the_home_folder(tmp_path):
    program = f"""
import importlib, os, sys
sys.path.insert(0, {str(REPO_ROOT / "codes")!r})
os.environ["MNIST_DATA_DIR"] = ""
import cli
empty = cli.DATA_DIR
os.environ["MNIST_DATA_DIR"] = "~/mnist"
print(empty, importlib.reload(cli).DATA_DIR, sep="\\n")
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(tmp_path), "USERPROFILE": str(tmp_path)})
    assert done.stdout.splitlines() == [str(REPO_ROOT / "data"), str(tmp_path / "mnist")], done.stderr
