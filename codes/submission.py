"""Build the zip the course asks for: report_<id>.pdf and codes/ at its top level.

    python codes/submission.py --student-id 2024012345   # or: make submission STUDENT_ID=2024012345

Writes dist/<id>.zip holding report_<id>.pdf and codes/ (its README.md and
every source file). Refuses an empty or path-like id, a missing PDF, and a PDF
older than any figure, generated snippet or .tex file of the report (`make
submission` rebuilds it first).
"""
from __future__ import annotations

import argparse
import re
import zipfile
from pathlib import Path

import cli
import common

CODES_DIR = cli.REPO_ROOT / "codes"
REPORT_DIR = cli.REPO_ROOT / "report"
DIST_DIR = cli.REPO_ROOT / "dist"
STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def check_student_id(student_id: str) -> str:
    if not STUDENT_ID.fullmatch(student_id or ""):
        raise common.UserError(
            f"the student id {student_id!r} is not usable in a file name: use letters, digits, '-' and '_' only."
        )
    return student_id


def report_sources(report_dir: Path = REPORT_DIR) -> list[Path]:
    return sorted([*report_dir.glob("*.tex"), *report_dir.glob("generated/*.tex"), *report_dir.glob("figures/*.png")])


def stale_sources(pdf: Path, sources: list[Path]) -> list[Path]:
    """The report sources newer than the PDF."""
    built = pdf.stat().st_mtime
    return [s for s in sources if s.stat().st_mtime > built]


def code_files(codes_dir: Path = CODES_DIR) -> list[Path]:
    """codes/README.md and every source file (no caches)."""
    return sorted(p for p in codes_dir.iterdir() if p.is_file() and (p.suffix == ".py" or p.name == "README.md"))


def build_zip(student_id: str, pdf: Path, codes: list[Path], dist_dir: Path) -> Path:
    """Write dist/<id>.zip atomically and return its path."""
    check_student_id(student_id)
    target = dist_dir / f"{student_id}.zip"
    with common.replaced_atomically(target) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(pdf, f"report_{student_id}.pdf")
        for path in codes:
            archive.write(path, f"codes/{path.name}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student-id", required=True, help="your student id; names the zip and the PDF inside")
    args = parser.parse_args(argv)
    student_id = check_student_id(args.student_id)
    pdf = REPORT_DIR / "report.pdf"
    if not pdf.exists():
        raise common.UserError(f"{pdf} does not exist: build it with `make report`.")
    stale = stale_sources(pdf, report_sources())
    if stale:
        raise common.UserError(f"{pdf} is older than {stale[0]} (and {len(stale) - 1} more): rebuild it with `make report`.")
    target = build_zip(student_id, pdf, code_files(), DIST_DIR)
    with zipfile.ZipFile(target) as archive:
        for name in archive.namelist():
            print(f"  {name}")
    print(f"submission: {target}")
    return 0


if __name__ == "__main__":
    cli.run_main(main)
