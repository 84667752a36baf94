"""Running grids at scale: the search feeding the grid, and the Ray executor, on one node and across nodes (faults and resuming: test_faults; SLURM: test_slurm)."""
import json, subprocess, time
from pathlib import Path
import pytest
from conftest import ROOT, BIN, tiny_study, run

@pytest.mark.slow
@pytest.mark.cost(120)
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

@pytest.mark.slow
@pytest.mark.cost(130)
def test_ray_executor_on_a_local_cluster(tmp):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=1, include_dashboard=False))
    cluster.add_node(num_cpus=1)                                     # two nodes, one CPU each: two cells at a time
    try:
        study = tiny_study(tmp, name="distributed")
        r = run(["attnmed-grid", str(study), "--out", str(tmp / "out"), "--executor", "ray", "--ray-address", cluster.address])
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
        assert "grid distributed: 2 done, 0 skipped, 0 failed of 2 cells" in r.stdout
        assert len(list((tmp / "out").glob("distributed/**/metrics.json"))) == 2
        r = run(["attnmed-grid", str(study), "--out", str(tmp / "out"), "--executor", "ray", "--ray-address", cluster.address])
        assert "0 done, 2 skipped" in r.stdout, "resuming works the same on Ray"
    finally:
        cluster.shutdown()

@pytest.mark.slow
@pytest.mark.cost(200)
def test_ray_across_nodes_survives_the_loss_of_a_worker_node(tmp):
    "A head that schedules and a worker node that trains (separate raylets on 127.0.0.1); the worker is lost mid-cell: the cell runs again on a new node, from its resume point, and is done once."
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=0, include_dashboard=False))
    worker = cluster.add_node(num_cpus=1)
    try:
        study, out = tiny_study(tmp, name="nodes", attentions=["se"], epochs=30), tmp / "out"
        p = subprocess.Popen([str(BIN / "attnmed-grid"), str(study), "--out", str(out), "--executor", "ray", "--ray-address", cluster.address], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        point = out / "nodes" / "synth-derm" / "resnet10t" / "se" / "noaug" / "seed0" / "resume" / "latest.json"
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                if json.loads(point.read_text())["done"] >= 3: break
            except (OSError, ValueError, KeyError): pass
            time.sleep(0.2)
        else: raise AssertionError("the cell did not start training")
        cluster.add_node(num_cpus=1)
        cluster.remove_node(worker, allow_graceful=False)                # the node is lost mid-cell
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stdout[-2000:] + stderr[-3000:]
        assert "grid nodes: 1 done, 0 skipped, 0 failed of 1 cells" in stdout, stdout
        m = json.loads((point.parent.parent / "metrics.json").read_text())
        assert m["environment"]["executor"] == "ray" and m["environment"]["resumed_from"] >= 3, m["environment"]
        assert len(list(out.glob("nodes/**/metrics.json"))) == 1 and not point.parent.exists()
    finally:
        cluster.shutdown()
