"""The report's inputs checked, and the zip the course asks for: report_<id>.pdf and codes/.

    make submission STUDENT_ID=2024012345                 # or: STUDENT_ID=2024012345 python codes/submission.py
    python codes/submission.py --check-report             # what `make report` runs before LaTeX

Builds the report with the id on its title page into dist/build/, checks that the PDF's title page
shows it, and writes dist/<id>.zip: report_<id>.pdf and codes/ (README.md and every source file).
The id comes from $STUDENT_ID (or --student-id), as data: 1 to 32 letters, digits, '-' and '_'.
--check-report fails on any figure or snippet the report includes that does not exist, naming the
script that makes it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import cli
import common
import runs

DIST_DIR = cli.REPO_ROOT / "dist"
STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
# (the file name's start, the command that writes it), the longer starts first: the first that matches
MAKERS = [(("q1_1_page", "q1_page"), "codes/q1_screenshot.py"), ("q1", "codes/q1_playground.py"),
          (("q2_", "q3_", "q4_", "checks"), "codes/q2_q4_checks.py"), ("q5_2", "codes/q5_2_mlp.py"),
          ("q5_3", "codes/q5_3_flooding.py"), ("q5_5_step_size", "codes/q5_5_cnn.py --lrs 0.1,0.01 --epochs 158"),
          ("q5_5", "codes/q5_5_cnn.py")]


def check_student_id(student_id: str | None) -> str:
    if not student_id:
        raise common.UserError("no student id: set STUDENT_ID=... (make submission STUDENT_ID=2024012345).")
    if not STUDENT_ID.fullmatch(student_id):
        shown = repr(student_id) if len(student_id) <= 40 else f"of {len(student_id)} characters"
        raise common.UserError(f"the student id {shown} is not usable: use 1 to 32 letters, digits, "
                               "'-' and '_', starting with a letter or a digit.")
    return student_id


def report_inputs() -> list[Path]:
    """Every figure and snippet the report includes (\\includegraphics, \\input), as paths."""
    text = re.sub(r"(?<!\\)%.*", "", (cli.REPORT_DIR / "report.tex").read_text(encoding="utf-8"))
    figures = [cli.FIGURES_DIR / name for name in re.findall(r"\\includegraphics(?:\[[^]]*\])?\{([^}]+)\}", text)]
    snippets = [cli.REPORT_DIR / name for name in re.findall(r"\\input\{([^}]+)\}", text)]
    return list(dict.fromkeys(figures + snippets))


def missing_inputs(inputs: list[Path]) -> list[str]:
    """The inputs that do not exist, each with the command that makes it."""
    missing = [path.relative_to(cli.REPO_ROOT) for path in inputs if not path.exists()]
    makers = [next((command for start, command in MAKERS if path.name.startswith(start)), "a script in codes/")
              for path in missing]
    return [f"{path} (made by python {maker}; a committed one comes back with `git checkout -- {path}` or `make plots`)"
            for path, maker in zip(missing, makers)]


def build_pdf(student_id: str, build_dir: Path) -> Path:
    """The report with the id on its title page, built apart from report/ so the committed PDF stays as it is."""
    for tool in ("latexmk", "pdftotext"):
        if shutil.which(tool) is None:
            raise common.UserError(f"{tool} is missing: install TeX with latexmk (TeX Live, MacTeX or MiKTeX) and "
                                   "poppler's pdftotext (docs/report.md); on Debian or Ubuntu: apt-get install -y "
                                   "--no-install-recommends latexmk texlive-latex-recommended texlive-fonts-recommended "
                                   "texlive-latex-extra texlive-science poppler-utils")
    build_dir.mkdir(parents=True, exist_ok=True)
    name = f"report_{student_id}"
    (build_dir / f"{name}.tex").write_text(f"\\def\\StudentID{{{student_id}}}\\input{{report.tex}}\n")
    # TEXINPUTS: the report's own folder is searched for report.tex, figures/ and generated/, then (the empty entry
    # after the separator, ";" on Windows) TeX's own folders; the output is bytes, as TeX wraps lines at a byte
    # count, splitting a UTF-8 path's characters
    done = subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"],
                          cwd=build_dir, env={**os.environ, "TEXINPUTS": f"{cli.REPORT_DIR}//{os.pathsep}"}, capture_output=True)
    pdf, log = build_dir / f"{name}.pdf", build_dir / f"{name}.log"
    if done.returncode != 0 or not pdf.exists():
        (build_dir / f"{name}.fdb_latexmk").unlink(missing_ok=True)  # else latexmk repeats the failure unbuilt
        output = (log.read_text(errors="replace") if log.exists() else "") or done.stdout.decode(errors="replace")
        output += done.stderr.decode(errors="replace")  # where a latexmk that cannot start says why
        raise common.UserError(f"LaTeX failed to build {pdf}:\n" + "\n".join(output.splitlines()[-20:]))
    # what `make report` refuses too: a PDF that prints ?? for a reference or drops a character
    if flaws := re.findall(r".*(?:undefined|Missing character).*", log.read_text(errors="replace")):
        raise common.UserError(f"{pdf} has flaws ({log}); the zip was not made:\n" + "\n".join(flaws[:10]))
    title_page = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"],
                                capture_output=True).stdout.decode(errors="replace")
    if f"Student ID: {student_id}" not in title_page:
        raise common.UserError(f"{pdf}'s title page does not show 'Student ID: {student_id}'; the zip was not made.")
    return pdf


def code_files() -> list[Path]:
    """codes/README.md and every source file (no caches)."""
    return sorted(p for p in (cli.REPO_ROOT / "codes").iterdir() if p.suffix == ".py" or p.name == "README.md")


def build_zip(student_id: str, pdf: Path, codes: list[Path], dist_dir: Path) -> Path:
    """Write dist/<id>.zip atomically (the id checked by check_student_id) and return its path."""
    def write(file) -> None:
        with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(pdf, f"report_{student_id}.pdf")
            for path in codes:
                archive.write(path, f"codes/{path.name}")

    return runs.write_atomic(dist_dir / f"{student_id}.zip", write)


def main(argv: list[str] | None = None) -> int:
    parser = cli.script_parser(__doc__)
    parser.add_argument("--student-id", default=os.environ.get("STUDENT_ID"),
                        help="your student id (default: $STUDENT_ID); it names the zip and is printed on the title page")
    parser.add_argument("--check-report", action="store_true", help="only check that the report's inputs exist")
    args = parser.parse_args(argv)
    missing = missing_inputs(report_inputs())
    if missing:
        raise common.UserError("the report includes files that do not exist:\n  " + "\n  ".join(missing))
    if args.check_report:
        return 0
    student_id = check_student_id(args.student_id)
    pdf = build_pdf(student_id, DIST_DIR / "build")
    target = build_zip(student_id, pdf, code_files(), DIST_DIR)
    with zipfile.ZipFile(target) as archive:
        print("\n".join(f"  {name}" for name in archive.namelist()))
    print(f"submission: {target} (the title page shows 'Student ID: {student_id}')")
    return 0


if __name__ == "__main__":
    cli.run_main(main)
