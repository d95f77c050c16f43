"""What keeps the submission trustworthy: sweeps that disagree are never combined, one writer per set
of outputs, no saved state thrown away, failed writes leave the old files, the id reaches the PDF as
data, the report's inputs are checked, a CPU is not handed a day-long job, and the former tracebacks
are one message each."""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess

import pytest
import torch

import cli
import common
import q5_2_mlp
import runs
import submission
from conftest import REPO_ROOT, idx_bytes, run_script, says
from test_pipeline import snapshot
from test_robustness import QUICK, start_mlp, wait_for


def test_sweeps_that_differ_in_more_than_the_learning_rate_are_not_combined(mnist_root, tmp_path):
    flags = ("--epochs", "1", "--seeds", "1", "--flood-levels", "0,0.1", "--lrs", "0.1,0.01", "--data-dir",
             str(mnist_root), *QUICK, "--output-dir", str(tmp_path))
    assert run_script("q5_3_flooding.py", *flags).returncode == 0
    other = tmp_path / "q5_3_flooding_lr0.01.json"
    results = json.loads(other.read_text())
    results["config"]["seeds"] = 3
    other.write_text(json.dumps(results))
    snippet = (tmp_path / "generated" / "q5_3.tex").read_bytes()
    done = run_script("q5_3_flooding.py", *flags, "--plot-only")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert says(done.stderr, str(other), str(tmp_path / "q5_3_flooding_lr0.1.json"), "--seeds 3 vs 1")
    assert (tmp_path / "generated" / "q5_3.tex").read_bytes() == snippet


def test_one_writer_at_a_time_and_no_stopped_run_is_discarded(mnist_root, tmp_path):
    flags = ("--data-dir", str(mnist_root), *QUICK, "--output-dir", str(tmp_path))
    first = start_mlp("--epochs", "300", *flags)
    wait_for(tmp_path / "q5_2_mlp.ckpt")
    second = run_script("q5_2_mlp.py", "--epochs", "1", *flags)
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert says(second.stderr, f"pid {first.pid}", str(tmp_path), "--output-dir")  # who holds it, where, what to do
    first.kill()  # the lock goes with the process; the saved state stays
    first.wait()
    (tmp_path / ".q5_2_mlp.ckpt.abc123.tmp").write_bytes(b"half of a killed save")
    again = run_script("q5_2_mlp.py", "--epochs", "300", *flags)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert says(again.stderr, "q5_2_mlp.ckpt", "of 300", "--resume", "--restart")
    assert not (tmp_path / ".q5_2_mlp.ckpt.abc123.tmp").exists()  # the killed save's leftover is cleaned
    restarted = run_script("q5_2_mlp.py", "--epochs", "2", *flags, "--restart")
    assert restarted.returncode == 0, restarted.stderr
    assert json.loads((tmp_path / "q5_2_mlp.json").read_text())["epochs_completed"] == 2


def test_a_full_disk_leaves_the_results_and_the_last_checkpoint_intact(mnist_root, tmp_path, monkeypatch):
    flags = ["--data-dir", str(mnist_root), *QUICK, "--output-dir", str(tmp_path)]
    assert q5_2_mlp.main(["--epochs", "2", *flags]) == 0
    results, checkpoint = (tmp_path / "q5_2_mlp.json").read_bytes(), (tmp_path / "q5_2_mlp.ckpt").read_bytes()

    def full_disk(obj, file, *args, **kwargs):  # what torch.save raises when the disk fills mid-write
        file.write(b"half")
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1024 vs 512")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(common.UserError, match=r"cannot write .*q5_2_mlp.ckpt \(No space left on device\).*unchanged"):
        q5_2_mlp.main(["--epochs", "4", "--resume", *flags])
    assert (tmp_path / "q5_2_mlp.ckpt").read_bytes() == checkpoint
    assert (tmp_path / "q5_2_mlp.json").read_bytes() == results
    assert not list(tmp_path.glob(".*.tmp"))

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(common.UserError, match="No space left on device"):
        runs.write_atomic(tmp_path / "q5_2_mlp.json", {"replaced": True})
    assert (tmp_path / "q5_2_mlp.json").read_bytes() == results


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_student_id_reaches_the_script_as_data_and_is_checked(tmp_path, monkeypatch):
    hostile = 'a"; touch pwned; echo "'
    done = subprocess.run(["make", "-o", "report", "submission", f"STUDENT_ID={hostile}"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "is not usable: use 1 to 32 letters" in done.stderr
    assert not (REPO_ROOT / "pwned").exists() and "Traceback" not in done.stderr
    marker = tmp_path / "ran"  # make would run a $(shell ...) in the value it expands
    typed = f"$(shell touch {marker})x1"
    done = subprocess.run(["make", "-o", "report", "submission", f"STUDENT_ID={typed}"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and says(done.stderr, f"{len(typed)} characters", "not usable")
    assert not marker.exists()
    monkeypatch.delenv("STUDENT_ID", raising=False)  # read when the flags are parsed, not at import
    for student_id, message in ((None, "STUDENT_ID="), ("x" * 300, "1 to 32")):
        if student_id:
            monkeypatch.setenv("STUDENT_ID", student_id)
        refused = run_script("submission.py")
        assert refused.returncode == 1 and message in refused.stderr and "Traceback" not in refused.stderr


def test_every_input_of_the_report_exists_and_a_missing_one_names_its_script():
    inputs = submission.report_inputs()
    assert cli.REPORT_DIR / "figures" / "q5_2_error.png" in inputs
    assert cli.REPORT_DIR / "generated" / "q5_3.tex" in inputs
    assert submission.missing_inputs(inputs) == []
    gone = [cli.REPORT_DIR / "figures" / "q5_2_gone.png", cli.REPORT_DIR / "figures" / "q5_5_step_size_x.png"]
    missing = submission.missing_inputs(gone)
    assert missing[0].startswith("report/figures/q5_2_gone.png (made by python codes/q5_2_mlp.py;")
    assert missing[1].startswith("report/figures/q5_5_step_size_x.png (made by python codes/q5_5_cnn.py --lrs 0.1,0.01 "
                                 "--epochs 158;") and "git checkout -- report/figures/q5_5_step_size_x.png" in missing[1]


def test_every_macro_the_scripts_generate_is_used_by_the_report():
    """A number the scripts write for the report and the report never prints is dead weight in both."""
    report = re.sub(r"(?<!\\)%.*", "", (cli.REPORT_DIR / "report.tex").read_text())  # without its comments
    used = set(re.findall(r"\\([A-Za-z]+)", report))
    unused = [f"{path.name}: \\{name}" for path in sorted(cli.GENERATED_DIR.glob("*.tex"))
              for name in re.findall(r"\\newcommand\{?\\([A-Za-z]+)", path.read_text()) if name not in used]
    assert unused == []


def test_the_committed_results_folder_is_refused_to_a_run_at_other_settings(tmp_path):
    committed = snapshot(cli.RESULTS_DIR, cli.FIGURES_DIR, cli.GENERATED_DIR)
    done = run_script("q5_2_mlp.py", "--epochs", "1", "--subset", "100", "--output-dir", str(cli.RESULTS_DIR))
    assert done.returncode == 1 and "is the folder of the committed results" in done.stderr
    assert snapshot(cli.RESULTS_DIR, cli.FIGURES_DIR, cli.GENERATED_DIR) == committed
    # and the report is never drawn from a results file a run at other settings wrote
    paths = cli.output_paths("q5_2_mlp", {}, {}, None)
    with pytest.raises(common.UserError, match="cannot be drawn into the report"):
        paths.refuse_other_run({"settings_changed": ["epochs 1"]}, cli.RESULTS_DIR / "q5_2_mlp.json")


@pytest.mark.parametrize("flags, message", [
    (("--momentum", "2"), "--momentum: must lie in [0, 1)"),
    (("--seed", "100000000000000000000000"), "--seed: must be an integer from 0 to 2**63 - 1"),
])
def test_bad_flags_are_one_message(flags, message, mnist_root, tmp_path):
    done = run_script("q5_2_mlp.py", *flags, "--data-dir", str(mnist_root), "--output-dir", str(tmp_path))
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_a_stack_that_cannot_fit_is_refused_up_front(mnist_root, tmp_path):
    done = run_script("q5_3_flooding.py", "--seeds", "1000000000", "--epochs", "1", "--data-dir", str(mnist_root),
                      *QUICK, "--output-dir", str(tmp_path))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert says(done.stderr, "21000000000 stacked copies", "fewer copies")


@pytest.mark.parametrize("content, message", [
    (b"", "is not a readable checkpoint"),
    (b"garbage that is no zip file", "is not a readable checkpoint"),
    ("a torch file", "is not a readable checkpoint"),
])
def test_a_bad_checkpoint_is_one_message(content, message, mnist_root, tmp_path):
    path = tmp_path / "q5_2_mlp.ckpt"
    if content == "a torch file":
        torch.save({"weights": torch.zeros(3)}, path)
    else:
        path.write_bytes(content)
    done = run_script("q5_2_mlp.py", "--epochs", "1", "--resume", "--data-dir", str(mnist_root), *QUICK,
                      "--output-dir", str(tmp_path))
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr
    assert "weights_only" not in done.stderr


@pytest.mark.parametrize("script, results_file", [("q5_2_mlp.py", "q5_2_mlp.json"), ("q1_playground.py", "q1_playground.json"),
                                                  ("q5_3_flooding.py", "q5_3_flooding_lr0.1.json")])
def test_a_results_file_that_is_not_one_is_refused_when_redrawing(script, results_file, tmp_path):
    (tmp_path / results_file).write_text("{}")
    done = run_script(script, "--plot-only", "--output-dir", str(tmp_path))
    assert done.returncode == 1 and "is not a results file of Q" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_idx_file_with_no_images_is_one_message(mnist_root, tmp_path):
    (mnist_root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(torch.zeros(0, 28, 28).numpy()))
    done = run_script("q5_2_mlp.py", "--epochs", "1", "--data-dir", str(mnist_root), *QUICK, "--output-dir", str(tmp_path))
    assert done.returncode == 1 and "t10k-images-idx3-ubyte holds no images" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_checkpoint_of_another_model_is_one_message(mnist_root, tmp_path):
    flags = ("--epochs", "1", "--lr", "0.01", "--data-dir", str(mnist_root), *QUICK)
    assert run_script("q5_5_cnn.py", *flags, "--output-dir", str(tmp_path / "cnn")).returncode == 0
    (tmp_path / "mlp").mkdir()
    shutil.copy(tmp_path / "cnn" / "q5_5_cnn.ckpt", tmp_path / "mlp" / "q5_2_mlp.ckpt")
    done = run_script("q5_2_mlp.py", *flags, "--output-dir", str(tmp_path / "mlp"), "--resume")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "was made with other settings (saved vs now: --model Sequential(" in done.stderr
    state = torch.load(tmp_path / "cnn" / "q5_5_cnn.ckpt", weights_only=True)
    state["trainer"]["parameters"][0] = torch.zeros(3)  # same settings, a tensor of the wrong shape
    torch.save(state, tmp_path / "cnn" / "q5_5_cnn.ckpt")
    broken = run_script("q5_5_cnn.py", *flags, "--output-dir", str(tmp_path / "cnn"), "--resume")
    assert broken.returncode == 1 and "does not hold the state of this run's model" in broken.stderr
    assert "Traceback" not in broken.stderr
