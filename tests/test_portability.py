"""Any OS and any path: no Unix-only module at import, a lock file that is a symbolic link is never
followed, and the report and the submission build in a folder whose path holds spaces and
non-ASCII characters."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import cli
import common
import submission
from conftest import REPO_ROOT

# what Windows lacks: these modules, and these signals
UNIX_ONLY_MODULES = ("fcntl", "termios", "tty", "pty", "resource", "pwd", "grp", "syslog")
UNIX_ONLY_SIGNALS = ("SIGHUP", "SIGKILL", "SIGQUIT", "SIGALRM", "SIGUSR1", "SIGUSR2", "SIGCHLD", "SIGPIPE")


def test_every_script_imports_without_the_unix_only_modules_and_signals():
    scripts = sorted(p.stem for p in (REPO_ROOT / "codes").glob("*.py"))
    program = f"""
import importlib, signal, sys
sys.path.insert(0, {str(REPO_ROOT / "codes")!r})
for name in {UNIX_ONLY_MODULES!r}:
    sys.modules[name] = None
    try:
        importlib.import_module(name)
        sys.exit(f"{{name}} is still importable")
    except ImportError:
        pass
for name in {UNIX_ONLY_SIGNALS!r}:
    delattr(signal, name)
for script in {scripts!r}:
    importlib.import_module(script)
print("imported", len({scripts!r}))
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"imported {len(scripts)}" and "run_all" in scripts and "cli" in scripts


def test_a_lock_file_that_is_a_symbolic_link_is_refused_and_its_target_untouched(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("a file the lock must not overwrite")
    (tmp_path / "out").mkdir()
    try:
        (tmp_path / "out" / ".q5_2.lock").symlink_to(target)
    except OSError:  # Windows without the right to make one
        pytest.skip("cannot make a symbolic link here")
    paths = cli.OutputPaths(tmp_path / "out", tmp_path / "out" / "figures", tmp_path / "out" / "generated", [])
    with pytest.raises(common.UserError, match=r"cannot use the lock file .*\.q5_2\.lock \(it is a symbolic link\)"):
        paths.claim("q5_2")
    assert target.read_text() == "a file the lock must not overwrite"


def copy_in_an_awkward_folder(tmp_path: Path) -> Path:
    """The project's tracked files of codes/ and report/, the Makefile and the requirements, under a path
    with spaces and non-ASCII characters long enough that TeX wraps its lines inside one of them."""
    root = tmp_path / f"深度学习 作业 ü {'作业' * 25}" / "my homework"
    tracked = subprocess.run(["git", "ls-files", "codes", "report", "Makefile", "requirements.txt"], cwd=REPO_ROOT,
                             capture_output=True, text=True, check=True).stdout.splitlines()
    for name in tracked:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, root / name)
    (root / ".venv").symlink_to((REPO_ROOT / ".venv").resolve())
    return root


@pytest.mark.skipif(not (shutil.which("latexmk") and shutil.which("pdftotext") and shutil.which("make")),
                    reason="needs make, TeX and poppler-utils")
def test_the_report_and_the_submission_build_under_a_path_with_spaces_and_non_ascii_characters(tmp_path):
    root = copy_in_an_awkward_folder(tmp_path)
    make = ["make", "-o", ".venv/.installed"]
    env = {k: v for k, v in os.environ.items() if k not in ("STUDENT_ID", "TEXINPUTS")}
    # a build that fails for a reason outside the report's files (here TeX's search path) ...
    failed = subprocess.run([*make, "report"], cwd=root, env={**env, "TEXINPUTS": str(tmp_path / "nothing")},
                            capture_output=True, timeout=600)
    assert failed.returncode != 0 and b"Fatal error occurred, no output PDF file produced" in failed.stdout
    # ... is not repeated by the next build, which builds the report; then the submission
    done = subprocess.run([*make, "submission", "STUDENT_ID=x1"], cwd=root, env=env, capture_output=True,
                          timeout=600)
    stdout, stderr = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    assert done.returncode == 0 and "Traceback" not in stderr, stderr[-3000:]
    assert f"submission: {root / 'dist' / 'x1.zip'} (the title page shows 'Student ID: x1')" in stdout
    with zipfile.ZipFile(root / "dist" / "x1.zip") as archive:
        assert archive.read("report_x1.pdf")[:5] == b"%PDF-" and "codes/q5_2_mlp.py" in archive.namelist()
    assert (root / "report" / "report.pdf").exists()


@pytest.mark.skipif(not (shutil.which("latexmk") and shutil.which("pdftotext")), reason="needs TeX and poppler-utils")
def test_the_submission_refuses_a_report_with_an_undefined_reference(tmp_path, monkeypatch):
    """What `make report` refuses, the submission without make (Windows) refuses too."""
    report = tmp_path / "report"
    shutil.copytree(cli.REPORT_DIR, report, ignore=shutil.ignore_patterns("*.pdf", "*.aux", "*.log", "*.fdb_latexmk"))
    text = (report / "report.tex").read_text(encoding="utf-8")
    (report / "report.tex").write_text(text.replace("\\end{document}", "See Section~\\ref{no-such-section}.\n\\end{document}"),
                                       encoding="utf-8")
    monkeypatch.setattr(cli, "REPORT_DIR", report)
    with pytest.raises(common.UserError, match=r"(?s)the zip was not made.*Reference `no-such-section' .* undefined"):
        submission.build_pdf("x1", tmp_path / "build")


def test_the_processor_is_named_by_its_model_on_macos_and_windows(monkeypatch):
    """platform.processor() says "arm" on a Mac and a family and stepping on Windows: each OS's own name is read."""
    import types

    import runs
    cores = f"({os.cpu_count()} cores)"
    monkeypatch.setattr(sys, "platform", "darwin")
    asked = []
    monkeypatch.setattr(subprocess, "run", lambda command, **_: asked.append(command) or
                        subprocess.CompletedProcess(command, 0, "Apple M2 Pro\n"))
    assert runs.cpu_name() == f"Apple M2 Pro {cores}" and asked == [["sysctl", "-n", "machdep.cpu.brand_string"]]
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(os, "name", "nt")
    key = r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"
    registry = {key: {"ProcessorNameString": "Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz  "}}
    monkeypatch.setitem(sys.modules, "winreg", types.SimpleNamespace(
        HKEY_LOCAL_MACHINE="HKLM", OpenKey=lambda root, path: contextlib.nullcontext(registry[path]),
        QueryValueEx=lambda values, name: (values[name], 1)))
    assert runs.cpu_name() == f"Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz {cores}"
