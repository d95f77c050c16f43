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
    chosen = q1_playground.config_from_dict({**q1["best"]["config"], "seed": q1["shown_seed"]})
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
