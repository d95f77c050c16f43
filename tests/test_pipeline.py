"""The one-command pipeline: the quick pass and the submission zip."""
from __future__ import annotations

import argparse
import json
import os
import re
import zipfile

import pytest

import common
import cli
import run_all
import submission
from conftest import run_script, write_mnist


def snapshot(*folders):
    """Every file under the folders with its modification time and size."""
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for f in folders if f.exists() for p in f.rglob("*")
            if p.is_file()}


def test_quick_pipeline_runs_every_step_and_never_touches_the_real_results(tmp_path):
    data = write_mnist(tmp_path / "data", n_train=2500, n_test=300)
    # results/quick/ (make quick's folder) included: the tests write only to temporary folders
    real = (cli.RESULTS_DIR, cli.FIGURES_DIR, cli.GENERATED_DIR)
    before = snapshot(*real)
    quick = tmp_path / "quick"
    done = run_script("run_all.py", "--quick", "--output-dir", str(quick), "--data-dir", str(data), "--offline")
    assert done.returncode == 0, done.stderr[-3000:]
    assert snapshot(*real) == before
    summary = json.loads((quick / "run_summary.json").read_text())
    assert summary["mode"] == "quick" and summary["completed"]
    assert [s["key"] for s in summary["steps"]] == list(run_all.STEPS)
    assert all(s["returncode"] == 0 and s["seconds"] > 0 for s in summary["steps"])
    mlp = next(s for s in summary["steps"] if s["key"] == "q5_2")["key_numbers"]["q5_2_mlp"]
    assert 0 <= mlp["val_error"] <= 100
    for figure in ("q1_1_spiral_best.png", "q5_2_error.png", "q5_3_chosen_level.png", "q5_5_cnn_vs_mlp.png",
                   "q5_5_step_size.png", "q4_1_blur.png"):
        assert (quick / "figures" / figure).exists()

    # rerunning one step keeps the record of the others
    again = run_script("run_all.py", "--quick", "--output-dir", str(quick), "--steps", "q5_5", "--data-dir", str(data),
                       "--offline")
    assert again.returncode == 0, again.stderr[-3000:]
    updated = json.loads((quick / "run_summary.json").read_text())
    assert updated["completed"] and updated["steps_run_last"] == ["q5_5"]
    rerun = [s["key"] == "q5_5" for s in summary["steps"]].index(True)
    assert [s for i, s in enumerate(updated["steps"]) if i != rerun] == [s for i, s in enumerate(summary["steps"]) if i != rerun]
    assert updated["steps"][rerun]["key"] == "q5_5" and updated["steps"][rerun] != summary["steps"][rerun]
    assert updated["total_seconds"] == pytest.approx(sum(step["seconds"] for step in updated["steps"]))


@pytest.mark.parametrize("epochs, subset, root", [
    (common.ASSIGNMENT["epochs"], None, None),  # the assignment's run: the real folders
    (2, None, cli.QUICK_DIR),
    (common.ASSIGNMENT["epochs"], 1000, cli.QUICK_DIR),
])
def test_shortened_runs_write_under_the_quick_folder(epochs, subset, root):
    paths = cli.output_paths(None, cli.is_shortened(argparse.Namespace(epochs=epochs, subset=subset)))
    if root is None:
        assert (paths.results, paths.figures, paths.generated) == (
            cli.RESULTS_DIR, cli.FIGURES_DIR, cli.GENERATED_DIR)
    else:
        assert (paths.results, paths.figures, paths.generated) == (root, root / "figures", root / "generated")


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


@pytest.mark.parametrize("bad_id", ["", "../escape", "a/b", "with space", "-leading"])
def test_empty_or_path_like_student_id_is_refused(bad_id, tmp_path):
    with pytest.raises(common.UserError, match="not usable in a file name"):
        submission.build_zip(bad_id, tmp_path / "r.pdf", [], tmp_path)
    assert not list(tmp_path.iterdir())
    done = run_script("submission.py", f"--student-id={bad_id}")
    assert done.returncode == 1 and "not usable" in done.stderr and "Traceback" not in done.stderr


def test_a_pdf_older_than_a_figure_is_stale(tmp_path):
    pdf, figure = tmp_path / "report.pdf", tmp_path / "figure.png"
    pdf.write_bytes(b"pdf")
    figure.write_bytes(b"png")
    os.utime(pdf, (1_000, 1_000))
    os.utime(figure, (2_000, 2_000))
    assert submission.stale_sources(pdf, [figure]) == [figure]
    os.utime(pdf, (3_000, 3_000))
    assert submission.stale_sources(pdf, [figure]) == []
