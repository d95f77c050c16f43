"""Q1.1's screenshot of the page: the committed one belongs to the committed Q1 run, and without a browser or a
build of the page the script stops with what to do, writing nothing."""
from __future__ import annotations

import json
import sys

import pytest

import cli
import common
import playground as pg
import q1_playground
import q1_screenshot

OUTPUTS = (cli.RESULTS_DIR / q1_screenshot.RESULTS_FILE, cli.FIGURES_DIR / q1_screenshot.FIGURE_FILE,
           cli.GENERATED_DIR / q1_screenshot.SNIPPET_FILE)


def test_the_committed_screenshot_is_of_the_chosen_configuration_at_the_reports_epochs():
    q1 = json.loads((cli.RESULTS_DIR / q1_playground.RESULTS_FILE).read_text())
    page = json.loads(OUTPUTS[0].read_text())
    chosen = pg.Config(**{**q1["best"]["config"], "seed": q1["shown_seed"]})
    assert page["address"] == pg.page_url(chosen), "rerun codes/q1_screenshot.py after Q1"
    assert page["epoch"] == q1["epochs"] and page["source"] in ("live", "local build")
    assert [f"{page['train_loss']:.3f}", f"{page['test_loss']:.3f}"] == list(page["shown_losses"].values())
    assert OUTPUTS[2].read_text() == q1_screenshot.snippet(page)


def snapshot() -> list:
    return [path.stat().st_mtime_ns for path in OUTPUTS]


def test_without_playwright_it_says_what_to_install_and_writes_nothing(monkeypatch):
    before = snapshot()
    monkeypatch.setitem(sys.modules, "playwright", None)  # an import of it fails
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)
    with pytest.raises(common.UserError, match="requirements-screenshot.txt"):
        q1_screenshot.main([])
    assert snapshot() == before


def test_a_folder_that_is_not_a_build_of_the_page_is_refused(tmp_path):
    before = snapshot()
    with pytest.raises(common.UserError, match="not a build of the page"):
        q1_screenshot.main(["--local-build", str(tmp_path)])
    assert snapshot() == before


def test_a_capture_is_written_as_the_figure_its_record_and_the_report_macros(monkeypatch, tmp_path):
    """The writing half, with the browser replaced by its result: every output lands, through the atomic writer."""
    page = {"epoch": 500, "train_loss": 0.0001, "test_loss": 0.0099, "shown_losses": {"train": "0.000", "test": "0.010"},
            "browser": "Chromium 1"}
    monkeypatch.setattr(q1_screenshot, "capture", lambda address, epochs, browser, local_only: (b"png", page))
    for name in ("FIGURES_DIR", "GENERATED_DIR"):
        monkeypatch.setattr(cli, name, tmp_path / name)
    monkeypatch.setattr(cli, "RESULTS_DIR", tmp_path / "results")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / q1_playground.RESULTS_FILE).write_text(OUTPUTS[0].parent.joinpath(
        q1_playground.RESULTS_FILE).read_text())
    assert q1_screenshot.main([]) == 0
    record = json.loads((tmp_path / "results" / q1_screenshot.RESULTS_FILE).read_text())
    assert record["test_loss"] == 0.0099 and record["source"] == "live"
    assert (tmp_path / "FIGURES_DIR" / q1_screenshot.FIGURE_FILE).read_bytes() == b"png"
    assert (tmp_path / "GENERATED_DIR" / q1_screenshot.SNIPPET_FILE).read_text() == q1_screenshot.snippet(record)


def test_a_results_file_of_another_question_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "RESULTS_DIR", tmp_path)
    committed = json.loads(OUTPUTS[0].parent.joinpath(q1_playground.RESULTS_FILE).read_text())
    (tmp_path / q1_playground.RESULTS_FILE).write_text(json.dumps({**committed, "question": "Q5.2"}))
    with pytest.raises(common.UserError, match="is not a results file of Q1"):
        q1_screenshot.main([])
