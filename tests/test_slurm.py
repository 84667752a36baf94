"""A study through `--executor slurm` on a real single-node SLURM (`slurm_cluster.SlurmCluster`, started here): one job array, a grid
killed while its jobs are queued and started again (nothing submitted twice), a running cell preempted (`scontrol requeue`) that goes on
from its last epoch and ends with the numbers of an uninterrupted run, and a report."""
import json, os, signal, subprocess, time
from pathlib import Path
import pandas as pd
import pytest
from conftest import ROOT, BIN, tiny_study, run
from slurm_cluster import SlurmCluster

@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    why = cluster.start()
    if why is not None: cluster.stop(); pytest.skip(f"no test SLURM on this machine: {why}")
    yield cluster
    cluster.stop()

def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred(): return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")

def grid(study, out, env, *args):
    return subprocess.Popen([str(BIN / "attnmed-grid"), str(study), "--out", str(out), "--executor", "slurm", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

@pytest.mark.cost(200)
def test_a_study_on_slurm_survives_a_killed_grid_and_a_preempted_cell(tmp, slurm):
    env = {**slurm.env, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    over = dict(attentions=["none", "se"], seeds=[0, 1], epochs=12, slurm=dict(gpus=0, cpus=1, mem_gb=0.5, time=20, max_running=2))
    study, out = tiny_study(tmp, name="cluster", **over), tmp / "out"
    jobs_file = out / "cluster" / "slurm" / "jobs.json"
    first = grid(study, out, env)
    wait_for(jobs_file.exists, 180, "the job array's submission")
    os.killpg(first.pid, signal.SIGKILL); first.wait()                        # the login session lost: the jobs go on
    submitted = json.loads(jobs_file.read_text())
    assert len(submitted) == 4 and len({j["job"].split("_")[0] for j in submitted.values()}) == 1, submitted   # one array of 4
    wait_for(lambda: any((out / "cluster").glob("**/.lock")), 180, "a job running (its cell's lock held)")
    second = grid(study, out, env)                                            # started again while they are queued or running: a running one's lock is its own job's
    victim = "synth-derm/resnet10t/se/noaug/seed0"
    point = out / "cluster" / victim / "resume" / "latest.json"
    def trained_three():
        try: return json.loads(point.read_text())["done"] >= 3
        except (OSError, ValueError, KeyError): return False
    wait_for(trained_three, 240, "three epochs of the cell to preempt")
    slurm.requeue_now(submitted[victim]["job"])                               # preempted mid-training
    stdout, stderr = second.communicate(timeout=600)
    assert second.returncode == 0, stdout + stderr[-3000:]
    assert "following 4 cell(s) already queued or running on SLURM" in stdout and "to SLURM as job" not in stdout, stdout
    assert json.loads(jobs_file.read_text()) == submitted, "nothing submitted twice"
    assert "grid cluster: 4 done, 0 skipped, 0 failed of 4 cells" in stdout, stdout
    m = json.loads((out / "cluster" / victim / "metrics.json").read_text())
    assert m["environment"]["executor"] == "slurm" and m["environment"]["resumed_from"] >= 3, m["environment"]
    again = run(["attnmed-grid", study, "--out", tmp / "whole", "--executor", "slurm", "--only", "se/noaug/seed0"], env=env)   # the same cell, never interrupted
    assert again.returncode == 0, again.stderr[-2000:]
    whole = tmp / "whole" / "cluster" / victim
    assert (out / "cluster" / victim / "predictions.csv").read_text() == (whole / "predictions.csv").read_text(), "the same numbers, bit for bit"
    assert json.loads((whole / "metrics.json").read_text())["environment"]["resumed_from"] == 0
    assert pd.read_csv(out / "cluster" / "results.csv").env_executor.eq("slurm").all()
    r = run(["attnmed-report", out / "cluster", "--no-explain"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert "went on from a resume point" in (out / "cluster" / "report.html").read_text()
