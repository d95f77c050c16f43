"""Benchmark: milliseconds per MLP epoch, a tutorial-style loop against this project's trainer.

    python codes/benchmark.py                # on the GPU if there is one, else the CPU
    python codes/benchmark.py --device cpu

(a) the tutorial loop: torchvision's MNIST dataset with ToTensor + Normalize
    and a DataLoader (batch 128, shuffled, num_workers 0), a plain nn.Module;
(b) this project's StackedTrainer (data on the device, a permutation per epoch,
    one CUDA graph per step on a GPU), timed for its training step alone and
    with the per-epoch evaluation of train, validation and test sets.
Both train the Q5.2 MLP with SGD lr 0.1 momentum 0.9 on the 48,000 training
images, in the same run. Each number is the median over --epochs epochs after
one warm-up epoch. Prints a table and writes results/benchmark_<device>.json.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import common


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def tutorial_epoch_seconds(args, device: torch.device, epochs: int) -> list[float]:
    import torchvision
    from torchvision import transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((common.MNIST_MEAN,), (common.MNIST_STD,))])
    dataset = torchvision.datasets.MNIST(args.data_dir, train=True, transform=transform, download=False)
    train_idx, _ = common.split_indices(len(dataset), args.split_seed)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, train_idx.tolist()), batch_size=args.batch_size, shuffle=True, num_workers=0
    )
    model = common.mlp().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    seconds = []
    for _ in range(epochs + 1):
        start = time.perf_counter()
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds[1:]


def project_epoch_seconds(args, device: torch.device, epochs: int) -> tuple[list[float], list[float]]:
    splits = common.prepare_splits(args.data_dir, device, args.split_seed, download=not args.offline)
    model = common.StackedCopies(common.seeded_copies(common.mlp, [0])).to(device)
    trainer = common.StackedTrainer(
        model, splits, lr=args.lr, momentum=args.momentum, batch_size=args.batch_size, seed=0
    )
    train, evaluation = [], []
    for _ in range(epochs + 1):
        start = time.perf_counter()
        trainer.train_epoch()  # returns host values, so the epoch's kernels have finished
        middle = time.perf_counter()
        trainer.evaluate_all()
        evaluation.append(time.perf_counter() - middle)
        train.append(middle - start)
    return train[1:], evaluation[1:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_data_arguments(parser)
    parser.add_argument("--epochs", type=common.positive_int, default=3, help="epochs timed, after one warm-up (default: %(default)s)")
    parser.add_argument("--batch-size", type=common.positive_int, default=common.ASSIGNMENT["batch_size"], help="(default: %(default)s)")
    args = parser.parse_args(argv)
    args.lr, args.momentum = common.ASSIGNMENT["lr"], common.ASSIGNMENT["momentum"]
    device = common.select_device(args.device)
    common.ensure_writable(common.RESULTS_DIR)

    ours_train, ours_eval = project_epoch_seconds(args, device, args.epochs)  # also unpacks MNIST if needed
    tutorial = tutorial_epoch_seconds(args, device, args.epochs)
    ms = {
        "tutorial_train": 1000 * statistics.median(tutorial),
        "project_train": 1000 * statistics.median(ours_train),
        "project_eval": 1000 * statistics.median(ours_eval),
    }
    ms["project_train_and_eval"] = ms["project_train"] + ms["project_eval"]
    speedup = ms["tutorial_train"] / ms["project_train"]
    environment = common.environment(device)
    print(f"MLP 784-500-10, batch {args.batch_size}, {environment['device_name']}, median of {args.epochs} epochs")
    print(f"  (a) tutorial loop, training only        {ms['tutorial_train']:9.1f} ms/epoch")
    print(f"  (b) this project, training only         {ms['project_train']:9.1f} ms/epoch")
    print(f"      this project, training + evaluation {ms['project_train_and_eval']:9.1f} ms/epoch")
    print(f"  speed-up of the training step (a)/(b): {speedup:.1f}x")
    path = common.RESULTS_DIR / f"benchmark_{device.type}.json"
    common.write_json_atomic(
        path,
        {"ms_per_epoch": ms, "speedup_train": speedup, "epochs_measured": args.epochs,
         "batch_size": args.batch_size, "environment": environment},
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    common.run_main(main)
