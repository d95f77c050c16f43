"""The core of the MNIST questions (Q5.2, Q5.3, Q5.5): MNIST and its 8:2 split; `StackedCopies`, K copies
of a network run as one batched model; `StackedTrainer`, SGD on all copies at once, each flooded at its own
level; and `fit`, the loop: every split evaluated at epoch 0 and after every epoch, divergence detection,
checkpoints, exact resume, a clean stop on Ctrl-C, SIGTERM and SIGHUP."""
from __future__ import annotations

import contextlib
import copy
import gzip
import hashlib
import math
import signal
import statistics
import struct
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

# The assignment's settings (Q5.2), shared by Q5.3 and Q5.5; the batch size is our choice.
ASSIGNMENT = dict(epochs=500, lr=0.1, momentum=0.9, batch_size=128)
TRAIN_FRACTION = 0.8  # the 8:2 split
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the 60,000 training pixels scaled to [0, 1]
NUM_CLASSES = 10
IMAGE_SIDE = 28
# file name -> IDX magic number: 0x0803 is "unsigned byte, 3 dimensions", 0x0801 "1 dimension"
MNIST_FILES = {"train-images-idx3-ubyte": 0x0803, "train-labels-idx1-ubyte": 0x0801,
               "t10k-images-idx3-ubyte": 0x0803, "t10k-labels-idx1-ubyte": 0x0801}
# the published MD5 digests of the original files, uncompressed (a .gz's own bytes depend on the compressor)
MNIST_MD5 = {"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
             "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
             "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
             "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"}


class UserError(Exception):
    """A problem the user can fix (missing data, a bad flag); reported without a traceback."""


class DataError(UserError):
    """The MNIST files are missing, corrupt or inconsistent."""


class RunInterrupted(UserError):
    """Ctrl-C, SIGTERM or SIGHUP: the run stopped and saved the state of its last finished epoch."""


class EpochAbandoned(BaseException):  # a BaseException, as KeyboardInterrupt is: no `except Exception` swallows it
    """Raised by a stop signal inside an epoch's computation, whose work is then given up."""


def mean_std(values: list[float | None]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value); NaN if any copy diverged (None)."""
    if any(v is None for v in values):
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


# ----------------------------------------------------------------------------- data


def read_idx(raw_dir: Path, name: str, magic: int, original_only: bool = False) -> torch.Tensor:
    """An unsigned-byte IDX file, or else its .gz read in place, as a uint8 tensor; header and size checked.
    A file that is not the original MNIST file is refused if `original_only`, else named in a warning."""
    path = raw_dir / name if (raw_dir / name).exists() else raw_dir / f"{name}.gz"

    def damaged(problem: str) -> DataError:
        return DataError(f"{path} {problem}. Replace it with the original file.")

    if not path.is_file():  # a pipe would never end, a device never be MNIST
        raise damaged("is not a regular file (a folder, a pipe or a device)")
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:  # BadGzipFile is an OSError: caught here first
        raise damaged(f"is not a valid gzip file ({err})") from None
    except OSError as err:  # an unreadable file
        raise damaged(f"cannot be read ({err.strerror or err})") from None
    ndim, found = magic & 0xFF, struct.unpack(">I", data[:4])[0] if len(data) >= 4 else None
    if found != magic:
        found = "nothing" if found is None else f"0x{found:08x}"
        raise damaged(f"is not an MNIST IDX file: expected magic number 0x{magic:08x}, found {found}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise damaged(f"is truncated: its header is incomplete ({len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + math.prod(shape)
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise damaged(f"is {what}: {len(data)} bytes, the header {tuple(shape)} implies {expected}")
    if shape[0] == 0:
        raise damaged(f"holds no {'images' if ndim == 3 else 'labels'}")
    if ndim == 3 and shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise damaged(f"holds images of {shape[1]}x{shape[2]} pixels, not 28x28")
    if hashlib.md5(data, usedforsecurity=False).hexdigest() != MNIST_MD5[name]:
        if original_only:
            raise DataError(f"{path} is not the original MNIST file (its MD5 differs from the published one), and "
                            "the committed results come only from the original data: put the original files there, "
                            "or write this run elsewhere with --output-dir results/runs/<a name>.")
        print(f"warning: {path} is not the original MNIST file (its MD5 differs from the published one): the "
              "results will not be comparable with the report's", file=sys.stderr)
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).view(shape)


def load_mnist(data_dir: str | Path, download: bool = True,
               original_only: bool = False) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """uint8 images (N, 28, 28) and int64 labels (N,) of "train" and "test" from
    `<data_dir>/MNIST/raw/` (each file as it is or gzip-compressed), else from torchvision's download."""
    raw_dir = Path(data_dir) / "MNIST" / "raw"

    def missing() -> list[str]:
        return [name for name in MNIST_FILES if not (raw_dir / name).exists() and not (raw_dir / f"{name}.gz").exists()]

    tried = "Download was not attempted (--offline). "
    if missing() and download:
        import torchvision  # its import takes a second; only a download needs it

        try:
            for train in (True, False):
                torchvision.datasets.MNIST(data_dir, train=train, download=True)
        except Exception as err:  # any network or disk failure ends in the message below
            tried = f"Downloading them failed ({type(err).__name__}: {err}). "
    if missing():
        raise DataError(
            f"MNIST was not found in {raw_dir} (missing: {', '.join(missing())}). That folder must hold the four "
            f"files {', '.join(MNIST_FILES)}, as they are or gzip-compressed with a .gz suffix. {tried}Copy the "
            "files there, or point --data-dir (or $MNIST_DATA_DIR) at the folder that contains MNIST/raw/.")
    arrays = {name: read_idx(raw_dir, name, magic, original_only) for name, magic in MNIST_FILES.items()}
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = arrays[f"{prefix}-images-idx3-ubyte"], arrays[f"{prefix}-labels-idx1-ubyte"].long()
        labels_path = raw_dir / f"{prefix}-labels-idx1-ubyte"
        if len(images) != len(labels):
            raise DataError(f"{raw_dir / (prefix + '-images-idx3-ubyte')} holds {len(images)} images but "
                            f"{labels_path} holds {len(labels)} labels.")
        if labels.max() >= NUM_CLASSES:
            raise DataError(f"{labels_path} holds labels outside 0-9.")
        splits[split] = (images, labels)
    return splits


def split_indices(n: int, split_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 8:2 train/validation split of n images, from its own seeded generator."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    n_train = round(n * TRAIN_FRACTION)
    return order[:n_train], order[n_train:]


@dataclass
class Split:
    """Normalized images (N, 1, 28, 28) float32 and labels (N,) int64, on the training device."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def prepare_splits(data_dir: str | Path, device: torch.device, split_seed: int = 0, subset: int | None = None,
                   download: bool = True, original_only: bool = False) -> dict[str, Split]:
    """Train, validation and test splits, normalized, on `device`; `subset` keeps the first
    `subset` training images and at most as many validation and test images; `original_only`: see read_idx."""
    mnist = load_mnist(data_dir, download=download, original_only=original_only)
    images, labels = mnist["train"]
    train_idx, val_idx = split_indices(len(labels), split_seed)
    parts = {"train": (images[train_idx], labels[train_idx]), "val": (images[val_idx], labels[val_idx]),
             "test": mnist["test"]}
    if subset is not None:
        if not 1 <= subset <= len(train_idx):
            raise UserError(f"--subset must be between 1 and {len(train_idx)} (the training split), got {subset}.")
        parts = {name: (x[:subset], y[:subset]) for name, (x, y) in parts.items()}
    return {name: Split(((x.float() / 255.0 - MNIST_MEAN) / MNIST_STD).unsqueeze(1).to(device), y.to(device))
            for name, (x, y) in parts.items()}


# ----------------------------------------------------------------------------- models


def mlp(hidden: int = 500) -> nn.Sequential:
    """The Q5.2 network: 784 -> 500 ReLU -> 10."""
    return nn.Sequential(nn.Flatten(), nn.Linear(IMAGE_SIDE * IMAGE_SIDE, hidden), nn.ReLU(),
                         nn.Linear(hidden, NUM_CLASSES))


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def seeded_copies(build: Callable[[], nn.Module], init_seeds: Sequence[int]) -> list[nn.Module]:
    """One freshly built module per seed, each initialised as PyTorch does after manual_seed(seed)."""
    copies = []
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
        for seed in init_seeds:
            torch.manual_seed(seed)
            copies.append(build())
    return copies


class StackedCopies(nn.Module):
    """K independent copies of one nn.Sequential of Flatten, Linear, Conv2d, ReLU and MaxPool2d
    layers (the MLP and the CNN), run as one batched model: each parameter stacked along a new
    leading dimension K, the input batch (B, ...) shared, the output (K, B, classes). A first
    Linear is one matrix product against every copy's weights, later ones a batched matmul over
    (K, B, F); convolutions run grouped, the copies side by side along the channels (B, K*C, H, W).
    Explicit batched layers rather than torch.vmap, whose dispatch overhead dominates on the CPU."""

    LAYERS = (nn.Flatten, nn.Linear, nn.Conv2d, nn.ReLU, nn.MaxPool2d)

    def __init__(self, copies: Sequence[nn.Sequential]):
        super().__init__()
        for layer in copies[0]:
            if type(layer) not in self.LAYERS:
                raise TypeError(f"StackedCopies cannot stack {layer}")
        names = [name for name, _ in copies[0].named_parameters()]
        self.stacked = nn.ParameterList(
            [torch.stack([dict(m.named_parameters())[name].detach() for m in copies]) for name in names])
        # the layers' settings (stride, padding, ...); their own weights are never used
        self.layers = list(copy.deepcopy(copies[0]).to("meta"))
        self.copies = len(copies)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.copies
        parameters = iter(self.stacked)
        shared = True  # x is still the input batch, the same for every copy
        for layer in self.layers:
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                weight, bias = next(parameters), next(parameters) if layer.bias is not None else None
            if isinstance(layer, nn.Linear):
                if shared:  # (B, F) -> (K, B, out)
                    x = F.linear(x, weight.flatten(0, 1), None if bias is None else bias.flatten())
                    x = x.view(x.shape[0], k, -1).transpose(0, 1)
                else:  # (K, B, F) -> (K, B, out)
                    x = torch.bmm(x, weight.transpose(1, 2))
                    x = x if bias is None else x + bias.unsqueeze(1)
            elif isinstance(layer, nn.Conv2d):
                weight, bias = weight.flatten(0, 1), None if bias is None else bias.flatten()
                if shared and x.device.type == "cpu":
                    # oneDNN is slow on a one-channel NCHW image; with the first weight channels-last
                    # (`.to` restrides it where `.contiguous` would not) every later layer follows
                    weight = weight.to(memory_format=torch.channels_last)
                x = F.conv2d(x, weight, bias, layer.stride, layer.padding, layer.dilation, groups=1 if shared else k)
            elif isinstance(layer, nn.Flatten) and not shared:  # (B, K*C, H, W) -> (K, B, C*H*W)
                x = x.reshape(x.shape[0], k, -1).transpose(0, 1)
            else:  # Flatten of the input, ReLU and pooling act on every copy and channel alike
                x = layer(x)
            shared = shared and not isinstance(layer, (nn.Linear, nn.Conv2d))
        return x


def per_copy_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of (K, B, C) logits against shared (B,) labels, (K,) by mean or sum over the batch."""
    copies, batch, classes = logits.shape
    # expand + reshape is a view for one copy (no per-step copy of the labels), a copy otherwise
    losses = F.cross_entropy(logits.reshape(-1, classes), labels.expand(copies, batch).reshape(-1), reduction="none")
    return losses.view(copies, batch).mean(1) if reduction == "mean" else losses.view(copies, batch).sum(1)


def flooded(loss: torch.Tensor, flood_level: torch.Tensor) -> torch.Tensor:
    """The flooding objective |R - b| + b (Ishida et al., 2020), elementwise per copy."""
    return (loss - flood_level).abs() + flood_level


@torch.no_grad()
def logits_in_chunks(model: StackedCopies, split: Split, batch_size: int):
    """Yield (logits (K, b, C), labels (b,)) over a split, without gradients."""
    for start in range(0, len(split), batch_size):
        yield model(split.images[start : start + batch_size]).float(), split.labels[start : start + batch_size]


EVALUATED = ("loss", "error", "confidence_right", "confidence_wrong")  # evaluate's metrics
BATCH_STATISTICS = ("batch_loss", "flood_active_fraction")  # train_epoch's, recorded from epoch 1 on


def evaluate(model: StackedCopies, split: Split, batch_size: int) -> dict[str, torch.Tensor]:
    """Per copy, (K,) device tensors: mean cross-entropy, error (% misclassified), and the mean confidence
    (largest softmax probability) of the correctly and of the wrongly classified images (NaN if none)."""
    sums = {key: torch.zeros(model.copies, device=split.labels.device) for key in ("loss", "wrong", "right_conf", "wrong_conf")}
    for logits, labels in logits_in_chunks(model, split, batch_size):
        confidence, predicted = logits.softmax(-1).max(-1)
        wrong = predicted != labels
        sums["loss"] += per_copy_cross_entropy(logits, labels, reduction="sum")
        sums["wrong"] += wrong.sum(1)
        sums["right_conf"] += (confidence * ~wrong).sum(1)
        sums["wrong_conf"] += (confidence * wrong).sum(1)
    right = len(split) - sums["wrong"]
    return dict(zip(EVALUATED, (sums["loss"] / len(split), 100.0 * sums["wrong"] / len(split),
                                sums["right_conf"] / right, sums["wrong_conf"] / sums["wrong"])))


def predict(model: StackedCopies, split: Split, batch_size: int = 1000) -> torch.Tensor:
    """Predicted class of every copy for every image of a split: (K, N) int64."""
    return torch.cat([logits.argmax(-1) for logits, _ in logits_in_chunks(model, split, batch_size)], dim=1)


# ----------------------------------------------------------------------------- training


class StackedTrainer:
    """SGD with momentum on all copies of a StackedCopies at once. Each step draws one mini-batch shared by
    every copy, floods each copy's mean cross-entropy at its own level and sums the K results before backward:
    the sum keeps each copy's gradient its own, and momentum SGD is elementwise, so one optimizer is K
    independent ones. Batches come from a per-epoch permutation made on the device; a last partial batch is
    dropped so every step has one shape (48,000 = 375 x 128: nothing at the defaults). On CUDA the step
    (gather, forward, backward, update, statistics) is one CUDA graph, replayed."""

    def __init__(self, model: StackedCopies, splits: dict[str, Split], *, lr: float, momentum: float,
                 batch_size: int, seed: int, flood_levels: Sequence[float] | None = None,
                 use_cuda_graph: bool | None = None):
        self.model, self.splits, self.train = model, splits, splits["train"]
        self.evaluated = [f"{name}_{key}" for name in splits for key in EVALUATED] + ["weight_norm"]  # evaluate_all's
        self.device = self.train.labels.device
        if batch_size > len(self.train):
            raise UserError(f"--batch-size {batch_size} exceeds the {len(self.train)} training images.")
        self.batch_size = batch_size
        self.batches_per_epoch = len(self.train) // batch_size
        levels = [0.0] * model.copies if flood_levels is None else list(flood_levels)
        self.flood_levels = torch.tensor(levels, dtype=torch.float32, device=self.device)
        # cross-entropy is never negative, so with every level 0 the objective |R - 0| + 0 is R
        self.flooding = any(level != 0 for level in levels)
        # a GPU wants large evaluation chunks; on a CPU small ones keep the activations in cache
        self.eval_batch_size = 512 if self.device.type == "cpu" else max(1000, 10_000 // model.copies)
        # On CUDA one fused kernel updates every parameter; the CPU keeps the plain update,
        # whose rounding the committed CPU runs were made with.
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, fused=self.device.type == "cuda")
        self.batch_order = torch.Generator(device=self.device).manual_seed(seed)
        self.batch_index = torch.zeros(batch_size, dtype=torch.long, device=self.device)
        # per-epoch sums over mini-batches, kept on the device (no host sync per step)
        self.batch_loss_sum = torch.zeros(model.copies, device=self.device)
        self.batches_below_flood = torch.zeros(model.copies, device=self.device)
        use_cuda_graph = self.device.type == "cuda" if use_cuda_graph is None else use_cuda_graph
        self.graph = self._capture() if use_cuda_graph else None

    def _step(self) -> None:
        images, labels = self.train.images[self.batch_index], self.train.labels[self.batch_index]
        losses = per_copy_cross_entropy(self.model(images), labels)
        self.optimizer.zero_grad(set_to_none=True)
        (flooded(losses, self.flood_levels) if self.flooding else losses).sum().backward()
        self.optimizer.step()
        losses = losses.detach()
        self.batch_loss_sum += losses
        if self.flooding:
            self.batches_below_flood += losses < self.flood_levels

    def _capture(self) -> torch.cuda.CUDAGraph:
        """Capture one step as a CUDA graph, leaving the model's state as it was: SGD makes its
        momentum buffers on the first step and the allocator must settle, so a few warm-up steps
        run on a side stream first, then the saved state comes back (a buffer that did not exist
        becomes zero, and momentum * 0 + grad is SGD's first step)."""
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
        """A copy of the parameters and momentum buffers, on the training device (a copy made at
        every epoch's end costs no transfer), and of the random generators."""
        params = list(self.model.parameters())
        momentum = [self.optimizer.state[p].get("momentum_buffer") for p in params]
        return {
            "parameters": [p.detach().clone() for p in params],
            "momentum": [None if m is None else m.clone() for m in momentum],
            "batch_order": self.batch_order.get_state(),
            # training draws only from batch_order; the global generators are kept so that code
            # run after a resumed training sees what it would have seen
            "cpu_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        """Restore a state_dict in place (a captured CUDA graph keeps pointing at the same memory)."""
        for p, saved, saved_momentum in zip(self.model.parameters(), state["parameters"], state["momentum"]):
            p.copy_(saved)
            buffer = self.optimizer.state[p].get("momentum_buffer")
            if buffer is not None:  # kept in place; zero where none was saved (see _capture)
                buffer.zero_() if saved_momentum is None else buffer.copy_(saved_momentum)
            elif saved_momentum is not None:
                self.optimizer.state[p]["momentum_buffer"] = saved_momentum.to(p.device).clone()
        self.batch_order.set_state(state["batch_order"])
        torch.set_rng_state(state["cpu_rng"])
        if state["cuda_rng"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)

    def train_epoch(self) -> dict[str, list[float]]:
        """One pass over the training split: per copy, the mean mini-batch loss and the fraction
        of mini-batches whose loss was below the flood level."""
        self.batch_loss_sum.zero_()
        self.batches_below_flood.zero_()
        order = torch.randperm(len(self.train), device=self.device, generator=self.batch_order)
        for i in range(self.batches_per_epoch):
            self.batch_index.copy_(order[i * self.batch_size : (i + 1) * self.batch_size])
            self.graph.replay() if self.graph is not None else self._step()
        n = self.batches_per_epoch
        return dict(zip(BATCH_STATISTICS, ((self.batch_loss_sum / n).tolist(), (self.batches_below_flood / n).tolist())))

    def evaluate_all(self) -> dict[str, list[float]]:
        """evaluate's metrics of every copy on every split, and each copy's weight norm (the L2 norm of all
        its parameters), with one host transfer."""
        metrics = [value for split in self.splits.values()
                   for value in evaluate(self.model, split, self.eval_batch_size).values()]
        with torch.no_grad():
            metrics.append(sum(p.flatten(1).square().sum(1) for p in self.model.parameters()).sqrt())
        return dict(zip(self.evaluated, torch.stack(metrics).cpu().tolist()))


# the signals that stop a run cleanly; SIGHUP (a closed terminal, a dropped ssh) exists only on Unix, SIGBREAK
# (Ctrl-Break) only on Windows
STOP_SIGNALS = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK") if hasattr(signal, name)]


class StopRequests:
    """The stop signals a run receives. The first Ctrl-C asks to stop after the current epoch. SIGTERM
    (a scheduler's, `timeout`'s, a shutdown's: seconds before a kill), SIGHUP, Ctrl-Break or a second Ctrl-C stop
    at once: the epoch in progress is given up if it is still computing (see `abandonable`), and the
    last finished epoch is what is saved. One more signal then stops without saving."""

    def __init__(self):
        self.after_epoch = self.now = self.computing = False

    def handle(self, signum, frame) -> None:
        if self.now:
            raise KeyboardInterrupt
        if signum == signal.SIGINT and not self.after_epoch:
            self.after_epoch = True
            print("\nstopping after this epoch to save the state (Ctrl-C again to stop at once, saving the epoch before)",
                  file=sys.stderr)
            return
        self.after_epoch = self.now = True
        print(f"\n{signal.Signals(signum).name}: stopping now, saving the state of the last finished epoch",
              file=sys.stderr)
        if self.computing:
            raise EpochAbandoned

    @contextlib.contextmanager
    def abandonable(self):
        """Computation that a stop may cut short, whose results are then thrown away: it changes
        no record, only the trainer's state, which is saved from the copy made before it."""
        if self.now:
            raise EpochAbandoned
        self.computing = True
        try:
            yield
        finally:
            self.computing = False


def fit(trainer: StackedTrainer, epochs: int, progress: bool = True, desc: str = "train",
        checkpoint=None) -> dict:
    """Train for `epochs`, evaluating at epoch 0 and after every epoch. Returns the history (each key a list
    over epochs 0..E of lists over copies; the mini-batch statistics are None at epoch 0), the epoch at which
    each copy's training loss became non-finite (None if never) and timings. A diverged copy trains on
    harmlessly (its values are NaN); the run stops early only when every copy has diverged. With a checkpoint
    (runs.Checkpoint) the state is saved every `checkpoint.every` epochs, at the end and on a stop signal (see
    StopRequests), and a resumed run continues exactly where the saved one stopped."""
    copies = trainer.model.copies
    if checkpoint and checkpoint.resume:
        record = checkpoint.restore(trainer, epochs)
    else:
        history = {"epoch": [0], **{k: [v] for k, v in trainer.evaluate_all().items()},
                   **{k: [[None] * copies] for k in BATCH_STATISTICS}}
        record = {"history": history, "diverged_at_epoch": [None] * copies, "train": 0.0, "eval": 0.0, "total": 0.0}
    history, diverged_at = record["history"], record["diverged_at_epoch"]
    first_epoch = history["epoch"][-1] + 1
    start = time.perf_counter() - record["total"]
    stops = StopRequests()
    finished = trainer.state_dict() if checkpoint else None  # the state after the last finished epoch
    with contextlib.ExitStack() as stack:
        if checkpoint:
            for sig in STOP_SIGNALS:  # the handler before ours comes back on the way out
                stack.callback(signal.signal, sig, signal.signal(sig, stops.handle))
        bar = stack.enter_context(tqdm(range(first_epoch, epochs + 1), desc=desc, unit="epoch", disable=not progress,
                                       dynamic_ncols=True, initial=first_epoch - 1, total=epochs))
        for epoch in bar:
            if all(d is not None for d in diverged_at):
                break
            try:
                with stops.abandonable():
                    t0 = time.perf_counter()
                    batch_stats = trainer.train_epoch()  # .tolist() inside waits for the epoch's kernels
                    t1 = time.perf_counter()
                    metrics = trainer.evaluate_all()
            except EpochAbandoned:
                checkpoint.save(finished, record, epochs)
                raise RunInterrupted(f"interrupted during epoch {epoch}; the state after epoch {epoch - 1} is saved in "
                                     f"{checkpoint.path}. Run the same command with --resume to continue.") from None
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
                bar.set_postfix(train_err=f"{min(metrics['train_error'][k] for k in finite):.3f}%",
                                val_err=f"{min(metrics['val_error'][k] for k in finite):.3f}%")
            last = epoch == epochs or not finite
            if checkpoint:
                finished = trainer.state_dict()
                if epoch % checkpoint.every == 0 or last or stops.after_epoch:
                    checkpoint.save(finished, record, epochs)
            if stops.after_epoch:  # even after the last epoch: a run of several parts must not go on to the next
                raise RunInterrupted(f"interrupted after epoch {epoch}; the state is saved in {checkpoint.path}. "
                                     "Run the same command with --resume to continue.")
    done = max(1, history["epoch"][-1])
    return {"history": history, "diverged_at_epoch": diverged_at, "epochs_completed": history["epoch"][-1],
            "seconds": {"total": time.perf_counter() - start, "train": record["train"], "eval": record["eval"],
                        "train_per_epoch": record["train"] / done, "eval_per_epoch": record["eval"] / done}}

