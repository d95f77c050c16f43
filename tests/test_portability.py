"""Any OS and any path: no Unix-only module at import, a lock file that is a symbolic link is never
followed, and the report and the submission build in a folder whose path holds spaces and
non-ASCII characters."""
from __future__ import annotations

import subprocess
import sys

import pytest

import cli
import common
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
    (tmp_path / "out" / ".q5_2.lock").symlink_to(target)
    paths = cli.OutputPaths(tmp_path / "out", tmp_path / "out" / "figures", tmp_path / "out" / "generated", [])
    with pytest.raises(common.UserError, match=r"cannot use the lock file .*\.q5_2\.lock \(it is a symbolic link\)"):
        paths.claim("q5_2")
    assert target.read_text() == "a file the lock must not overwrite"
