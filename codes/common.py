"""Shared core of the MNIST questions (Q5.2, Q5.3, Q5.5).

- MNIST from the four IDX files, checked and decompressed if needed; the 8:2
  train/validation split from its own seeded generator; the official test set
  evaluated alongside and never used for a choice.
- `StackedCopies`: K independent copies of one architecture evaluated as one
  batched model (parameters stacked along a leading K dimension).
- `StackedTrainer`: SGD on all K copies at once, each with its own flood level;
  on CUDA the whole step is one CUDA graph replayed per mini-batch.
- `fit`: loss and error on every split at epoch 0 and after every epoch,
  divergence detection, checkpoints, resume and a clean stop on Ctrl-C.
- Results files written atomically, and the command-line flags every script shares.

Functions here return values; the question scripts print and plot.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import gzip
import json
import math
import os
import platform
import signal
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parent.parent
# The folder torchvision.datasets.MNIST calls `root`: it holds MNIST/raw/.
DATA_DIR_ENV = "MNIST_DATA_DIR"
DEFAULT_DATA_DIR = REPO_ROOT / "data"
RESULTS_DIR = REPO_ROOT / "results"
FIGURES_DIR = REPO_ROOT / "report" / "figures"
GENERATED_DIR = REPO_ROOT / "report" / "generated"
# Shortened runs (fewer epochs or a subset) write here, never over the real results.
QUICK_DIR = RESULTS_DIR / "quick"

# The assignment's settings (Q5.2), shared by Q5.3 and Q5.5. The batch size is
# not fixed by the assignment; 128 is our choice.
ASSIGNMENT = dict(epochs=500, lr=0.1, momentum=0.9, batch_size=128)
TRAIN_FRACTION = 0.8  # the 8:2 split
# Mean and std of the 60,000 MNIST training pixels (scaled to [0, 1]).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
NUM_CLASSES = 10
SPLITS = ("train", "val", "test")
IMAGE_SIDE = 28

# name -> (IDX magic number, number of dimensions); the magic 0x0803 is
# "unsigned byte, 3 dimensions", 0x0801 "unsigned byte, 1 dimension".
MNIST_FILES = {
    "train-images-idx3-ubyte": (0x0803, 3),
    "train-labels-idx1-ubyte": (0x0801, 1),
    "t10k-images-idx3-ubyte": (0x0803, 3),
    "t10k-labels-idx1-ubyte": (0x0801, 1),
}


class UserError(Exception):
    """A problem the user can fix (missing data, a bad flag); reported without a traceback."""


class DataError(UserError):
    """The MNIST files are missing, corrupt or inconsistent."""


# ----------------------------------------------------------------------------- data


def _idx_shape(path: Path, magic: int, ndim: int) -> tuple[int, ...]:
    """Check an IDX file's header and size against its name's format; return its shape."""
    size = path.stat().st_size
    header_size = 4 + 4 * ndim
    with path.open("rb") as f:
        header = f.read(header_size)
    if len(header) < 4 or struct.unpack(">I", header[:4])[0] != magic:
        found = f"0x{struct.unpack('>I', header[:4])[0]:08x}" if len(header) >= 4 else "nothing"
        raise DataError(
            f"{path} is not an MNIST IDX file: expected magic number 0x{magic:08x}, found {found}. "
            "Replace it with the original file."
        )
    if len(header) < header_size:
        raise DataError(f"{path} is truncated: its header is incomplete ({size} bytes).")
    shape = struct.unpack(f">{ndim}I", header[4:])
    expected = header_size + math.prod(shape)
    if size != expected:
        what = "truncated" if size < expected else "longer than its header says"
        raise DataError(
            f"{path} is {what}: {size} bytes, the header {tuple(shape)} implies {expected}. "
            "Replace it with the original file."
        )
    if ndim == 3 and shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(f"{path} holds images of {shape[1]}x{shape[2]} pixels, not 28x28.")
    return shape


def _decompress(gz_path: Path, out_path: Path) -> None:
    """Decompress next to the archive, atomically, so a kill leaves no half file."""
    try:
        with gzip.open(gz_path, "rb") as src:
            data = src.read()
    except (OSError, EOFError) as err:
        raise DataError(f"{gz_path} is not a valid gzip file ({err}). Replace it with the original file.") from None
    _write_bytes_atomic(out_path, data)


def _missing_files_message(raw_dir: Path, missing: Sequence[str], download_error: str | None) -> str:
    names = ", ".join(MNIST_FILES)
    tried = (
        f"Downloading them failed ({download_error}). "
        if download_error
        else "Download was not attempted (--offline). "
    )
    return (
        f"MNIST was not found in {raw_dir} (missing: {', '.join(missing)}). "
        f"That folder must hold the four files {names}, as they are or gzip-compressed "
        f"with a .gz suffix. {tried}"
        f"Copy the files there, or point --data-dir (or ${DATA_DIR_ENV}) at the folder that contains MNIST/raw/."
    )


def load_mnist(data_dir: str | Path, download: bool = True) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Read MNIST into uint8 images (N, 28, 28) and int64 labels (N,) for "train" and "test".

    Raw IDX files in `<data_dir>/MNIST/raw/` are used as they are; `.gz` files
    there are decompressed first; otherwise torchvision's download is tried.
    """
    import torchvision  # imported here: its import takes a second and only loading needs it

    data_dir = Path(data_dir)
    raw_dir = data_dir / "MNIST" / "raw"
    for name in MNIST_FILES:
        gz_path = raw_dir / f"{name}.gz"
        if not (raw_dir / name).exists() and gz_path.exists():
            _decompress(gz_path, raw_dir / name)
    missing = [name for name in MNIST_FILES if not (raw_dir / name).exists()]
    download_error = None
    if missing and download:
        try:
            for train in (True, False):
                torchvision.datasets.MNIST(data_dir, train=train, download=True)
        except Exception as err:  # any network or disk failure ends in the message below
            download_error = f"{type(err).__name__}: {err}"
        missing = [name for name in MNIST_FILES if not (raw_dir / name).exists()]
    if missing:
        raise DataError(_missing_files_message(raw_dir, missing, download_error))

    shapes = {name: _idx_shape(raw_dir / name, *spec) for name, spec in MNIST_FILES.items()}
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        n_images = shapes[f"{prefix}-images-idx3-ubyte"][0]
        n_labels = shapes[f"{prefix}-labels-idx1-ubyte"][0]
        if n_images != n_labels:
            raise DataError(
                f"{raw_dir / (prefix + '-images-idx3-ubyte')} holds {n_images} images but "
                f"{raw_dir / (prefix + '-labels-idx1-ubyte')} holds {n_labels} labels."
            )
        dataset = torchvision.datasets.MNIST(data_dir, train=split == "train", download=False)
        labels = dataset.targets.long()
        if labels.numel() and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
            raise DataError(f"{raw_dir / (prefix + '-labels-idx1-ubyte')} holds labels outside 0-9.")
        splits[split] = (dataset.data, labels)
    return splits


def split_indices(n: int, split_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 8:2 train/validation split of n images, from its own seeded generator."""
    generator = torch.Generator().manual_seed(split_seed)
    order = torch.randperm(n, generator=generator)
    n_train = round(n * TRAIN_FRACTION)
    return order[:n_train], order[n_train:]


@dataclass
class Split:
    """Normalized images (N, 1, 28, 28) float32 and labels (N,) int64, on the training device."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def normalize(images: torch.Tensor) -> torch.Tensor:
    return ((images.float() / 255.0 - MNIST_MEAN) / MNIST_STD).unsqueeze(1)


def prepare_splits(
    data_dir: str | Path,
    device: torch.device,
    split_seed: int = 0,
    subset: int | None = None,
    download: bool = True,
) -> dict[str, Split]:
    """Train, validation and test splits, normalized, on `device`.

    `subset` keeps the first `subset` images of the training split and at most
    as many of validation and test (for seconds-long runs).
    """
    mnist = load_mnist(data_dir, download=download)
    train_images, train_labels = mnist["train"]
    train_idx, val_idx = split_indices(len(train_labels), split_seed)
    parts = {
        "train": (train_images[train_idx], train_labels[train_idx]),
        "val": (train_images[val_idx], train_labels[val_idx]),
        "test": mnist["test"],
    }
    if subset is not None:
        if not 1 <= subset <= len(train_idx):
            raise UserError(f"--subset must be between 1 and {len(train_idx)} (the training split), got {subset}.")
        parts = {name: (images[:subset], labels[:subset]) for name, (images, labels) in parts.items()}
    return {name: Split(normalize(images).to(device), labels.to(device)) for name, (images, labels) in parts.items()}


# ----------------------------------------------------------------------------- models


def mlp(hidden: int = 500) -> nn.Sequential:
    """The Q5.2 network: 784 -> 500 ReLU -> 10."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(IMAGE_SIDE * IMAGE_SIDE, hidden), nn.ReLU(), nn.Linear(hidden, NUM_CLASSES)
    )


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def multiply_adds_per_image(module: nn.Module) -> int:
    """Multiply-adds of one forward pass of one MNIST image through the Linear and Conv2d layers
    (what dominates the cost; activations and pooling are not counted)."""
    total = 0

    def count(layer, inputs, output):
        nonlocal total
        if isinstance(layer, nn.Linear):
            total += layer.in_features * layer.out_features
        else:  # each output value of a convolution is one dot product over its receptive field
            total += output[0].numel() * layer.in_channels // layer.groups * math.prod(layer.kernel_size)

    hooks = [m.register_forward_hook(count) for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    try:
        with torch.no_grad():
            module(torch.zeros(1, 1, IMAGE_SIDE, IMAGE_SIDE))
    finally:
        for hook in hooks:
            hook.remove()
    return total


def seeded_copies(build: Callable[[], nn.Module], init_seeds: Sequence[int]) -> list[nn.Module]:
    """One freshly built module per seed, each initialised as PyTorch does after manual_seed(seed)."""
    copies = []
    for seed in init_seeds:
        with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
            torch.manual_seed(seed)
            copies.append(build())
    return copies


class StackedCopies(nn.Module):
    """K independent copies of one nn.Sequential, run as one batched model.

    Every parameter of the template is stacked along a new leading dimension of
    size K (parameter k is exactly copy k's), and each layer is run for all
    copies in one call: Linear as a batched matmul, Conv2d as a grouped
    convolution with the copies side by side along the channels. The input
    batch (B, ...) is shared; the output is (K, B, ...). Explicit batched
    layers rather than torch.vmap, whose dispatch cost on the CPU is about
    half the MLP's training time.
    """

    ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Identity)
    POOLING = (nn.MaxPool2d, nn.AvgPool2d)

    def __init__(self, copies: Sequence[nn.Sequential]):
        super().__init__()
        if not copies:
            raise ValueError("StackedCopies needs at least one copy")
        supported = (nn.Flatten, nn.Linear, nn.Conv2d) + self.ELEMENTWISE + self.POOLING
        for layer in copies[0]:
            if not isinstance(layer, supported) or isinstance(layer, nn.Conv2d) and layer.groups != 1:
                raise TypeError(f"StackedCopies cannot stack {layer}")
        self.names = [name for name, _ in copies[0].named_parameters()]
        self.stacked = nn.ParameterList(
            [torch.stack([dict(m.named_parameters())[name].detach() for m in copies]) for name in self.names]
        )
        # The template supplies the layer types and their settings; its own
        # weights are never used. A list keeps it out of .parameters().
        self._template = [copy.deepcopy(copies[0]).to("meta")]

    @property
    def copies(self) -> int:
        return self.stacked[0].shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = dict(zip(self.names, self.stacked))
        copies = self.copies
        # Layout of the activation: "shared" (B, ...) before the first layer with
        # parameters; "channels" (B, K*C, H, W) after a convolution; "copies" (K, B, F).
        layout = "shared"
        for index, layer in enumerate(self._template[0]):
            weight, bias = params.get(f"{index}.weight"), params.get(f"{index}.bias")
            if isinstance(layer, nn.Linear):
                if layout == "channels":
                    raise TypeError("a Linear after a Conv2d needs an nn.Flatten between them")
                if layout == "shared":  # one GEMM against all copies' weights: (B, F) -> (B, K*out)
                    out = F.linear(x, weight.flatten(0, 1), None if bias is None else bias.flatten())
                    x = out.view(x.shape[0], copies, -1).transpose(0, 1)
                else:  # (K, B, F) -> (K, B, out)
                    out = torch.bmm(x, weight.transpose(1, 2))
                    x = out + bias.unsqueeze(1) if bias is not None else out
                layout = "copies"
            elif isinstance(layer, nn.Conv2d):
                if layout == "copies":
                    raise TypeError("a Conv2d after a Linear is not supported")
                weight = weight.flatten(0, 1)
                if layout == "shared" and x.device.type == "cpu":
                    # oneDNN is slow on a one-channel image in NCHW. With the first layer's
                    # weight channels-last (`.to` restrides it, where `.contiguous` takes a
                    # one-channel weight for channels-last already) every later layer
                    # follows, and a 2-core CPU trains the CNN about 20 % faster and
                    # evaluates it about 60 % faster (results/benchmark_cpu.json).
                    weight = weight.to(memory_format=torch.channels_last)
                x = F.conv2d(
                    x, weight, None if bias is None else bias.flatten(),
                    layer.stride, layer.padding, layer.dilation, groups=1 if layout == "shared" else copies,
                )
                layout = "channels"
            elif isinstance(layer, nn.Flatten):
                if layout == "channels":
                    x = x.reshape(x.shape[0], copies, -1).transpose(0, 1)
                    layout = "copies"
                else:
                    x = x.flatten(1 if layout == "shared" else 2)
            else:  # elementwise and pooling layers act on each channel alike
                x = layer(x)
        if layout == "channels":
            return x.reshape(x.shape[0], copies, -1, *x.shape[2:]).transpose(0, 1)
        return x if layout == "copies" else x.expand(copies, *x.shape)

    def copy_state(self, k: int) -> dict[str, torch.Tensor]:
        """Copy k's parameters as a state dict for the template architecture."""
        return {name: p[k].detach().clone() for name, p in zip(self.names, self.stacked)}


def per_copy_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of (K, B, C) logits against shared (B,) labels: (K,) for mean/sum, (K, B) for none."""
    copies, batch, classes = logits.shape
    # expand + reshape is a view for one copy (no per-step copy of the labels) and a copy otherwise
    shared_labels = labels.expand(copies, batch).reshape(copies * batch)
    losses = F.cross_entropy(logits.reshape(copies * batch, classes), shared_labels, reduction="none")
    losses = losses.view(copies, batch)
    if reduction == "none":
        return losses
    return losses.mean(1) if reduction == "mean" else losses.sum(1)


def flooded(loss: torch.Tensor, flood_level: torch.Tensor) -> torch.Tensor:
    """The flooding objective |R - b| + b (Ishida et al., 2020), elementwise per copy."""
    return (loss - flood_level).abs() + flood_level


@torch.no_grad()
def logits_in_chunks(model: StackedCopies, split: Split, batch_size: int):
    """Yield (logits (K, b, C), labels (b,)) over a split, without gradients."""
    for start in range(0, len(split), batch_size):
        yield model(split.images[start : start + batch_size]).float(), split.labels[start : start + batch_size]


def evaluate(model: StackedCopies, split: Split, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and error (% misclassified) of every copy on a split: two (K,) device tensors."""
    loss_sum = torch.zeros(model.copies, device=split.labels.device)
    wrong = torch.zeros(model.copies, device=split.labels.device)
    for logits, labels in logits_in_chunks(model, split, batch_size):
        loss_sum += per_copy_cross_entropy(logits, labels, reduction="sum")
        wrong += (logits.argmax(-1) != labels).sum(1)
    return loss_sum / len(split), 100.0 * wrong / len(split)


@torch.no_grad()
def expected_calibration_error(model: StackedCopies, split: Split, bins: int = 15, batch_size: int = 1000) -> torch.Tensor:
    """ECE of every copy: sum over equal-width confidence bins of |bin| / N * |accuracy - mean confidence|,
    the confidence being the largest softmax probability. (K,) tensor, a fraction in [0, 1]."""
    # per bin: sum of correct predictions and of confidences (|bin| * accuracy and |bin| * mean confidence)
    correct = torch.zeros(model.copies, bins, device=split.labels.device)
    confidence_sum = torch.zeros_like(correct)
    for logits, labels in logits_in_chunks(model, split, batch_size):
        confidence, predicted = logits.softmax(-1).max(-1)  # (K, b)
        # bin i holds confidences in (i/bins, (i+1)/bins]; a confidence is never below 1/10
        index = (confidence * bins).ceil().long().clamp(1, bins) - 1
        correct.scatter_add_(1, index, (predicted == labels).float())
        confidence_sum.scatter_add_(1, index, confidence)
    return (correct - confidence_sum).abs().sum(1) / len(split)


def predict(model: StackedCopies, split: Split, batch_size: int = 1000) -> torch.Tensor:
    """Predicted class of every copy for every image of a split: (K, N) int64 on the split's device."""
    return torch.cat([logits.argmax(-1) for logits, _ in logits_in_chunks(model, split, batch_size)], dim=1)


# ----------------------------------------------------------------------------- training


def default_eval_batch_size(device: torch.device, copies: int) -> int:
    """Images per evaluation chunk. A GPU wants large chunks (about 10,000 images'
    worth of copies); on the CPU, chunks of 512 keep the activations in cache: on a
    2-core CPU they evaluate the CNN twice as fast as chunks of 10,000 (118 against
    253 ms per 1,000 images) and 21 stacked MLPs a tenth faster than chunks of 1,000."""
    return 512 if device.type == "cpu" else max(1000, 10_000 // copies)


class StackedTrainer:
    """SGD with momentum on all copies of a StackedCopies at once.

    Each step draws one mini-batch (shared by every copy), computes each copy's
    mean cross-entropy, floods it at that copy's level, and sums the K results
    before backward: the sum keeps each copy's gradient exactly its own, and
    momentum SGD is elementwise, so one optimizer over the stacked tensors is K
    independent optimizers. Mini-batches come from a per-epoch permutation made
    on the device; the last partial batch is dropped so every step has the same
    shape (48,000 = 375 x 128, so at the defaults nothing is dropped).

    On CUDA the step (batch gather, forward, backward, SGD update, statistics)
    is captured once as a CUDA graph and replayed; elsewhere it runs eagerly.
    """

    def __init__(
        self,
        model: StackedCopies,
        splits: dict[str, Split],
        *,
        lr: float,
        momentum: float,
        batch_size: int,
        seed: int,
        flood_levels: Sequence[float] | None = None,
        eval_batch_size: int | None = None,
        use_cuda_graph: bool | None = None,
    ):
        self.model = model
        self.splits = splits
        self.train = splits["train"]
        self.device = self.train.labels.device
        if batch_size > len(self.train):
            raise UserError(f"--batch-size {batch_size} exceeds the {len(self.train)} training images.")
        self.batch_size = batch_size
        self.batches_per_epoch = len(self.train) // batch_size
        levels = [0.0] * model.copies if flood_levels is None else list(flood_levels)
        if len(levels) != model.copies:
            raise ValueError(f"{len(levels)} flood levels for {model.copies} copies")
        self.flood_levels = torch.tensor(levels, dtype=torch.float32, device=self.device)
        # Cross-entropy is never negative, so with every level 0 the flooded objective
        # |R - 0| + 0 is R itself (and so is its gradient wherever R > 0): skip its kernels.
        self.flooding = any(level != 0 for level in levels)
        self.eval_batch_size = eval_batch_size or default_eval_batch_size(self.device, model.copies)
        # On CUDA the update of every parameter is one fused kernel instead of a chain of
        # foreach kernels: about 5 ms less per MLP epoch and 4 ms per CNN epoch on an
        # H200. The CPU keeps the plain update, which is as fast there and keeps CPU runs
        # equal bit for bit to earlier ones (the fused kernel rounds differently).
        fused = self.device.type == "cuda"
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, fused=fused)
        self.batch_order = torch.Generator(device=self.device).manual_seed(seed)
        self.batch_index = torch.zeros(batch_size, dtype=torch.long, device=self.device)
        # Per-epoch sums over mini-batches, accumulated on the device (no host sync per step).
        self.batch_loss_sum = torch.zeros(model.copies, device=self.device)
        self.batches_below_flood = torch.zeros(model.copies, device=self.device)
        if use_cuda_graph is None:
            use_cuda_graph = self.device.type == "cuda"
        self.graph = self._capture() if use_cuda_graph else None

    def _step(self) -> None:
        images = self.train.images[self.batch_index]
        labels = self.train.labels[self.batch_index]
        losses = per_copy_cross_entropy(self.model(images), labels)
        self.optimizer.zero_grad(set_to_none=True)
        objective = flooded(losses, self.flood_levels) if self.flooding else losses
        objective.sum().backward()
        self.optimizer.step()
        losses = losses.detach()
        self.batch_loss_sum += losses
        if self.flooding:  # no loss is below a level of 0: the count stays 0
            self.batches_below_flood += losses < self.flood_levels

    def _capture(self) -> torch.cuda.CUDAGraph:
        """Capture one training step as a CUDA graph, leaving the model's state as it was.

        SGD creates its momentum buffers on the first step and the allocator must
        settle, so a few warm-up steps run on a side stream first; parameters and
        momentum are then restored (see load_state_dict: a buffer that did not
        exist becomes zero, and momentum * 0 + grad equals SGD's first step), so
        the replayed run equals the eager one.
        """
        saved = self.state_dict()
        self.batch_index.copy_(torch.arange(self.batch_size, device=self.device))
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):
                self._step()
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            self._step()
        self.load_state_dict(saved)
        return graph

    def state_dict(self) -> dict:
        """Parameters, momentum buffers and the batch-order generator, on the CPU."""
        params = list(self.model.parameters())
        momentum = [self.optimizer.state[p].get("momentum_buffer") for p in params]
        return {
            "parameters": [p.detach().cpu().clone() for p in params],
            "momentum": [None if m is None else m.cpu().clone() for m in momentum],
            "batch_order": self.batch_order.get_state(),
            # Training draws only from batch_order; the global generators are kept too,
            # so that code run after a resumed training sees what it would have seen.
            "cpu_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        """Restore a state_dict in place (a captured CUDA graph keeps pointing at the same memory)."""
        for p, saved, saved_momentum in zip(self.model.parameters(), state["parameters"], state["momentum"]):
            p.copy_(saved)
            buffer = self.optimizer.state[p].get("momentum_buffer")
            if saved_momentum is None:
                if buffer is not None:
                    buffer.zero_()  # momentum * 0 + grad is SGD's first step
            elif buffer is None:
                self.optimizer.state[p]["momentum_buffer"] = saved_momentum.to(p.device).clone()
            else:
                buffer.copy_(saved_momentum)
        self.batch_order.set_state(state["batch_order"])
        torch.set_rng_state(state["cpu_rng"])
        if state["cuda_rng"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)

    def train_epoch(self) -> dict[str, list[float]]:
        """One pass over the training split; returns the mean mini-batch loss and the
        fraction of mini-batches whose loss was below the flood level, per copy."""
        self.batch_loss_sum.zero_()
        self.batches_below_flood.zero_()
        order = torch.randperm(len(self.train), device=self.device, generator=self.batch_order)
        for i in range(self.batches_per_epoch):
            self.batch_index.copy_(order[i * self.batch_size : (i + 1) * self.batch_size])
            if self.graph is not None:
                self.graph.replay()
            else:
                self._step()
        n = self.batches_per_epoch
        return {
            "batch_loss": (self.batch_loss_sum / n).tolist(),
            "flood_active_fraction": (self.batches_below_flood / n).tolist(),
        }

    def evaluate_all(self) -> dict[str, list[float]]:
        """Loss and error of every copy on every split, with one host transfer."""
        metrics = {}
        for name, split in self.splits.items():
            metrics[f"{name}_loss"], metrics[f"{name}_error"] = evaluate(self.model, split, self.eval_batch_size)
        keys = list(metrics)
        values = torch.stack([metrics[k] for k in keys]).cpu().tolist()
        return dict(zip(keys, values))


@dataclass
class Checkpoint:
    """Where a run saves its state, how often, and whether it starts from the saved state."""

    path: Path
    every: int  # epochs between saves; the last epoch and a Ctrl-C always save
    identity: dict  # the settings a resumed run must share with the saved one
    resume: bool = False

    def __post_init__(self):
        # checked when the run is set up, before any data is loaded
        if self.resume and not self.path.exists():
            raise UserError(f"--resume: there is no checkpoint at {self.path} to resume from.")

    def load(self) -> dict:
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # a damaged file, whatever the unpickler says
            raise UserError(f"{self.path} cannot be read ({err}); delete it and start again without --resume.") from None
        changed = sorted(k for k in self.identity.keys() | state["identity"].keys()
                         if self.identity.get(k) != state["identity"].get(k))
        if changed:
            details = ", ".join(f"{k}: saved {state['identity'].get(k)!r}, now {self.identity.get(k)!r}" for k in changed)
            raise UserError(f"{self.path} was made with other settings ({details}); resume with the same flags.")
        return state

    def save(self, trainer: "StackedTrainer", record: dict) -> None:
        state = {"identity": self.identity, "trainer": trainer.state_dict(), "record": record}
        with replaced_atomically(self.path) as tmp:
            torch.save(state, tmp)


class RunInterrupted(UserError):
    """Ctrl-C: the run stopped at the end of an epoch and saved its state."""


@contextlib.contextmanager
def stop_after_epoch_on_ctrl_c():
    """The first Ctrl-C asks the training loop to stop after the current epoch (so the
    saved state is a whole epoch's); a second one stops at once."""
    requested = threading.Event()

    def handler(signum, frame):
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()
        print("\nstopping after this epoch to save the state (Ctrl-C again to stop at once)", file=sys.stderr)

    if threading.current_thread() is not threading.main_thread():
        yield requested
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)


def fit(
    trainer: StackedTrainer,
    epochs: int,
    progress: bool = True,
    desc: str = "train",
    checkpoint: Checkpoint | None = None,
) -> dict:
    """Train for `epochs`, evaluating at epoch 0 and after every epoch.

    Returns the history (each key a list over epochs 0..E of lists over copies;
    the mini-batch statistics are None at epoch 0), the epoch at which each copy's
    training loss became non-finite (None if never), and timings. A copy that
    diverges keeps training harmlessly (its values are NaN); the run stops early
    only when every copy has diverged. With a checkpoint, the state is saved every
    `checkpoint.every` epochs, at the end and on Ctrl-C, and a resumed run continues
    exactly where the saved one stopped.
    """
    copies = trainer.model.copies
    if checkpoint is not None and checkpoint.resume:
        state = checkpoint.load()
        trainer.load_state_dict(state["trainer"])
        record = state["record"]
        saved_epochs = record["history"]["epoch"][-1]
        if saved_epochs > epochs:
            raise UserError(f"{checkpoint.path} holds {saved_epochs} epochs, more than the {epochs} asked for; "
                            f"resume with --epochs {saved_epochs} or more.")
    else:
        history: dict[str, list] = {"epoch": [0], **{k: [v] for k, v in trainer.evaluate_all().items()}}
        history["batch_loss"] = [[None] * copies]
        history["flood_active_fraction"] = [[None] * copies]
        record = {"history": history, "diverged_at_epoch": [None] * copies, "train": 0.0, "eval": 0.0, "total": 0.0}
    history, diverged_at = record["history"], record["diverged_at_epoch"]
    first_epoch = history["epoch"][-1] + 1
    start = time.perf_counter() - record["total"]
    with contextlib.ExitStack() as stack:
        stop_requested = stack.enter_context(stop_after_epoch_on_ctrl_c()) if checkpoint else threading.Event()
        bar = stack.enter_context(tqdm(
            range(first_epoch, epochs + 1), desc=desc, unit="epoch", disable=not progress, dynamic_ncols=True,
            initial=first_epoch - 1, total=epochs,
        ))
        for epoch in bar:
            if all(d is not None for d in diverged_at):
                break
            t0 = time.perf_counter()
            batch_stats = trainer.train_epoch()  # .tolist() inside waits for the epoch's kernels
            t1 = time.perf_counter()
            metrics = trainer.evaluate_all()
            record["eval"] += time.perf_counter() - t1
            record["train"] += t1 - t0
            record["total"] = time.perf_counter() - start
            history["epoch"].append(epoch)
            for key, values in {**metrics, **batch_stats}.items():
                history[key].append(values)
            for k, loss in enumerate(metrics["train_loss"]):
                if diverged_at[k] is None and not math.isfinite(loss):
                    diverged_at[k] = epoch
            finite = [k for k in range(copies) if diverged_at[k] is None]
            if finite:
                bar.set_postfix(
                    train_err=f"{min(metrics['train_error'][k] for k in finite):.3f}%",
                    val_err=f"{min(metrics['val_error'][k] for k in finite):.3f}%",
                )
            last = epoch == epochs or not finite
            if checkpoint and (epoch % checkpoint.every == 0 or last or stop_requested.is_set()):
                checkpoint.save(trainer, record)
            if stop_requested.is_set() and not last:
                raise RunInterrupted(
                    f"interrupted after epoch {epoch}; the state is saved in {checkpoint.path}. "
                    "Run the same command with --resume to continue."
                )
    done = max(1, history["epoch"][-1])
    return {
        "history": history,
        "diverged_at_epoch": diverged_at,
        "epochs_completed": history["epoch"][-1],
        "seconds": {
            "total": time.perf_counter() - start,
            "train": record["train"],
            "eval": record["eval"],
            "train_per_epoch": record["train"] / done,
            "eval_per_epoch": record["eval"] / done,
        },
    }


def run_experiment(
    args: argparse.Namespace,
    build: Callable[[], nn.Sequential],
    init_seeds: Sequence[int],
    flood_levels: Sequence[float] | None = None,
    desc: str = "train",
    checkpoint_path: Path | None = None,
) -> tuple[dict, StackedCopies, dict[str, Split]]:
    """Load the splits, train one stacked model (copy k from init_seeds[k], flooded at
    flood_levels[k]) with the flags of add_training_arguments, saving its state to
    checkpoint_path as it goes (and resuming from it with --resume).

    Returns the results record, the trained model and the splits (for a script's
    own final measurements)."""
    start = time.perf_counter()
    device = training_device(args)
    levels = [0.0] * len(init_seeds) if flood_levels is None else list(flood_levels)
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    checkpoint = None
    if checkpoint_path is not None:
        # --epochs is left out: with a constant learning rate a shorter run is the start of a longer
        # one, so a saved run may be continued to more epochs or closed at the epoch it reached.
        identity = {k: v for k, v in config.items() if k not in RUN_ONLY_FLAGS | {"epochs"}}
        identity.update(device_type=device.type, init_seeds=list(init_seeds), flood_levels=levels)
        checkpoint = Checkpoint(checkpoint_path, args.checkpoint_every, identity, resume=args.resume)
    splits = prepare_splits(args.data_dir, device, args.split_seed, args.subset, download=not args.offline)
    model = StackedCopies(seeded_copies(build, init_seeds)).to(device)
    trainer = StackedTrainer(
        model, splits, lr=args.lr, momentum=args.momentum, batch_size=args.batch_size,
        seed=args.seed, flood_levels=flood_levels,
    )
    outcome = fit(trainer, args.epochs, progress=not args.no_progress, desc=desc, checkpoint=checkpoint)
    diverged = [k for k, epoch in enumerate(outcome["diverged_at_epoch"]) if epoch is not None]
    one_copy = build()
    results = {
        "config": config,
        "status": "completed" if not diverged else f"copies {diverged} diverged (non-finite training loss)",
        "shortened": is_shortened(args),
        "model": {"architecture": str(one_copy), "parameters": parameter_count(one_copy)},
        "copies": [{"init_seed": s, "flood_level": b} for s, b in zip(init_seeds, levels)],
        "split_sizes": {name: len(split) for name, split in splits.items()},
        "environment": environment(device),
        **outcome,
        "wall_seconds": time.perf_counter() - start,
    }
    return results, model, splits


# ----------------------------------------------------------------------------- results files


def cpu_name() -> str:
    """The processor's model and its number of cores, e.g. 'AMD EPYC (2 cores)'."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


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
    copies = len(results["history"]["train_loss"][0])
    return {k: epoch for k in range(copies) if (epoch := collapse_epoch(results, k)) is not None}


def final_metrics(results: dict, copy: int = 0) -> dict:
    """One copy's last-epoch loss and error on each split; its best validation error, lowest
    validation loss and their epochs; the first epoch of zero training error (None if never)."""
    history = results["history"]
    epochs = history["epoch"]
    metrics = {f"{split}_{m}": history[f"{split}_{m}"][-1][copy] for split in SPLITS for m in ("loss", "error")}
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
    """Print single_run_outcome's messages (the error and the warning to stderr, the summary to
    stdout); True if the run diverged."""
    error, warning, summary = single_run_outcome(results, name, advice)
    for problem in (error, warning):
        if problem:
            print(problem, file=sys.stderr)
    if summary:
        print(summary)
    return error is not None


def environment(device: torch.device) -> dict:
    """What the numbers were measured on."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": name,
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


@contextlib.contextmanager
def replaced_atomically(path: Path):
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename,
    on failure it is removed, so a kill leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; results are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    with replaced_atomically(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_json_atomic(path: Path, obj: dict) -> None:
    """Write JSON through a temporary file and a rename: a kill leaves the old file or the new one."""
    text = json.dumps(_json_safe(obj), separators=(",", ":"), allow_nan=False)
    _write_bytes_atomic(Path(path), text.encode())


def write_text_atomic(path: Path, text: str) -> None:
    _write_bytes_atomic(Path(path), text.encode())


def latex_macros(source: str, macros: dict) -> str:
    """A generated LaTeX file: a do-not-edit header naming its source, then one \\newcommand per entry."""
    lines = [f"% Generated by {source}; do not edit."]
    lines += [f"\\newcommand{{\\{name}}}{{{value}}}" for name, value in macros.items()]
    return "\n".join(lines) + "\n"


def latex_scientific(value: float, digits: int = 1) -> str:
    """A number in LaTeX math as m\\times 10^{e} (for the generated snippets)."""
    if value == 0:
        return "0"
    exponent = math.floor(math.log10(abs(value)))
    return f"{value / 10**exponent:.{digits}f}\\times 10^{{{exponent}}}"


def seconds_text(seconds: float) -> str:
    """A duration with three significant digits in fixed notation (0.00492, 0.135, 12.7, 1180),
    so that a GPU's milliseconds and a CPU's seconds both read sensibly."""
    if seconds <= 0:
        return "0"
    return f"{seconds:.{max(0, 2 - math.floor(math.log10(seconds)))}f}"


def differing_settings(config: dict, other: dict, keys: Sequence[str]) -> list[str]:
    """The settings among `keys` in which two runs' configs differ, as '--flag A vs B'."""
    return [f"--{key.replace('_', '-')} {config.get(key)} vs {other.get(key)}"
            for key in keys if config.get(key) != other.get(key)]


def read_results(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise UserError(f"No results file at {path}: run the script without --plot-only first.")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err}); rerun the script to rewrite it.") from None


# ----------------------------------------------------------------------------- command line


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def choice_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated, non-empty list of names from `choices`, in `choices`' order."""
    def parse(text: str) -> list[str]:
        names = {name.strip() for name in text.split(",") if name.strip()}
        if not names or names - set(choices):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(choices)}; got {text!r}")
        return [name for name in choices if name in names]
    return parse


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Where MNIST is, how it is split, and which device trains (and in what precision)."""
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR)),
        help=f"folder holding MNIST/raw/ (default: ${DATA_DIR_ENV} or %(default)s)",
    )
    parser.add_argument("--offline", action="store_true", help="never try to download MNIST")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the 8:2 train/validation split (default: %(default)s)")
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto",
        help="training device; auto picks cuda when a GPU is present (default: %(default)s)",
    )
    parser.add_argument(
        "--tf32", action=argparse.BooleanOptionalAction, default=True,
        help="on a GPU, let matrix products use TF32, as PyTorch already does for convolutions (float32 "
        "accumulation of 10-bit-mantissa products; faster on Ampere and newer GPUs); --no-tf32 keeps them "
        "in full float32. No effect on a CPU, whose runs record it as off (default: on)",
    )


def add_training_arguments(parser: argparse.ArgumentParser, single_run: bool = True) -> None:
    """Flags shared by the MNIST question scripts; their defaults are the assignment's settings.

    A sweep (single_run=False) sets its learning rates and seeds with flags of its own."""
    a = ASSIGNMENT
    parser.add_argument("--epochs", type=positive_int, default=a["epochs"], help="training epochs (default: %(default)s)")
    if single_run:
        parser.add_argument("--lr", type=positive_float, default=a["lr"], help="SGD learning rate (default: %(default)s)")
    parser.add_argument("--momentum", type=nonnegative_float, default=a["momentum"], help="SGD momentum (default: %(default)s)")
    parser.add_argument(
        "--batch-size", type=positive_int, default=a["batch_size"],
        help="mini-batch size; not fixed by the assignment (default: %(default)s)",
    )
    if single_run:
        parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation and batch order (default: %(default)s)")
    parser.add_argument(
        "--subset", type=positive_int, default=None, metavar="N",
        help="use only N training images and at most N validation and test images (a quick check)",
    )
    add_data_arguments(parser)
    parser.add_argument(
        "--output-dir", type=Path, default=None,
        help="where the results file and figures go (default: results/ and report/figures/ for the "
        "assignment's run, results/quick/ for a shortened one)",
    )
    parser.add_argument("--plot-only", action="store_true", help="redraw the figures from the saved results file")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--checkpoint-every", type=positive_int, default=10, metavar="EPOCHS",
        help="save the training state every EPOCHS epochs, at the end and on Ctrl-C (default: %(default)s)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from the saved state of a stopped run")


# Flags that change how a run is shown or saved, not what it computes: a resumed run may differ in them.
RUN_ONLY_FLAGS = {
    "plot_only", "no_progress", "checkpoint_every", "resume", "output_dir", "data_dir", "offline", "device", "mlp_results",
}


def is_shortened(args: argparse.Namespace) -> bool:
    """True when the run is not the assignment's full run (fewer epochs or a subset)."""
    return args.epochs != ASSIGNMENT["epochs"] or args.subset is not None


@dataclass
class OutputPaths:
    results: Path
    figures: Path
    generated: Path  # LaTeX snippets the report inputs

    def ensure_writable(self) -> None:
        for folder in (self.results, self.figures, self.generated):
            ensure_writable(folder)


def output_paths(args: argparse.Namespace, shortened: bool | None = None) -> OutputPaths:
    """Where this run writes (--output-dir if given); a shortened run (by default: is_shortened)
    never touches the real results, figures or snippets."""
    if args.output_dir is not None:
        root = args.output_dir
    elif is_shortened(args) if shortened is None else shortened:
        root = QUICK_DIR
    else:
        return OutputPaths(RESULTS_DIR, FIGURES_DIR, GENERATED_DIR)
    return OutputPaths(root, root / "figures", root / "generated")


def ensure_writable(folder: Path) -> None:
    """Fail before training, not after it, when results cannot be saved."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise UserError(f"Cannot write to {folder}: {err.strerror or err}.") from None


def select_device(choice: str, tf32: bool = False) -> torch.device:
    """The training device; on CUDA, matrix products in TF32 if asked (convolutions are by PyTorch's default)."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but PyTorch sees no CUDA GPU; use --device cpu or auto.")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    return torch.device(choice)


def training_device(args: argparse.Namespace) -> torch.device:
    """The device --device names, with TF32 matrix products as --tf32 asks. args.tf32 becomes
    what the run really does (only CUDA has TF32), so that the results record that."""
    device = select_device(args.device, args.tf32)
    args.tf32 = args.tf32 and device.type == "cuda"
    return device


def run_main(main: Callable[[], int | None]) -> None:
    """Run a script's main(): user errors become one message and exit status 1, not a traceback."""
    try:
        sys.exit(main())
    except RunInterrupted as err:
        print(f"\n{err}", file=sys.stderr)
        sys.exit(130)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
