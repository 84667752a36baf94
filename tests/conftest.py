import os, subprocess, sys
from pathlib import Path
import pytest, yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

def tiny_study(tmp: Path, name="tiny", **over) -> Path:
    "Write a small, fast study YAML into `tmp` and return its path."
    raw = dict(name=name, datasets=[dict(name="synth-derm", format="synthetic", path="data", n_train=64, n_val=32, n_test=32)],
               archs=["resnet10t"], attentions=["none", "se"], augment=[False], seeds=[0],
               epochs=1, image_size=32, batch_size=32, lr=0.003, device="cpu")
    raw.update(over)
    f = tmp / f"{name}.yaml"
    f.write_text(yaml.safe_dump(raw, sort_keys=False))
    return f

def run(cmd, **kw):
    "Run an attnmed command line; returns the CompletedProcess (text)."
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore", **kw.pop("env", {})}
    exe = BIN / cmd[0]
    return subprocess.run([str(exe), *cmd[1:]], capture_output=True, text=True, env=env, cwd=kw.pop("cwd", ROOT), timeout=600, **kw)

def run_here(cmd, cwd=None):
    """Run an attnmed command line in this process (its `attnmed.cli` function): what `run` checks, without starting Python and
    importing torch again (~10 s a call). Returns a CompletedProcess; exit code 0 when the function returns."""
    import contextlib, io
    import attnmed.cli as cli
    fn = {"attnmed-grid": cli.grid_cli, "attnmed-report": cli.report_cli, "attnmed-init": cli.init_cli, "attnmed-search": cli.search_cli, "attnmed-plan": cli.plan_cli}[cmd[0]]
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.chdir(cwd or ROOT), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: fn([str(a) for a in cmd[1:]])
        except SystemExit as e: code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return subprocess.CompletedProcess(cmd, code, out.getvalue(), err.getvalue())

@pytest.fixture
def tmp(tmp_path): return tmp_path

def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run the tests marked slow: the CI-size studies end to end, the plugin, search and Ray runs, explanations of trained models (`make test-all`)")

def pytest_configure(config):
    config.addinivalue_line("markers", "cost(seconds): the test's rough duration on 2 cores; the costly tests start first, spread over the workers")
    config.addinivalue_line("markers", "slow: an end-to-end run of minutes; skipped unless --slow (`make test-all`), as nbdev-test skips cells flagged slow")

def pytest_collection_modifyitems(config, items):
    """Order the tests so that two xdist workers (`--dist worksteal`, which gives each worker one contiguous half of the list and steals
    from the tails) each start with half of the costly tests, longest first, and end with cheap ones to steal: the run is not left
    waiting on one long test that started last."""
    if not config.getoption("--slow"):
        skip = pytest.mark.skip(reason="slow: run with --slow (make test-all)")
        for it in items:
            if it.get_closest_marker("slow"): it.add_marker(skip)
    cost = lambda it: 0 if it.get_closest_marker("slow") and not config.getoption("--slow") else it.get_closest_marker("cost").args[0] if it.get_closest_marker("cost") else 0
    costly = sorted([it for it in items if cost(it)], key=cost, reverse=True)
    cheap = [it for it in items if not cost(it)]
    halves, loads = [[], []], [0.0, 0.0]
    for it in costly:                                  # longest first onto the less loaded half
        h = loads.index(min(loads)); halves[h].append(it); loads[h] += cost(it)
    n_first = len(items) // 2                          # worksteal hands the first worker exactly this many
    rest = iter(cheap)
    for it in rest:
        if len(halves[0]) >= n_first: halves[1].append(it); break
        halves[0].append(it)
    halves[1].extend(rest)
    items[:] = halves[0] + halves[1]
