"""Benchmark: milliseconds per epoch of every training workload, and a tutorial-style loop.

    python codes/benchmark.py                      # on the GPU if there is one, else the CPU
    python codes/benchmark.py --workloads mlp      # only the Q5.2 MLP and the tutorial loop

Each workload (the Q5.2 MLP; the Q5.3 sweep at one seed, its 21 MLPs stacked; the Q5.5 CNN) trains
through this project's StackedTrainer with SGD lr 0.1 momentum 0.9 on the 48,000 training images,
timed for the training step alone and with the per-epoch evaluation; on a GPU it runs again with the
step not graphed, for its time and the largest parameter difference from the graphed run (the same
weights and batches: floating-point noise only). The MLP is also trained by a tutorial loop
(torchvision's MNIST, ToTensor + Normalize, a shuffled DataLoader, num_workers 0, a plain nn.Module).
Each number is the median over --epochs epochs after one warm-up. It prints a table headed by the
machine and writes results/runs/benchmark/benchmark_<device>.json (_cuda_fp32 with --no-tf32), beside
the committed results/benchmark_<device>.json (docs/speed.md), which only --replace-committed
replaces; an earlier file measured at the same settings on the same machine keeps the workloads
this run skips.
"""
from __future__ import annotations

import json
import statistics
import struct
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import cli
import common
import runs
from q5_3_flooding import FLOOD_LEVELS
from q5_5_cnn import cnn

BESIDE_COMMITTED = cli.RUNS_DIR / "benchmark"  # a run at the default settings, unless it replaces the committed one
LR, MOMENTUM = common.ASSIGNMENT["lr"], common.ASSIGNMENT["momentum"]
# name -> (description, network builder, flood level of every copy)
WORKLOADS = {
    "mlp": ("Q5.2 MLP 784-500-10", common.mlp, [0.0]),
    "flooding": (f"Q5.3 sweep, {len(FLOOD_LEVELS)} MLPs stacked", common.mlp, FLOOD_LEVELS),
    "cnn": ("Q5.5 CNN", cnn, [0.0]),
}


def tutorial_ms(data_dir: Path, split_seed: int, batch_size: int, epochs: int, device: torch.device) -> float:
    """Median milliseconds per training epoch of the tutorial loop training the MLP."""
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((common.MNIST_MEAN,), (common.MNIST_STD,))])
    with tempfile.TemporaryDirectory() as root:  # torchvision reads only unpacked files: give it those
        raw = Path(root) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for name, magic in common.MNIST_FILES.items():
            data = common.read_idx(data_dir / "MNIST" / "raw", name, magic)
            (raw / name).write_bytes(struct.pack(">I", magic) + struct.pack(f">{data.dim()}I", *data.shape)
                                     + data.numpy().tobytes())
        dataset = datasets.MNIST(root, train=True, transform=transform, download=False)  # read into memory
    train_idx, _ = common.split_indices(len(dataset), split_seed)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, train_idx.tolist()), batch_size=batch_size,
                                         shuffle=True, num_workers=0)
    model = common.mlp().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    seconds = []
    for _ in range(epochs + 1):
        start = time.perf_counter()
        for images, labels in loader:
            loss = F.cross_entropy(model(images.to(device)), labels.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - start)
    return 1000 * statistics.median(seconds[1:])


def trainer_ms(splits, build, flood_levels, batch_size: int, epochs: int, use_cuda_graph: bool | None = None):
    """Median milliseconds per epoch of training and of evaluation of one workload, and the trained
    parameters (every run of a workload starts from the same weights and sees the same batches)."""
    copies = common.seeded_copies(build, range(len(flood_levels)))
    model = common.StackedCopies(copies).to(splits["train"].labels.device)
    trainer = common.StackedTrainer(model, splits, lr=LR, momentum=MOMENTUM, batch_size=batch_size, seed=0,
                                    flood_levels=flood_levels, use_cuda_graph=use_cuda_graph)
    seconds = []  # (training, evaluation) of each epoch
    for _ in range(epochs + 1):
        start = time.perf_counter()
        trainer.train_epoch()  # returns host values, so the epoch's kernels have finished
        middle = time.perf_counter()
        trainer.evaluate_all()
        seconds.append((middle - start, time.perf_counter() - middle))
    train, evaluation = (1000 * statistics.median(column) for column in zip(*seconds[1:]))
    return train, evaluation, [p.detach() for p in model.parameters()]


def with_earlier_workloads(path: Path, settings: dict, measured: dict) -> dict:
    """This run's workloads and, from an earlier file at path measured with the same settings on the same
    machine and software, the others (rerunning one workload keeps the others' numbers), in the usual order."""
    try:
        earlier = json.loads(path.read_text())
        same = all(earlier.get(key) == value for key, value in settings.items())
        workloads = {**(earlier["workloads"] if same else {}), **measured}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        workloads = measured
    return {name: workloads[name] for name in WORKLOADS if name in workloads}


def main(argv: list[str] | None = None) -> int:
    parser = cli.script_parser(__doc__)
    cli.add_data_arguments(parser)
    parser.add_argument("--workloads", type=cli.comma_list("workloads", choices=list(WORKLOADS)), default=list(WORKLOADS), metavar="NAME,NAME,...",
                        help=f"which to time (default: {','.join(WORKLOADS)})")
    parser.add_argument("--epochs", type=cli.positive_int, default=3, help="epochs timed, after one warm-up (default: %(default)s)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=common.ASSIGNMENT["batch_size"], help="(default: %(default)s)")
    parser.add_argument("--output-dir", type=cli.given_path, default=None,
                        help="where the JSON goes (default: results/runs/benchmark/ at the default --epochs and "
                        "--batch-size, results/runs/benchmark-<settings>-<hash>/ otherwise)")
    parser.add_argument("--replace-committed", action="store_true",
                        help="write the committed measurements, results/benchmark_<device>.json, instead "
                        "(only at the default --epochs and --batch-size)")
    args = parser.parse_args(argv)
    paths = cli.output_paths("benchmark", vars(args), cli.defaults(parser, ("epochs", "batch_size")), args.output_dir)
    if args.replace_committed and not paths.is_assignment_run:
        raise common.UserError("--replace-committed replaces the committed measurements only at the default --epochs "
                               f"and --batch-size, without --output-dir (here: {', '.join(paths.changed) or '--output-dir'}).")
    output_dir = paths.results if args.replace_committed or not paths.is_assignment_run else BESIDE_COMMITTED
    device, tf32 = cli.training_device(args.device, args.tf32)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    cli.ensure_writable(output_dir)
    environment = runs.environment(device)
    splits = common.prepare_splits(args.data_dir, device, args.split_seed, download=not args.offline)

    print(f"machine: {environment['device_name']}, {environment['platform']}, torch {environment['torch']}, "
          f"{environment['cpu_threads']} CPU threads")
    print(f"batch {args.batch_size}{', TF32 matrix products' if tf32 else ''}, median of {args.epochs} epochs "
          "after one warm-up")
    print(f"  {'workload':34s} {'train ms':>10s} {'+ eval ms':>10s} {'500 epochs':>11s}")
    report = {}
    for name in args.workloads:
        description, build, flood_levels = WORKLOADS[name]
        train_ms, eval_ms, parameters = trainer_ms(splits, build, flood_levels, args.batch_size, args.epochs)
        ms = {"train": train_ms, "eval": eval_ms, "train_and_eval": train_ms + eval_ms}
        seconds = ms["train_and_eval"] * common.ASSIGNMENT["epochs"] / 1000
        report[name] = {"description": description, "copies": len(flood_levels), "ms_per_epoch": ms,
                        "seconds_for_assignment_epochs": seconds}
        print(f"  {description:34s} {ms['train']:10.1f} {ms['train_and_eval']:10.1f} {seconds:10.0f}s", flush=True)
        if device.type == "cuda":  # the same run with the step not graphed: its time, and that it agrees
            eager_ms, _, eager_parameters = trainer_ms(splits, build, flood_levels, args.batch_size, args.epochs,
                                                       use_cuda_graph=False)
            difference = max((a - b).abs().max().item() for a, b in zip(parameters, eager_parameters))
            report[name].update(eager_train_ms_per_epoch=eager_ms, graph_vs_eager_max_parameter_difference=difference)
            print(f"  {'  same, step not graphed':34s} {eager_ms:10.1f}    largest parameter difference "
                  f"after {args.epochs + 1} epochs: {difference:.1e}", flush=True)
        if name == "mlp":
            loop_ms = tutorial_ms(args.data_dir, args.split_seed, args.batch_size, args.epochs, device)
            report[name].update(tutorial_train_ms_per_epoch=loop_ms, speedup_train=loop_ms / train_ms)
            print(f"  {'tutorial loop (DataLoader), MLP':34s} {loop_ms:10.1f}    "
                  f"speed-up of the training step: {loop_ms / train_ms:.1f}x", flush=True)
    # a GPU's float32 numbers (--no-tf32) go beside its default TF32 ones, not over them
    path = output_dir / f"benchmark_{device.type}{'_fp32' if device.type == 'cuda' and not tf32 else ''}.json"
    settings = {"epochs_measured": args.epochs, "batch_size": args.batch_size, "tf32": tf32, "environment": environment}
    workloads = with_earlier_workloads(path, settings, report)
    if len(workloads) > len(report):
        print(f"kept from the earlier run in {path}: {', '.join(name for name in workloads if name not in report)}")
    runs.write_atomic(path, {"workloads": workloads, **settings})
    print(f"results: {path}")
    if output_dir == BESIDE_COMMITTED and (cli.RESULTS_DIR / path.name).exists():
        print(f"{cli.RESULTS_DIR / path.name}, the committed measurements, is unchanged (--replace-committed replaces it)")
    return 0


if __name__ == "__main__":
    cli.run_main(main)
