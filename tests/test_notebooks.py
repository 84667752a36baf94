"""Every notebook in `nbs/` runs top to bottom as `nbdev-test` runs it (`make nbtest` is the same check on its own). Here the notebooks
are dealt into two groups of about equal cost, each one `nbdev-test` process (the imports are paid once per group), so that they share
pytest's two workers with the other tests instead of running before them."""
import re, subprocess
import pytest
from conftest import BIN, ROOT

COST = {"explain.ipynb": 61, "report.ipynb": 42, "03_train.ipynb": 21, "05_statistics.ipynb": 20, "02b_backbones.ipynb": 4, "02c_attention.ipynb": 6, "02d_models.ipynb": 8, "experiment.ipynb": 8,
        "01a_synthetic.ipynb": 7, "00_config.ipynb": 6, "01e_readers.ipynb": 6, "07c_search.ipynb": 6, "00b_testing.ipynb": 5}   # seconds (nbdev-test --timing), 3 otherwise
NOTEBOOKS = sorted(p.name for p in (ROOT / "nbs").glob("*.ipynb"))

def groups(names, n=2):
    "Deal `names` into `n` groups of about equal cost, costliest first."
    out, load = [[] for _ in range(n)], [0] * n
    for name in sorted(names, key=lambda x: -COST.get(x, 3)):
        i = load.index(min(load)); out[i].append(name); load[i] += COST.get(name, 3)
    return out

GROUPS = groups(NOTEBOOKS)

def test_every_notebook_is_in_a_group():
    assert sorted(n for g in GROUPS for n in g) == NOTEBOOKS and {"00_config.ipynb", "experiment.ipynb", "explain.ipynb", "index.ipynb"} <= set(NOTEBOOKS)

@pytest.mark.parametrize("group", [pytest.param(g, marks=pytest.mark.cost(10 + sum(COST.get(n, 3) for n in g)), id=f"group{i}") for i, g in enumerate(GROUPS)])
def test_notebooks_run(group):
    pattern = "^(" + "|".join(re.escape(n) for n in group) + ")$"
    r = subprocess.run([str(BIN / "nbdev-test"), "--n-workers", "1", "--file-re", pattern, "--timing"], capture_output=True, text=True, cwd=ROOT, timeout=1200)
    assert r.returncode == 0, f"nbdev-test failed on {group}:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    ran = set(re.findall(r"^(\S+\.ipynb): \d+ secs", r.stdout + r.stderr, re.M))
    assert ran == set(group), f"expected to run {sorted(group)}, ran {sorted(ran)}"
