"""A NumPy reproduction of the Neural Network Playground (playground.tensorflow.org), for Q1.

The page's data generators, seven input features, network (tanh output, loss 0.5 (out - y)^2,
weights U(-0.5, 0.5), biases 0.1) and update rule (the batch-mean gradient step, then the L1/L2
step on the weight as it was before it, biases never regularized, an L1 weight that crosses zero
becomes a dead link) follow the page's source, and so do its random numbers (seedrandom's ARC4 and
the page's order of draws): seed s here is `seed=s` in the page's address, with the same points, the
same initial weights and the same losses up to float64 rounding, which long training can amplify
(tests/test_page_oracle.py checks them against numbers recorded from the page's own code).
"""
from __future__ import annotations

import concurrent.futures
import copy
import functools
import itertools
import math
import os
from dataclasses import dataclass, field

import numpy as np

DATASETS = ("circle", "xor", "gauss", "spiral")
FEATURES = ("x1", "x2", "x1^2", "x2^2", "x1*x2", "sin(x1)", "sin(x2)")
# name -> (activation, its derivative written with the input z and the output a)
ACTIVATIONS = {
    "relu": (lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(z.dtype)),
    "tanh": (np.tanh, lambda z, a: 1 - a * a),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z, a: a * (1 - a)),
    "linear": (lambda z: z, lambda z, a: np.ones_like(z)),
}
REGULARIZATIONS = ("none", "L1", "L2")
POINTS = 500  # the page's classification datasets
MAX_LAYERS, MAX_NEURONS = 6, 8
BIAS_INIT = 0.1
# float64, as the page computes (JavaScript numbers): long training amplifies rounding differences
DTYPE = np.float64


# ----------------------------------------------------------------------------- the page's random numbers
class PageRandom:
    """Math.random after the page's Math.seedrandom(seed): seedrandom 2.4's ARC4 generator, step for step (its
    key from the seed string's UTF-16 units, 256 outputs discarded, each double from 6 or more bytes)."""

    def __init__(self, seed: str):
        units = seed.encode("utf-16-le")
        key, smear = [], 0
        for j in range(len(units) // 2):  # seedrandom's mixkey
            unit, index = units[2 * j] | units[2 * j + 1] << 8, j & 255
            if index < len(key):
                smear ^= key[index] * 19
            key[index:index + 1] = [255 & (smear + unit)]
        key = key or [0]
        self.s, self.i, self.j = list(range(256)), 0, 0
        j = 0
        for i in range(256):
            j = 255 & (j + key[i % len(key)] + self.s[i])
            self.s[i], self.s[j] = self.s[j], self.s[i]
        self.bytes(256)

    def bytes(self, count: int) -> int:
        """The next `count` ARC4 outputs as one big-endian number."""
        s, i, j, r = self.s, self.i, self.j, 0
        for _ in range(count):
            i = 255 & (i + 1)
            t = s[i]
            j = 255 & (j + t)
            s[i], s[j] = s[j], t
            r = r * 256 + s[255 & (s[i] + t)]
        self.i, self.j = i, j
        return r

    def __call__(self) -> float:
        """A double in [0, 1), computed in the same float operations as seedrandom's prng."""
        n, d, x = float(self.bytes(6)), float(2 ** 48), 0
        while n < 2.0 ** 52:
            n, d, x = (n + x) * 256, d * 256, self.bytes(1)
        while n >= 2.0 ** 53:
            n, d, x = n / 2, d / 2, x >> 1
        return (n + x) / d


# ----------------------------------------------------------------------------- data
def generate(name: str, noise: float, random: PageRandom) -> list[tuple[float, float, float]]:
    """The page's generator for a classification dataset (src/dataset.ts): 500 points (x, y, label), drawn from
    `random` in the page's order and written with its float operations; noise in 0..0.5."""
    uniform = lambda a, b: random() * (b - a) + a
    half = POINTS / 2
    points = []
    if name == "circle":
        for low, high in ((0, 5 * 0.5), (5 * 0.7, 5)):  # label +1 inside, then -1 outside
            for _ in range(POINTS // 2):
                r, angle = uniform(low, high), uniform(0, 2 * math.pi)
                x, y = r * math.sin(angle), r * math.cos(angle)
                # noise flips labels; the stored point is the clean one
                noisy_x, noisy_y = x + uniform(-5, 5) * noise, y + uniform(-5, 5) * noise
                points.append((x, y, 1.0 if math.sqrt(noisy_x * noisy_x + noisy_y * noisy_y) < 5 * 0.5 else -1.0))
    elif name == "xor":
        away = lambda v: v + (0.3 if v > 0 else -0.3)  # pushed 0.3 away from the axes
        for _ in range(POINTS):
            x, y = away(uniform(-5, 5)), away(uniform(-5, 5))
            points.append((x, y, 1.0 if (x + uniform(-5, 5) * noise) * (y + uniform(-5, 5) * noise) >= 0 else -1.0))
    elif name == "gauss":
        t = noise / 0.5  # d3's linear scale from [0, 0.5] to variances [0.5, 4]
        deviation = math.sqrt(0.5 * (1 - t) + 4 * t)

        def normal(mean: float) -> float:  # the page's polar Box-Muller
            while True:
                v1, v2 = 2 * random() - 1, 2 * random() - 1
                s = v1 * v1 + v2 * v2
                if s <= 1:
                    return mean + deviation * (math.sqrt(-2 * math.log(s) / s) * v1)
        for centre, label in ((2, 1.0), (-2, -1.0)):
            points += [(normal(centre), normal(centre), label) for _ in range(POINTS // 2)]
    elif name == "spiral":
        for delta, label in ((0.0, 1.0), (math.pi, -1.0)):
            for i in range(POINTS // 2):
                r, t = i / half * 5, 1.75 * i / half * 2 * math.pi + delta
                x = r * math.sin(t) + uniform(-1, 1) * noise
                points.append((x, r * math.cos(t) + uniform(-1, 1) * noise, label))
    return points


@functools.lru_cache(maxsize=1024)
def page_draws(name: str, noise: int, seed: int) -> tuple[np.ndarray, np.ndarray, PageRandom]:
    """What the page draws from Math.seedrandom(String(seed)) at noise 0..50 (its slider): the points (N, 2) and
    labels +1 / -1, shuffled as it holds them, and the generator after them, which draws the weights next.
    Cached, so read-only."""
    random = PageRandom(str(seed))
    points = generate(name, noise / 100, random)
    for counter in range(len(points), 0, -1):  # the page's Fisher-Yates shuffle
        index = math.floor(random() * counter)
        points[counter - 1], points[index] = points[index], points[counter - 1]
    data = np.array(points, dtype=DTYPE)
    data.flags.writeable = False
    return data[:, :2], data[:, 2], random


def train_test_split(points: np.ndarray, labels: np.ndarray, train_percent: int):
    """The page's split of page_draws's points: the first train_percent % train, the rest test."""
    train = len(labels) * train_percent // 100
    return points[:train], labels[:train], points[train:], labels[train:]


def feature_matrix(points: np.ndarray) -> np.ndarray:
    """All seven features of the page, in FEATURES order: (..., 2) -> (..., 7)."""
    x, y = points[..., 0], points[..., 1]
    return np.stack([x, y, x * x, y * y, x * y, np.sin(x), np.sin(y)], -1)


# ----------------------------------------------------------------------------- configurations
@dataclass(frozen=True)
class Config:
    """One network on one dataset, with the page's controls."""

    dataset: str = "spiral"
    noise: int = 0
    train_percent: int = 50
    features: tuple[str, ...] = ("x1", "x2")
    hidden: tuple[int, ...] = (4, 2)
    activation: str = "tanh"
    lr: float = 0.03
    regularization: str = "none"
    reg_rate: float = 0.0
    batch_size: int = 10
    seed: int = 0

    def __post_init__(self):
        if not (self.dataset in DATASETS and self.features and set(self.features) <= set(FEATURES)
                and len(self.hidden) <= MAX_LAYERS and all(1 <= n <= MAX_NEURONS for n in self.hidden)
                and self.activation in ACTIVATIONS and self.regularization in REGULARIZATIONS
                and 1 <= self.batch_size <= 30 and 10 <= self.train_percent <= 90):
            raise ValueError(f"not a configuration the page offers: {self}")
        # inputs always in the page's order, so weight rows line up with FEATURES; lists (from JSON) as tuples
        object.__setattr__(self, "features", tuple(f for f in FEATURES if f in self.features))
        object.__setattr__(self, "hidden", tuple(self.hidden))

    def describe(self) -> str:
        reg = "no regularization" if self.regularization == "none" else f"{self.regularization} {self.reg_rate:g}"
        layers = "-".join(map(str, self.hidden)) or "none"
        return (f"{self.dataset}, noise {self.noise}, features {', '.join(self.features)}; hidden {layers}, "
                f"{self.activation}; lr {self.lr:g}, {reg}, batch {self.batch_size}")

    def parameter_count(self) -> int:
        sizes = [len(self.features), *self.hidden, 1]
        return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def real_block(config: Config, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a configuration's real weights within a padded layer."""
    rows = [FEATURES.index(f) for f in config.features] if layer == 0 else range(config.hidden[layer - 1])
    cols = range(config.hidden[layer]) if layer < len(config.hidden) else range(1)
    return np.asarray(rows), np.asarray(cols)


# ----------------------------------------------------------------------------- training
@dataclass
class Run:
    """Training history and final network of one configuration."""

    config: Config
    train_loss: list[float]  # epochs 0..E
    test_loss: list[float]
    weights: list[np.ndarray] = field(repr=False)  # per layer (fan_in, fan_out), unpadded
    biases: list[np.ndarray] = field(repr=False)  # per layer (fan_out,)
    dead: list[np.ndarray] = field(repr=False)  # L1 dead links (and pruned ones), per layer


def batch_schedule(n_train: int, batch_size: int, epochs: int) -> list[list[list[int]]]:
    """Per epoch, the batches of point indices the page updates on: it walks the training points in a fixed
    order and updates after every batch_size-th point of the epoch, so the points after an epoch's last update
    join the first update of the next one."""
    schedule, pending = [], []
    for _ in range(epochs):
        schedule.append([])
        for i in range(n_train):
            pending.append(i)
            if (i + 1) % batch_size == 0:
                schedule[-1].append(pending)
                pending = []
    return schedule


def initial_network(config: Config) -> Run:
    """The page's initial network for a configuration: weights Math.random() - 0.5 from the seed's generator after
    the data (src/nn.ts buildNetwork: for each neuron, its links from each one below), biases BIAS_INIT."""
    random = copy.deepcopy(page_draws(config.dataset, config.noise, config.seed)[2])
    blocks = [real_block(config, layer) for layer in range(len(config.hidden) + 1)]
    weights = [np.array([[random() - 0.5 for _ in rows] for _ in cols], dtype=DTYPE).T for rows, cols in blocks]
    return Run(config, [], [], weights, [np.full(w.shape[1], BIAS_INIT) for w in weights],
               [np.zeros(w.shape, dtype=bool) for w in weights])


class StackedPlayground:
    """S networks of one depth and activation, padded to 7 inputs and 8 neurons per layer with masks that keep
    the padding at exactly zero, so that each copy computes what its own network would. NumPy with a
    hand-written backward pass (checked against torch.autograd): the networks are tiny and updated every
    few points, so per-operation overhead costs the time, and NumPy's is a fraction of autograd's."""

    def __init__(self, configs: list[Config], start: list[Run] | None = None):
        """Weights drawn from each configuration's seed, or copied from `start` (one Run per configuration)."""
        self.configs = configs
        self.activation, self.activation_derivative = ACTIVATIONS[configs[0].activation]
        widths = [len(FEATURES)] + [MAX_NEURONS] * len(configs[0].hidden) + [1]
        s = len(configs)
        self.weights = [np.zeros((s, fan_in, fan_out), dtype=DTYPE) for fan_in, fan_out in zip(widths, widths[1:])]
        self.biases = [np.zeros((s, 1, w.shape[2]), dtype=DTYPE) for w in self.weights]
        self.live = [np.zeros(w.shape, dtype=bool) for w in self.weights]  # real links, less the dead ones
        self.active = [np.zeros(b.shape, dtype=bool) for b in self.biases]  # real neurons of each layer's output
        for k, (c, run) in enumerate(zip(configs, start or map(initial_network, configs))):
            for layer, (w, b, dead) in enumerate(zip(run.weights, run.biases, run.dead)):
                rows, cols = real_block(c, layer)
                self.weights[layer][k][np.ix_(rows, cols)] = w
                self.biases[layer][k, 0, cols] = b
                self.live[layer][k][np.ix_(rows, cols)] = ~dead
                self.active[layer][k, 0, cols] = True
        per_copy = lambda values: np.array(values, dtype=DTYPE).reshape(s, 1, 1)
        self.lr = per_copy([c.lr for c in configs])
        self.l1_rate = per_copy([c.reg_rate * (c.regularization == "L1") for c in configs])
        self.l2_rate = per_copy([c.reg_rate * (c.regularization == "L2") for c in configs])
        self.any_l1, self.any_l2 = bool(self.l1_rate.any()), bool(self.l2_rate.any())

    def forward(self, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """x (S, N, 7) -> per layer (pre-activation z, output a); the last output is the tanh node."""
        cache, a = [], x
        last = len(self.weights) - 1
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = a @ w + b
            a = np.tanh(z) if layer == last else self.activation(z) * self.active[layer]  # padding outputs 0
            cache.append((z, a))
        return cache

    def loss(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Mean of 0.5 (out - y)^2 per copy: (S,)."""
        out = self.forward(x)[-1][1][..., 0]
        return (0.5 * (out - y) ** 2).mean(1)

    def gradients(self, x: np.ndarray, y: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Gradients of each copy's batch-mean loss (the page's sum / count) by backpropagation."""
        cache = self.forward(x)
        out = cache[-1][1]
        delta = (out - y[..., None]) / y.shape[1] * (1 - out * out)  # through the tanh output
        weight_grads, bias_grads = [], []
        for layer in range(len(self.weights) - 1, -1, -1):
            below = x if layer == 0 else cache[layer - 1][1]
            weight_grads.append(below.transpose(0, 2, 1) @ delta)
            bias_grads.append(delta.sum(1, keepdims=True))
            if layer > 0:
                z, a = cache[layer - 1]
                delta = (delta @ self.weights[layer].transpose(0, 2, 1)) * self.activation_derivative(z, a)
        return weight_grads[::-1], bias_grads[::-1]

    def step(self, x: np.ndarray, y: np.ndarray) -> None:
        """One page update on a batch: the gradient step, then the regularization step
        computed at the weight as it was before; an L1 weight crossing zero dies."""
        weight_grads, bias_grads = self.gradients(x, y)
        layers = zip(self.weights, weight_grads, self.biases, bias_grads, self.live, self.active)
        for w, w_grad, b, b_grad, live, active in layers:
            # the penalty terms are skipped for stacks that have none
            penalty = (self.l1_rate * np.sign(w) if self.any_l1 else 0.0) + (self.l2_rate * w if self.any_l2 else 0.0)
            stepped = w - self.lr * w_grad
            np.copyto(w, stepped - self.lr * penalty, where=live)
            if self.any_l1:  # a dead link is never updated again
                crossed = live & (self.l1_rate > 0) & (stepped * w < 0)
                w[crossed] = 0.0
                live &= ~crossed
            b -= self.lr * b_grad * active

    def runs(self, train_loss: np.ndarray, test_loss: np.ndarray) -> list[Run]:
        """Each copy's unpadded network, with its column of the (epoch, copy) loss arrays, as a Run."""
        out = []
        for k, c in enumerate(self.configs):
            blocks = [real_block(c, layer) for layer in range(len(self.weights))]
            out.append(Run(c, train_loss[:, k].tolist(), test_loss[:, k].tolist(),
                           [w[k][np.ix_(r, cl)] for w, (r, cl) in zip(self.weights, blocks)],  # indexing copies
                           [b[k, 0, cl] for b, (_, cl) in zip(self.biases, blocks)],
                           [~live[k][np.ix_(r, cl)] for live, (r, cl) in zip(self.live, blocks)]))
        return out

    def fit(self, train_x, train_y, test_x, test_y, epochs: int) -> tuple[np.ndarray, np.ndarray]:
        """Train on stacked features (S, N, 7) and labels (S, N) as the page does: the (epoch, copy) training and
        test losses at epoch 0 and after each epoch."""
        train_losses, test_losses = [self.loss(train_x, train_y)], [self.loss(test_x, test_y)]
        for batches in batch_schedule(train_x.shape[1], self.configs[0].batch_size, epochs):
            for batch in batches:
                self.step(train_x[:, batch], train_y[:, batch])
            train_losses.append(self.loss(train_x, train_y))
            test_losses.append(self.loss(test_x, test_y))
        return np.stack(train_losses), np.stack(test_losses)


def data_arrays(configs: list[Config]) -> tuple[np.ndarray, ...]:
    """Stacked training and test features (S, N, 7) and labels (S, N) of each configuration's dataset."""
    splits = [train_test_split(*page_draws(c.dataset, c.noise, c.seed)[:2], c.train_percent) for c in configs]
    train_x, train_y, test_x, test_y = (np.stack(column) for column in zip(*splits))
    return feature_matrix(train_x), train_y, feature_matrix(test_x), test_y


def train(configs: list[Config], epochs: int, start: list[Run] | None = None, workers: int | None = None) -> list[Run]:
    """Train every configuration for `epochs` (losses at epoch 0 and after each epoch), from `start`'s networks
    if given (to retrain pruned ones). The stacks are independent (each configuration seeds its own data and
    weights), so they run in `workers` processes (default: one per usable CPU), as they would one by one."""
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(configs):
        groups.setdefault((len(c.hidden), c.activation, c.batch_size, c.train_percent), []).append(i)
    # the largest stacks first, so that no process is left with a large one at the end
    members = sorted(groups.values(), key=len, reverse=True)
    stacks = [[configs[i] for i in group] for group in members]
    starts = [None if start is None else [start[i] for i in group] for group in members]
    if workers is None:  # the CPUs this process may use, not all the machine's (sched_getaffinity: Linux only)
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(workers, len(members))
    if workers > 1:
        with concurrent.futures.ProcessPoolExecutor(workers) as pool:
            trained = list(pool.map(train_stack, stacks, starts, itertools.repeat(epochs)))
    else:
        trained = list(map(train_stack, stacks, starts, itertools.repeat(epochs)))
    by_index = dict(zip(itertools.chain(*members), itertools.chain(*trained)))
    return [by_index[i] for i in range(len(configs))]


def train_stack(configs: list[Config], start: list[Run] | None, epochs: int) -> list[Run]:
    """Train configurations of one depth, activation, batch size and training share as one stack."""
    net = StackedPlayground(configs, start)
    return net.runs(*net.fit(*data_arrays(configs), epochs))


# ----------------------------------------------------------------------------- the page's address
# the page's state keys of the features in its order (src/state.ts), with ours; cosX and cosY are hidden on the page
PAGE_FEATURES = {"x": "x1", "y": "x2", "xTimesY": "x1*x2", "xSquared": "x1^2", "ySquared": "x2^2", "cosX": None,
                 "sinX": "sin(x1)", "cosY": None, "sinY": "sin(x2)"}


def page_url(config: Config) -> str:
    """The page with this configuration: its whole state lives in the '#' fragment, written here with the
    keys, order and formats of State.serialize in src/state.ts. Its seed gives the page the data and initial
    weights that this reproduction draws for the configuration."""
    state = {"activation": config.activation, "regularization": config.regularization,
             "batchSize": config.batch_size, "dataset": config.dataset, "regDataset": "reg-plane",
             "learningRate": f"{config.lr:g}", "regularizationRate": f"{config.reg_rate:g}", "noise": config.noise,
             "networkShape": ",".join(map(str, config.hidden)), "seed": config.seed, "showTestData": True,
             "discretize": False, "percTrainData": config.train_percent,
             **{key: ours in config.features for key, ours in PAGE_FEATURES.items()},
             "collectStats": False, "problem": "classification", "initZero": False, "hideText": False}
    fragment = "&".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in state.items())
    return "https://playground.tensorflow.org/#" + fragment
