"""Running grids at scale: kill-and-resume of a real run, GPU pinning of kernels, the search feeding the grid, and the Ray executor."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import nbformat, pytest, yaml
from conftest import ROOT, BIN, tiny_study, run
from attnmed.config import load_study
from attnmed.grid import run_cell
from attnmed.study import study_cells, cell_dir

def test_kill_and_resume_loses_and_redoes_nothing(tmp):
    study = tiny_study(tmp, name="kill", seeds=[0, 1])          # 4 cells
    out = tmp / "out"
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    p = subprocess.Popen([str(BIN / "attnmed-grid"), str(study), "--out", str(out)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(out.glob("kill/**/metrics.json"))) < 1: time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL)          # the grid and its running kernel, mid-cell
    p.wait()
    done = {f.parent: f.stat().st_mtime_ns for f in out.glob("kill/**/metrics.json")}
    assert 1 <= len(done) < 4, f"killed too late: {len(done)} done"
    for f in done: json.loads((f / "metrics.json").read_text())    # every finished cell is whole
    r = run(["attnmed-grid", str(study), "--out", str(out)])
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{4 - len(done)} done, {len(done)} skipped, 0 failed of 4 cells" in r.stdout
    assert {f.parent: f.stat().st_mtime_ns for f in out.glob("kill/**/metrics.json") if f.parent in done} == done, "finished cells untouched"
    assert len(list(out.glob("kill/**/metrics.json"))) == 4

def test_kernel_env_pins_gpu(tmp):
    "A cell's kernel sees the CUDA_VISIBLE_DEVICES of its job slot (the grid process does not change)."
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("out_dir = None", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import os, json, pathlib\npathlib.Path(out_dir, 'metrics.json').write_text(json.dumps({'cvd': os.environ.get('CUDA_VISIBLE_DEVICES')}))")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    f = tmp / "probe.ipynb"; nbformat.write(nb, f)
    cell = study_cells(load_study(tiny_study(tmp)))[0]
    assert run_cell(cell, tmp / "out" / "tiny", notebook=f, env={"CUDA_VISIBLE_DEVICES": 3}) == "done"
    assert json.loads((cell_dir(tmp / "out" / "tiny", cell) / "metrics.json").read_text())["cvd"] == "3"
    assert os.environ.get("CUDA_VISIBLE_DEVICES") != "3"

def test_search_feeds_the_grid(tmp):
    study = tiny_study(tmp, name="tuned", attentions=["se"], seeds=[0], search=dict(trials=2, lr=[1e-3, 5e-3], batch_size=[16, 32]))
    out = tmp / "out"
    r = run(["attnmed-grid", str(study), "--out", str(out)])
    assert r.returncode == 2 and "run `attnmed-search" in r.stderr, "the grid refuses to run untuned cells of a study with a search"
    r = run(["attnmed-search", str(study), "--out", str(out)])
    assert r.returncode == 0, r.stderr[-2000:]
    best = json.loads((out / "tuned/search/synth-derm/resnet10t/se/noaug/best.json").read_text())
    assert (out / "tuned/search.sqlite3").exists() and best["n_complete"] + best["n_pruned"] == 2
    r = run(["attnmed-grid", str(study), "--out", str(out)])
    assert r.returncode == 0, r.stderr[-2000:]
    for seed in (0,):
        params = json.loads((out / f"tuned/synth-derm/resnet10t/se/noaug/seed{seed}/metrics.json").read_text())["params"]
        assert params["lr"] == best["params"]["lr"] and params["batch_size"] == best["params"]["batch_size"]
        assert params["tuned"] == best["params"]
    r = run(["attnmed-report", str(out / "tuned"), "--no-explain"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Tuned hyperparameters" in (out / "tuned/report.html").read_text()

def test_ray_executor_on_a_local_cluster(tmp):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=1, include_dashboard=False))
    cluster.add_node(num_cpus=1)                                     # two nodes, one CPU each: two cells at a time
    try:
        study = tiny_study(tmp, name="distributed")
        r = run(["attnmed-grid", str(study), "--out", str(tmp / "out"), "--executor", "ray", "--address", cluster.address])
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
        assert "grid distributed: 2 done, 0 skipped, 0 failed of 2 cells" in r.stdout
        assert len(list((tmp / "out").glob("distributed/**/metrics.json"))) == 2
        r = run(["attnmed-grid", str(study), "--out", str(tmp / "out"), "--executor", "ray", "--address", cluster.address])
        assert "0 done, 2 skipped" in r.stdout, "resuming works the same on Ray"
    finally:
        cluster.shutdown()
