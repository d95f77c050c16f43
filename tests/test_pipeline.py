"""Where runs write, and the submission zip (the quick pass of every step: tests/test_gpu_job.py)."""
from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import common
import cli
import q5_2_mlp
import q5_5_cnn
import submission
from conftest import REPO_ROOT, run_script, says


def snapshot(*folders):
    """Every file under the folders with its modification time and size."""
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for f in folders if f.exists() for p in f.rglob("*")
            if p.is_file()}


@pytest.mark.parametrize("flags, readable", [
    ([], None),  # the assignment's run: the committed folders
    (["--epochs", "2"], "q5_2_mlp-epochs2-"),
    (["--lr", "1e6"], "q5_2_mlp-lr1e+06-"),
    (["--momentum", "0.5", "--subset", "1000"], "q5_2_mlp-momentum0.5_subset1000-"),
    (["--no-tf32"], "q5_2_mlp-tf32False-"),
    (["--output-dir", str(cli.RESULTS_DIR)], None),  # the assignment's run, told where it writes
])
def test_only_the_assignments_settings_write_the_committed_results(flags, readable):
    parser = q5_2_mlp.make_parser()
    paths = cli.parse(parser, flags, "q5_2_mlp")[3]
    if readable is None:
        assert (paths.results, paths.figures, paths.generated) == (cli.RESULTS_DIR, cli.FIGURES_DIR, cli.GENERATED_DIR)
        assert paths.is_assignment_run and paths.changed == []
    else:
        root = paths.results
        assert root.parent == cli.RUNS_DIR and (paths.figures, paths.generated) == (root / "figures", root / "generated")
        assert re.fullmatch(re.escape(readable) + "[0-9a-f]{8}", root.name)
        assert not paths.is_assignment_run and paths.changed
    given = cli.parse(parser, ["--output-dir", "elsewhere"], "q5_2_mlp")[3]
    assert given.results == Path("elsewhere") and not given.is_assignment_run


@pytest.mark.parametrize("script, first, second", [
    ("q5_2_mlp", ["--lr", "0.1000001"], ["--lr", "0.1000002"]),  # equal to six digits
    ("q5_3_flooding", ["--flood-levels", ",".join(f"{b / 100:g}" for b in range(13))],  # equal for 80 characters
     ["--flood-levels", ",".join(f"{b / 100:g}" for b in range(16))]),
    ("q5_2_mlp", ["--epochs", "1", "--subset", "500"], ["--subset", "500", "--epochs", "1"]),  # the same settings
])
def test_runs_at_different_settings_get_different_folders_and_the_same_settings_the_same(script, first, second):
    module = importlib.import_module(script)
    parser = module.make_parser()
    paths = [cli.parse(parser, flags, script)[3] for flags in (first, second)]
    assert (paths[0].results == paths[1].results) == (sorted(first) == sorted(second))
    changed = paths[0].changed
    assert changed[0] == f"{first[0][2:]} {first[1]}" or sorted(first) == sorted(second)  # exact, as typed


def test_an_output_dir_among_the_committed_outputs_is_refused_to_any_other_run(mnist_root):
    committed = snapshot(cli.RESULTS_DIR, cli.REPORT_DIR)
    flags = ["--epochs", "1", "--subset", "50", "--data-dir", str(mnist_root), "--offline", "--no-progress"]
    for folder in (cli.REPORT_DIR, cli.GENERATED_DIR, cli.RESULTS_DIR / "mine"):
        with pytest.raises(common.UserError) as refused:
            q5_2_mlp.main([*flags, "--output-dir", str(folder)])
        assert says(str(refused.value), f"--output-dir {folder}", "committed", "(epochs 1, subset 50)",
                    str(cli.RUNS_DIR / "q5_2_mlp-epochs1_subset50-"))  # the folder, why not, where it writes instead
    with pytest.raises(common.UserError, match="it writes there without --output-dir"):
        q5_2_mlp.main(["--output-dir", str(cli.REPORT_DIR), "--plot-only"])
    assert snapshot(cli.RESULTS_DIR, cli.REPORT_DIR) == committed


def test_on_macos_the_committed_folders_are_found_whatever_the_case_typed(monkeypatch):
    """macOS's file system (APFS) ignores case: Results/ there is results/, which a quick run must not write."""
    typed = cli.REPO_ROOT / cli.RESULTS_DIR.name.capitalize()
    assert not cli.committed_folder(typed / "mine")  # on a file system that tells them apart, another folder
    monkeypatch.setattr(sys, "platform", "darwin")
    assert cli.committed_folder(typed / "mine") and cli.committed_folder(cli.REPO_ROOT / "REPORT")
    assert not cli.committed_folder(typed / "Runs" / "mine")
    with pytest.raises(common.UserError, match="is the folder of the committed results"):
        cli.output_paths("q5_2_mlp", {"epochs": 1}, {"epochs": 500}, typed)


@pytest.mark.parametrize("script, flag", [(script, "--output-dir") for script in (
    "q1_playground.py", "q2_q4_checks.py", "benchmark.py", "run_all.py", "q5_2_mlp.py", "q5_3_flooding.py",
    "q5_5_cnn.py")] + [("gpu_job.py", "--out"), ("q5_5_cnn.py", "--mlp-results"), ("q5_2_mlp.py", "--data-dir"),
                        ("q1_playground.py", "--check-claims"), ("q1_screenshot.py", "--local-build")])
def test_an_empty_path_is_refused_not_taken_as_the_working_folder(script, flag, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = run_script(script, flag, "", *(["--part", "1"] if script == "gpu_job.py" else []))
    assert done.returncode == 2 and says(done.stderr, flag, "empty"), done.stderr
    assert not list(tmp_path.iterdir())


def test_a_path_under_a_quoted_tilde_is_in_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    paths = cli.parse(q5_2_mlp.make_parser(), ["--output-dir", "~/mine"], "q5_2_mlp")[3]
    assert paths.results == tmp_path / "mine"
    args = q5_5_cnn.make_parser().parse_args(["--mlp-results", "~/q5_2_mlp.json", "--data-dir", "~/data"])
    assert (args.mlp_results, args.data_dir) == (tmp_path / "q5_2_mlp.json", tmp_path / "data")


REDRAW = ["--plot-only", "--output-dir", "out"]  # were the abbreviation taken, a redraw in the test's folder


@pytest.mark.parametrize("script, flags", [
    ("q5_3_flooding.py", ["--seed", "1", *REDRAW]), ("q5_3_flooding.py", ["--lr", "0.1", *REDRAW]),  # --seeds, --lrs
    ("q5_2_mlp.py", ["--epoch", "1", *REDRAW]), ("q5_5_cnn.py", ["--mlp-result", "x.json", *REDRAW]),
    ("q1_playground.py", ["--seed", "1", *REDRAW]), ("q2_q4_checks.py", ["--output", "out"]),
    ("benchmark.py", ["--workload", "mlp", "--output-dir", "out"]),
    ("run_all.py", ["--step", "checks", "--output-dir", "out"]),
    ("gpu_job.py", ["--part", "1", "--out", "out", "--qui"]), ("q1_screenshot.py", ["--browse", "x"]),
    ("submission.py", ["--student", "1"])])
def test_a_flag_is_read_only_by_its_whole_name(script, flags, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = run_script(script, *flags)
    abbreviation = [flag for flag in flags if flag.startswith("--") and flag not in REDRAW][-1]
    assert done.returncode == 2 and f"unrecognized arguments: {abbreviation}" in done.stderr, done.stderr


def copy_of_the_project(tmp_path: Path) -> Path:
    """The code in a fresh folder with committed-looking results, figures and snippets beside it."""
    root = tmp_path / "project"
    shutil.copytree(REPO_ROOT / "codes", root / "codes", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("results/q5_2_mlp.json", "report/figures/q5_2_error.png", "report/generated/q5_2.tex"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"the committed {name}")
    return root


def test_a_run_at_other_settings_leaves_the_committed_files_unchanged_and_says_where_it_wrote(tmp_path, mnist_root):
    root = copy_of_the_project(tmp_path)
    committed = snapshot(root / "results", root / "report")
    done = subprocess.run([sys.executable, str(root / "codes" / "q5_2_mlp.py"), "--lr", "0.05", "--epochs", "1",
                           "--batch-size", "16", "--data-dir", str(mnist_root), "--offline", "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [folder] = (root / "results" / "runs").glob("q5_2_mlp-epochs1_lr0.05_batch-size16-*")
    notes = [line for line in done.stdout.splitlines() if says(line, "(epochs 1, lr 0.05, batch-size 16)", str(folder))]
    assert len(notes) == 2  # at the start and at the end
    assert {p: v for p, v in snapshot(root / "results", root / "report").items() if "runs" not in p.parts} == committed
    results = json.loads((folder / "q5_2_mlp.json").read_text())
    assert results["settings_changed"] == ["epochs 1", "lr 0.05", "batch-size 16"]
    assert (folder / "figures" / "q5_2_error.png").exists() and (folder / "generated" / "q5_2.tex").exists()


def test_zip_holds_the_pdf_and_codes_at_the_top_level(tmp_path):
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.5 the current report")
    target = submission.build_zip("2024012345", pdf, submission.code_files(), tmp_path / "dist")
    assert target == tmp_path / "dist" / "2024012345.zip"
    with zipfile.ZipFile(target) as archive:
        names = set(archive.namelist())
        assert archive.read("report_2024012345.pdf") == pdf.read_bytes()
        readme = archive.read("codes/README.md").decode()
    assert {n.split("/")[0] for n in names} == {"report_2024012345.pdf", "codes"}
    assert all(n.count("/") <= 1 for n in names)
    assert not any("__pycache__" in n for n in names)
    mapped = set(re.findall(r"`([\w.]+\.py)`", readme))
    assert mapped and all(f"codes/{name}" in names for name in mapped)
    for question in ("Q1.1", "Q2.1", "Q3.1", "Q4.2", "Q5.2", "Q5.3", "Q5.5"):
        assert question in readme


@pytest.mark.parametrize("bad_id", ["../escape", "a/b", "with space", "-leading", "x" * 33, "caf\u00e9"])
def test_empty_or_path_like_student_id_is_refused(bad_id, tmp_path, monkeypatch):
    monkeypatch.setattr(submission, "DIST_DIR", tmp_path)
    with pytest.raises(common.UserError, match="is not usable"):
        submission.main([f"--student-id={bad_id}"])
    assert not list(tmp_path.iterdir())
