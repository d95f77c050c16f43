"""The stacked model and trainer against independent oracles: plain nn.Modules
trained one at a time with torch.optim.SGD, and a hand computation."""
from __future__ import annotations

import math
import signal

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import common
import runs


def small_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 3, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * 7 * 7, 10),
    )


def small_mlp() -> nn.Sequential:
    return common.mlp(hidden=32)


def random_splits(n_train: int = 64, n_eval: int = 24, seed: int = 0) -> dict[str, common.Split]:
    g = torch.Generator().manual_seed(seed)
    make = lambda n: common.Split(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g))
    return {"train": make(n_train), "val": make(n_eval), "test": make(n_eval)}


def plain_model(build, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build()


@pytest.mark.parametrize("build", [small_mlp, small_cnn], ids=["mlp", "cnn"])
def test_stacked_forward_equals_each_copy(build):
    seeds = [3, 4, 5]
    stacked = common.StackedCopies(common.seeded_copies(build, seeds))
    x = torch.randn(6, 1, 28, 28)
    out = stacked(x)
    assert out.shape == (3, 6, 10)
    for k, seed in enumerate(seeds):
        torch.testing.assert_close(out[k], plain_model(build, seed)(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("build", [small_mlp, small_cnn], ids=["mlp", "cnn"])
def test_stacked_training_equals_separate_runs(build):
    """K = 3 copies trained together (each with its own flood level) end where three
    plain models trained one by one on the same batches end."""
    seeds, levels = [0, 1, 2], [0.0, 0.5, 50.0]  # 50 lies above any loss here: ascent
    splits = random_splits()
    batch_size, epochs, lr, momentum, batch_seed = 16, 2, 0.05, 0.9, 7
    stacked = common.StackedCopies(common.seeded_copies(build, seeds))
    trainer = common.StackedTrainer(
        stacked, splits, lr=lr, momentum=momentum, batch_size=batch_size, seed=batch_seed, flood_levels=levels
    )
    for _ in range(epochs):
        trainer.train_epoch()

    n = len(splits["train"])
    for k, (seed, level) in enumerate(zip(seeds, levels)):
        model = plain_model(build, seed)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
        order = torch.Generator().manual_seed(batch_seed)
        for _ in range(epochs):
            permutation = torch.randperm(n, generator=order)
            for i in range(n // batch_size):
                idx = permutation[i * batch_size : (i + 1) * batch_size]
                loss = F.cross_entropy(model(splits["train"].images[idx]), splits["train"].labels[idx])
                optimizer.zero_grad()
                ((loss - level).abs() + level).backward()
                optimizer.step()
        for stacked_parameter, expected in zip(stacked.parameters(), model.parameters()):
            torch.testing.assert_close(stacked_parameter[k], expected, rtol=1e-5, atol=1e-6)


def test_evaluate_matches_hand_computation():
    """Logits equal the first three pixels; cross-entropy and error worked out by hand."""
    linear = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.eye(3, 4))
    model = common.StackedCopies([nn.Sequential(nn.Flatten(), linear)])
    images = torch.tensor([[2.0, 0, 0, 9], [0, 1, 3, 9], [0, 1, 2, 9]]).view(3, 1, 2, 2)
    labels = torch.tensor([0, 0, 2])
    metrics = common.evaluate(model, common.Split(images, labels), batch_size=2)
    loss, error = metrics["loss"], metrics["error"]
    softmax_max = lambda logits: max(math.exp(v) for v in logits) / sum(math.exp(v) for v in logits)
    assert metrics["confidence_right"].item() == pytest.approx((softmax_max((2, 0, 0)) + softmax_max((0, 1, 2))) / 2)
    assert metrics["confidence_wrong"].item() == pytest.approx(softmax_max((0, 1, 3)))
    by_hand = [
        math.log(math.e**2 + 2) - 2,  # logits (2, 0, 0), label 0: right
        math.log(1 + math.e + math.e**3) - 0,  # logits (0, 1, 3), label 0: wrong
        math.log(1 + math.e + math.e**2) - 2,  # logits (0, 1, 2), label 2: right
    ]
    assert loss.item() == pytest.approx(sum(by_hand) / 3, rel=1e-6)
    assert error.item() == pytest.approx(100 / 3, rel=1e-6)


def test_fit_records_epoch_zero_and_every_epoch():
    splits = random_splits()
    trainer = common.StackedTrainer(
        common.StackedCopies(common.seeded_copies(small_mlp, [0, 1])), splits,
        lr=0.05, momentum=0.9, batch_size=16, seed=0,
    )
    initial = trainer.evaluate_all()
    outcome = common.fit(trainer, epochs=3, progress=False)
    history = outcome["history"]
    assert history["epoch"] == [0, 1, 2, 3]
    assert history["val_error"][0] == initial["val_error"]
    assert all(len(history[key]) == 4 and len(history[key][-1]) == 2 for key in history if key != "epoch")
    assert history["batch_loss"][0] == [None, None]
    assert outcome["diverged_at_epoch"] == [None, None]


def test_absurd_learning_rate_is_reported_as_divergence():
    splits = random_splits()
    trainer = common.StackedTrainer(
        common.StackedCopies(common.seeded_copies(small_mlp, [0])), splits,
        lr=1e30, momentum=0.9, batch_size=16, seed=0,
    )
    outcome = common.fit(trainer, epochs=50, progress=False)
    assert outcome["diverged_at_epoch"][0] is not None
    assert outcome["epochs_completed"] == outcome["diverged_at_epoch"][0] < 50


def test_same_seed_gives_identical_history():
    def history():
        trainer = common.StackedTrainer(
            common.StackedCopies(common.seeded_copies(small_mlp, [0])), random_splits(),
            lr=0.05, momentum=0.9, batch_size=16, seed=3,
        )
        return common.fit(trainer, epochs=2, progress=False)["history"]

    assert history() == history()


def test_restoring_the_state_after_warm_up_steps_is_exact():
    """What the CUDA-graph capture relies on, checked on the CPU: a few warm-up steps
    (which create SGD's momentum buffers), then the saved state restored, train
    exactly like a trainer that never warmed up (a zeroed buffer reproduces SGD's first step)."""
    def trainer():
        return common.StackedTrainer(common.StackedCopies(common.seeded_copies(small_mlp, [0, 1])), random_splits(),
                                     lr=0.05, momentum=0.9, batch_size=16, seed=4, flood_levels=[0.0, 2.0])

    warmed, fresh = trainer(), trainer()
    saved = warmed.state_dict()
    for _ in range(3):
        warmed._step()
    warmed.load_state_dict(saved)
    for _ in range(2):
        assert warmed.train_epoch() == fresh.train_epoch()
    for a, b in zip(warmed.model.parameters(), fresh.model.parameters()):
        assert torch.equal(a, b)


def test_a_diverged_copy_leaves_the_others_untouched():
    splits = random_splits()
    copies = common.seeded_copies(small_mlp, [0, 1])
    with torch.no_grad():
        copies[1][1].weight.fill_(float("nan"))
    stacked = common.StackedTrainer(common.StackedCopies(copies), splits, lr=0.05, momentum=0.9, batch_size=16, seed=0)
    alone = common.StackedTrainer(common.StackedCopies(common.seeded_copies(small_mlp, [0])), splits,
                                  lr=0.05, momentum=0.9, batch_size=16, seed=0)
    together, single = common.fit(stacked, 3, progress=False), common.fit(alone, 3, progress=False)
    assert together["diverged_at_epoch"] == [None, 1] and together["epochs_completed"] == 3
    assert runs.series(together, "val_loss", 0) == pytest.approx(runs.series(single, "val_loss", 0), rel=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("build", [small_mlp, small_cnn], ids=["mlp", "cnn"])
def test_cuda_graph_replay_equals_eager_step(build, monkeypatch):
    # cuDNN's default convolution algorithms are not bitwise reproducible from run to run (two eager
    # runs of the CNN differ too); its deterministic ones make the comparison exact
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    device = torch.device("cuda")
    splits = {name: common.Split(s.images.to(device), s.labels.to(device)) for name, s in random_splits().items()}
    results = []
    for use_graph in (False, True):
        model = common.StackedCopies(common.seeded_copies(build, [0, 1])).to(device)
        trainer = common.StackedTrainer(
            model, splits, lr=0.05, momentum=0.9, batch_size=16, seed=0,
            flood_levels=[0.0, 1.0], use_cuda_graph=use_graph,
        )
        stats = [trainer.train_epoch() for _ in range(3)]
        results.append(([p.detach().cpu() for p in model.parameters()], stats))
    for eager, graphed in zip(*[r[0] for r in results]):
        torch.testing.assert_close(graphed, eager, rtol=1e-5, atol=1e-6)
    for eager_stats, graphed_stats in zip(results[0][1], results[1][1]):
        for key, values in eager_stats.items():
            assert graphed_stats[key] == pytest.approx(values, rel=1e-5, abs=1e-6)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_resuming_in_place_continues_the_run(device, tmp_path):
    """A fresh trainer (on CUDA: with its graph already captured) that loads a saved state
    trains on exactly like the run that saved it: load_state_dict writes into the tensors
    the graph replays."""
    splits = {name: common.Split(s.images.to(device), s.labels.to(device)) for name, s in random_splits().items()}

    def trainer():
        model = common.StackedCopies(common.seeded_copies(small_cnn, [0, 1])).to(device)
        return common.StackedTrainer(model, splits, lr=0.05, momentum=0.9, batch_size=16, seed=0,
                                     flood_levels=[0.0, 1.0])

    identity = {"test": 1}
    whole = common.fit(trainer(), 3, progress=False)["history"]
    common.fit(trainer(), 1, progress=False, checkpoint=runs.Checkpoint(tmp_path / "state.ckpt", 1, identity))
    resumed = common.fit(trainer(), 3, progress=False,
                         checkpoint=runs.Checkpoint(tmp_path / "state.ckpt", 1, identity, resume=True))["history"]
    assert resumed["epoch"] == whole["epoch"] == [0, 1, 2, 3]
    if device == "cpu":  # one machine, one set of kernels: bit for bit
        assert resumed == whole
    else:  # cuDNN's convolutions are not bitwise reproducible from run to run
        for key in ("train_loss", "val_error", "batch_loss"):
            for a, b in zip(resumed[key][1:], whole[key][1:]):
                assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    with pytest.raises(common.UserError, match="holds 3 epochs, more than the 2 asked for"):
        common.fit(trainer(), 2, progress=False, checkpoint=runs.Checkpoint(tmp_path / "state.ckpt", 1, identity, resume=True))


def single_run(train_losses: list[float | None], diverged_at: int | None = None) -> dict:
    """A one-copy results record with the given training loss per epoch (epoch 0 first)."""
    epochs = list(range(len(train_losses)))
    errors = [[50.0 - e] for e in epochs]
    history = {"epoch": epochs, "train_loss": [[loss] for loss in train_losses], "train_error": errors,
               **{f"{split}_{m}": [[1.0 - 0.1 * e] for e in epochs] for split in ("val", "test") for m in ("loss", "error")}}
    return {"config": {"lr": 0.1}, "history": history, "diverged_at_epoch": [diverged_at],
            "seconds": {"train_per_epoch": 0.0391, "eval_per_epoch": 0.00492}, "environment": {"device_name": "GPU"}}


def test_single_run_outcome_names_divergence_collapse_and_the_final_numbers(capsys):
    # it says how the run ended and returns nothing: main, not a caller, decides what follows
    assert runs.print_single_run_outcome(single_run([2.3, 0.5, None], diverged_at=2), "CNN", "advice") is None
    printed = capsys.readouterr()
    assert printed.err == "error: the CNN diverged at epoch 2 (the training loss is not finite) with --lr 0.1; advice\n"
    assert printed.out == ""
    runs.print_single_run_outcome(single_run([2.3, 0.5, 2.4, 0.1]), "CNN", "advice")
    printed = capsys.readouterr()
    assert printed.err.startswith("warning: at epoch 2 the CNN's training loss rose above")
    assert printed.out == ("CNN final errors: train 47.000%, validation 0.70%, test 0.70% (best validation 0.70% at "
                           "epoch 3); 0.0391 s training + 0.00492 s evaluation per epoch on GPU\n")
    runs.print_single_run_outcome(single_run([2.3, 0.5, 0.1]), "MLP", "advice")
    assert capsys.readouterr().err == ""


def test_weight_norm_and_confidences_are_recorded_per_copy():
    """The Q5.1 evidence: each copy's weight norm (by hand from its parameters) and the confidences at epoch 0."""
    copies = common.seeded_copies(small_mlp, [0, 1])
    by_hand = [math.sqrt(sum(p.detach().square().sum().item() for p in copy.parameters())) for copy in copies]
    trainer = common.StackedTrainer(common.StackedCopies(copies), random_splits(), lr=0.05, momentum=0.9,
                                    batch_size=16, seed=0)
    history = common.fit(trainer, 1, progress=False)["history"]
    assert history["weight_norm"][0] == pytest.approx(by_hand, rel=1e-5)
    for split in ("train", "val", "test"):
        for key in ("confidence_right", "confidence_wrong"):
            assert all(0.1 <= c <= 1 for c in history[f"{split}_{key}"][1] if c == c)  # a softmax maximum, NaN if none


def test_a_ctrl_c_in_the_last_epoch_stops_what_follows(tmp_path):
    """A Ctrl-C during a run's last epoch still stops the script (a sweep must not go on to its next
    learning rate), and --resume then finds the finished run saved and completes it without training."""
    splits = random_splits()

    class CtrlCInLastEpoch(common.StackedTrainer):
        def train_epoch(self):
            self.epochs_trained = getattr(self, "epochs_trained", 0) + 1
            if self.epochs_trained == 2:
                signal.raise_signal(signal.SIGINT)  # reaches fit's handler, as a key press would
            return super().train_epoch()

    def trainer(kind):
        model = common.StackedCopies(common.seeded_copies(small_mlp, [0]))
        return kind(model, splits, lr=0.05, momentum=0.9, batch_size=16, seed=0, flood_levels=[0.0])

    identity = {"test": 1}
    with pytest.raises(common.RunInterrupted, match="after epoch 2"):
        common.fit(trainer(CtrlCInLastEpoch), 2, progress=False,
                   checkpoint=runs.Checkpoint(tmp_path / "state.ckpt", 10, identity))
    resumed = common.fit(trainer(common.StackedTrainer), 2, progress=False,
                         checkpoint=runs.Checkpoint(tmp_path / "state.ckpt", 10, identity, resume=True))
    assert resumed["history"] == common.fit(trainer(common.StackedTrainer), 2, progress=False)["history"]
