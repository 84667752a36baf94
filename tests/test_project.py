"""The project's own promises: README rendered from index.ipynb, two commands, CI calling the test command, library in sync."""
import re, subprocess, sys
from pathlib import Path
from conftest import ROOT
sys.path.insert(0, str(ROOT / "tools"))
from render_readme import render_readme

def test_readme_is_rendered_from_index():
    assert (ROOT / "README.md").read_text() == render_readme(), "README.md differs from nbs/index.ipynb: run `make readme`"

def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S).group(1)
    cmds = [l for l in first_block.splitlines() if l.strip() and not l.strip().startswith("#")]
    assert cmds == ["make study", "make test"], cmds

def test_ci_runs_the_readme_test_command():
    lines = [l for l in (ROOT / ".ci/run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert lines[-1] == "make test"

def test_no_settings_ini():
    assert not (ROOT / "settings.ini").exists() and not (ROOT / "setup.py").exists()

def test_library_in_sync_with_notebooks(tmp_path):
    "Exporting the notebooks into a copy reproduces attnmed/ exactly."
    import shutil
    dst = tmp_path / "proj"
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(".venv", "outputs", ".git", "__pycache__", "*.egg-info"))
    r = subprocess.run([str(Path(sys.executable).parent / "nbdev-export")], cwd=dst, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for f in (ROOT / "attnmed").glob("*.py"):
        assert (dst / "attnmed" / f.name).read_text() == f.read_text(), f"attnmed/{f.name} is out of step with nbs/: run nbdev-export"

def test_parameterised_notebooks_keep_their_parameters_cell():
    "papermill needs a cell tagged 'parameters'; nbdev-clean must not strip it (allowed_cell_metadata_keys)."
    import nbformat
    for name in ["experiment.ipynb", "report.ipynb"]:
        nb = nbformat.read(ROOT / "nbs" / name, as_version=4)
        assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1, name
