"""Q1.1: a screenshot of the real Neural Network Playground at the chosen configuration, with the page's losses.

Reads Q1.1's chosen configuration and its shown seed from results/q1_playground.json, opens the page at
that configuration's address (playground.page_url) in Chromium, presses play, pauses at exactly the epochs
of the Q1 runs (500; from inside the page, as the epoch counter changes) and captures the playground (data,
features, network, output with its loss curve) at 1600 px wide. The losses are the page's own, at full
precision (the values its loss chart holds; it displays them to 3 decimals).

    pip install -r requirements-screenshot.txt && python -m playwright install chromium
    python codes/q1_screenshot.py                                  # the live page (needs the internet)
    python codes/q1_screenshot.py --local-build PLAYGROUND/dist    # a local build, offline

A local build of tensorflow/playground: `npm ci && mkdir -p dist && npm run build` in its clone; it is served
on 127.0.0.1 and every other request is refused (install the Roboto and Material Icons fonts, which the page
otherwise loads from the internet). --browser names a Chromium executable instead of Playwright's own.

Writes results/q1_page.json, report/figures/q1_1_page.png and report/generated/q1_page.tex.
"""
from __future__ import annotations

import contextlib
import datetime
import functools
import http.server
import threading
import urllib.parse
from dataclasses import asdict
from pathlib import Path

import cli
import common
import latex
import playground as pg
import q1_playground
import runs

PAGE = "https://playground.tensorflow.org/"
WIDTH = 1600  # the whole playground fits side by side
RESULTS_FILE = "q1_page.json"
FIGURE_FILE = "q1_1_page.png"
SNIPPET_FILE = "q1_page.tex"
INSTALL = ("pip install -r requirements-screenshot.txt, then `python -m playwright install chromium` "
           "or give an installed Chromium with --browser (e.g. --browser /usr/bin/chromium)")
# from inside the page: press play, then pause as soon as the epoch counter shows `target` (the observer runs
# before the page's timer can start another epoch); resolves to the epoch shown
PLAY_UNTIL = """target => new Promise(resolve => {
  const counter = document.querySelector('#iter-number');
  const button = document.querySelector('#play-pause-button');
  const observer = new MutationObserver(() => {
    const epoch = parseInt(counter.textContent.replace(/,/g, ''), 10);
    if (epoch >= target) { observer.disconnect(); button.click(); resolve(epoch); }
  });
  observer.observe(counter, {childList: true, characterData: true, subtree: true});
  button.click();
})"""
# what the page shows, and its loss chart's data: [training loss, test loss] for epochs 0, 1, ... at full precision
READ_PAGE = """() => ({
  epoch: parseInt(document.querySelector('#iter-number').textContent.replace(/,/g, ''), 10),
  shown: [document.querySelector('#loss-train').textContent, document.querySelector('#loss-test').textContent],
  chart: document.querySelector('#linechart path').__data__.map(point => point.y),
})"""
# the part of the page to capture: the controls' bar (epoch, learning rate, activation, regularization) and the
# playground below it with its hints, in page coordinates
REGION = """() => {
  const bar = document.querySelector('#top-controls').getBoundingClientRect();
  const main = document.querySelector('#main-part').getBoundingClientRect();
  const inside = [...document.querySelectorAll('#main-part *')].map(e => e.getBoundingClientRect())
    .filter(r => r.width > 0 && r.height > 0);
  const bottom = Math.max(main.bottom, ...inside.map(r => r.bottom));
  return {x: main.left - 20 + scrollX, y: bar.top + scrollY, width: main.width + 40, height: bottom + 10 - bar.top};
}"""


@contextlib.contextmanager
def local_build(folder: Path):
    """The page's built files served on 127.0.0.1 (a free port) while in the `with` block, which gets its address."""
    if not (folder / "index.html").is_file() or not (folder / "bundle.js").is_file():
        raise common.UserError(f"{folder} is not a build of the page (no index.html and bundle.js): build it "
                               "with `npm ci && mkdir -p dist && npm run build` and give its dist/ folder.")
    quiet = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *args: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(quiet, directory=folder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def capture(address: str, epochs: int, browser_path: str | None, local_only: bool) -> tuple[bytes, dict]:
    """Open `address`, train to `epochs`; the playground's screenshot (PNG) and the page's numbers."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        raise common.UserError(f"the screenshot needs Playwright and Chromium: {INSTALL}.") from None
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=browser_path)
        except Error as err:
            raise common.UserError(f"cannot start Chromium ({str(err).splitlines()[0]}): {INSTALL}.") from None
        try:  # a page that does not load or answer: a message, not a traceback
            page = browser.new_page(viewport={"width": WIDTH, "height": 1000}, device_scale_factor=2)  # sharp in print
            if local_only:  # web fonts and analytics: the installed fonts stand in
                page.route("**/*", lambda route: route.continue_() if urllib.parse.urlsplit(route.request.url).hostname
                           == "127.0.0.1" else route.abort())
            page.goto(address, wait_until="load")
            page.wait_for_selector("#linechart path", state="attached")
            reached = page.evaluate(PLAY_UNTIL, epochs)
            page.wait_for_timeout(500)  # the pause has taken effect, and nothing moves any more
            state = page.evaluate(READ_PAGE)
            if reached != epochs or state["epoch"] != epochs or len(state["chart"]) != epochs + 1:
                raise common.UserError(f"the page did not pause at epoch {epochs} (it shows {state['epoch']}); "
                                       "nothing was written.")
            png = page.screenshot(clip=page.evaluate(REGION), full_page=True)
            version = browser.version
        except Error as err:
            raise common.UserError(f"the page at {address} failed: {str(err).splitlines()[0]}") from None
        finally:
            browser.close()
    train_loss, test_loss = state["chart"][-1]
    if [f"{train_loss:.3f}", f"{test_loss:.3f}"] != state["shown"]:
        raise common.UserError(f"the page's chart ({train_loss}, {test_loss}) disagrees with its display {state['shown']}.")
    return png, {"epoch": state["epoch"], "train_loss": train_loss, "test_loss": test_loss,
                 "shown_losses": {"train": state["shown"][0], "test": state["shown"][1]},
                 "browser": f"Chromium {version}"}


def snippet(record: dict) -> str:
    return latex.latex_macros(f"codes/q1_screenshot.py from results/{RESULTS_FILE}", {
        "QOnePageURL": record["address"].replace("#", "\\#"),  # in a macro, \url needs only "#" escaped
        "QOnePageEpoch": record["epoch"],
        "QOnePageTestLoss": f"{record['test_loss']:.4f}",
        "QOnePageTrainLoss": f"{record['train_loss']:.4f}",
        "QOnePageSource": "the live page" if record["source"] == "live" else "a local build of the page",
    })


def main(argv: list[str] | None = None) -> int:
    parser = cli.script_parser(__doc__)
    parser.add_argument("--local-build", type=cli.given_path, default=None, metavar="DIR",
                        help="serve this build of the page (its dist/ folder) on 127.0.0.1 and refuse every "
                        "other request (default: the live page, https://playground.tensorflow.org)")
    parser.add_argument("--browser", default=None, metavar="PATH",
                        help="a Chromium executable (default: Playwright's own, `python -m playwright install chromium`)")
    args = parser.parse_args(argv)
    results = runs.read_results(cli.RESULTS_DIR / q1_playground.RESULTS_FILE, ("best", "shown_seed", "epochs"),
                                q1_playground.misplaced_value, question="Q1")
    if results.get("settings_changed"):
        raise common.UserError("results/q1_playground.json is not the assignment's Q1 run: rerun "
                               "`python codes/q1_playground.py` first.")
    config = pg.Config(**{**results["best"]["config"], "seed": results["shown_seed"]})
    address = pg.page_url(config)
    print(f"Q1.1 on the page: {address}", flush=True)
    local = args.local_build is not None
    with local_build(args.local_build) if local else contextlib.nullcontext(PAGE) as root:
        png, page_numbers = capture(address.replace(PAGE, root), results["epochs"], args.browser, local_only=local)
    record = {"address": address, "source": "local build" if local else "live", "config": asdict(config),
              **page_numbers, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    figure_path = runs.write_atomic(cli.FIGURES_DIR / FIGURE_FILE, lambda file: file.write(png))
    results_path = runs.write_atomic(cli.RESULTS_DIR / RESULTS_FILE, record)
    runs.write_atomic(cli.GENERATED_DIR / SNIPPET_FILE, snippet(record))
    print(f"epoch {record['epoch']}: training loss {record['train_loss']:.6f}, test loss {record['test_loss']:.6f} "
          f"({record['browser']})")
    print(f"figure: {figure_path}\nresults: {results_path}")
    return 0


if __name__ == "__main__":
    cli.run_main(main)
