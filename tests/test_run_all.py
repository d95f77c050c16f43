"""run_all: a signal stops the running step only after it saved, and the summary of the committed
results is rewritten only for steps that ran into them."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest
import torch

import q5_2_mlp
from conftest import REPO_ROOT, write_mnist


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_run_all_lets_the_running_step_save_then_stops(signum, tmp_path):
    data, out = write_mnist(tmp_path / "data", n_train=1000, n_test=100), tmp_path / "out"
    run_all = subprocess.Popen([sys.executable, str(REPO_ROOT / "codes" / "run_all.py"), "--steps", "q5_2", "--device",
                                "cpu", "--data-dir", str(data), "--offline", "--output-dir", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = out / "q5_2_mlp.ckpt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and run_all.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    run_all.send_signal(signum)  # to run_all alone, as make or a scheduler sends it
    stdout, stderr = run_all.communicate(timeout=120)
    assert run_all.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
    stopped = re.search(r"interrupted after epoch (\d+); the state is saved in", stderr)
    assert stopped, stderr[-3000:]
    epoch = int(stopped[1])
    assert 10 <= epoch < 500
    assert torch.load(checkpoint, weights_only=True)["record"]["history"]["epoch"][-1] == epoch
    assert f"stopped by {signum.name} during Q5.2 MLP: its training state is saved (above). Continue it with " \
           f"`python codes/q5_2_mlp.py --output-dir {out} --data-dir {data}" in stderr
    # the saved state continues: one more epoch
    flags = ["--data-dir", str(data), "--offline", "--device", "cpu", "--no-progress", "--output-dir", str(out)]
    assert q5_2_mlp.main([*flags, "--resume", "--epochs", str(epoch + 1)]) == 0
