"""``lcamlab lab``: open JupyterLab on the repository, with the notebooks in front.

JupyterLab is rooted at the repository (so ``figures/`` and ``data/`` are reachable
from its file browser and from the notebooks' relative paths) and opens the
``notebooks/`` folder. As root (a container, a course machine) it adds
``--allow-root``, which JupyterLab otherwise demands. Anything after ``--`` goes
to JupyterLab unchanged, e.g. ``lcamlab lab -- --port 8890``.

Notebooks are stored without outputs; JupyterLab's autosave writes outputs into
them. Before committing, strip them (the README's "Working on the notebooks"
section sets up ``nbstripout`` as a git filter, which does it automatically).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from lcamlab import paths

__all__ = ["configure_parser", "main", "lab_command"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lcamlab lab``."""
    parser.add_argument("--no-browser", action="store_true", help="start the server without opening a browser")
    parser.add_argument("--print-command", action="store_true", help="print the JupyterLab command and exit")
    parser.add_argument("jupyter_args", nargs=argparse.REMAINDER,
                        help="arguments after -- go to JupyterLab unchanged (e.g. -- --port 8890)")


def lab_command(*, no_browser: bool = False, extra: list[str] | None = None) -> list[str]:
    """The ``jupyter lab`` command line: rooted at the repository, opening ``notebooks/``."""
    extra = [a for a in (extra or []) if a != "--"]
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={paths.REPO_ROOT}",
               f"--LabApp.default_url=/lab/tree/{paths.NOTEBOOKS_DIR.name}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # JupyterLab refuses to run as root without it
    if no_browser:
        command.append("--no-browser")
    return command + extra


def output_guard_installed() -> bool | None:
    """Whether the checkout strips notebook outputs on commit (nbstripout's git filter); None outside git."""
    import subprocess

    try:
        done = subprocess.run(["git", "config", "--get", "filter.nbstripout.clean"], cwd=paths.REPO_ROOT,
                              capture_output=True, text=True, timeout=10)
        inside = subprocess.run(["git", "rev-parse", "--git-dir"], cwd=paths.REPO_ROOT, capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if inside.returncode != 0:
        return None
    return bool(done.stdout.strip())


def main(args: argparse.Namespace) -> int:
    """Start JupyterLab (replacing this process), or print its command line."""
    command = lab_command(no_browser=args.no_browser, extra=list(args.jupyter_args))
    if args.print_command:
        print(" ".join(command))
        return 0
    if output_guard_installed() is False:
        print("lcamlab lab: notebook outputs are not stripped on commit in this checkout; to keep them out of "
              "git run once: pip install nbstripout && nbstripout --install --attributes .git/info/attributes",
              file=sys.stderr)
    if shutil.which(command[0]) is None and not os.path.exists(command[0]):
        raise ValueError(f"Python interpreter {command[0]} not found: reinstall lcamlab with "
                         f"`pip install -e .` in your environment")
    os.chdir(paths.REPO_ROOT)
    os.execv(command[0], command)  # JupyterLab takes over this process (Ctrl-C stops the server)
    return 0  # not reached
