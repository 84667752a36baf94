"""The grid under faults, on real processes: kill -9 and resume, two grids on one folder, Ctrl-C, a full disk, a changed config,
a refused config. Cells execute `attnmed.testing.write_quick_experiment`'s notebook (the experiment notebook's parameters, no training),
so that each scenario takes seconds; the real notebook runs end to end in test_cli and test_studies."""
import json, os, re, resource, signal, subprocess, time
from pathlib import Path
import pytest, yaml
from conftest import ROOT, BIN, tiny_study
from attnmed.study import cell_table
from attnmed.testing import write_quick_experiment

def quick_env(**quick):
    "The environment of a grid whose quick cells sleep / log / fail / write as asked (`ATTNMED_QUICK_*`)."
    return {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore", **{f"ATTNMED_QUICK_{k.upper()}": str(v) for k, v in quick.items()}}

def grid(study, out, nb, *args, env=None, **popen):
    "Start attnmed-grid on `study` with the quick notebook `nb`; returns the Popen (text pipes)."
    jobs = [] if "--jobs" in map(str, args) else ["--jobs", "1"]   # these scenarios are written for one cell at a time
    return subprocess.Popen([str(BIN / "attnmed-grid"), str(study), "--out", str(out), "--notebook", str(nb), *jobs, *map(str, args)], cwd=ROOT,
                            env=env or quick_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)

def finish(p, timeout=300):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err

def wait_for(pred, timeout=120, what="the condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred(): return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")

def alive(pid):
    try: os.kill(pid, 0)
    except ProcessLookupError: return False
    try:   # a zombie is dead
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError: return False

def leftovers(folder):
    "Files no finished grid may leave: locks, attempt folders."
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.name.startswith((".lock", ".attempt-")))

def assert_whole(folder):
    "Every metrics.json parses; a cell without one holds no checkpoint (nothing partial counts as done, or lies around as if it were)."
    for cell in {p.parent for p in Path(folder).rglob("seed*/*")}:
        if (cell / "metrics.json").exists(): json.loads((cell / "metrics.json").read_text())
        else: assert not (cell / "best.pth").exists() or (cell / "metrics.previous.json").exists(), f"{cell}: a checkpoint without results"

@pytest.fixture
def quick(tmp): return write_quick_experiment(tmp / "quick.ipynb")

def test_kill_9_and_resume_loses_and_redoes_nothing(tmp, quick):
    study, out, log = tiny_study(tmp, name="kill", seeds=[0, 1]), tmp / "out", tmp / "runs.log"   # 4 cells
    p = grid(study, out, quick, env=quick_env(sleep=1.5, log=log), start_new_session=True)
    wait_for(lambda: len(list(out.glob("kill/**/metrics.json"))) >= 1 and len(log.read_text().splitlines()) >= 2, what="one cell done, one running")
    os.killpg(p.pid, signal.SIGKILL); p.wait()                          # the grid, mid-cell: its lock, attempt folder and kernel are left behind
    done = {f.parent: f.stat().st_mtime_ns for f in out.glob("kill/**/metrics.json") if ".attempt-" not in str(f)}   # published results, not a killed attempt's
    assert 1 <= len(done) < 4, f"killed too late: {len(done)} done"
    assert_whole(out)
    rc, stdout, err = finish(grid(study, out, quick))
    assert rc == 0, err[-2000:]
    assert f"{4 - len(done)} done, {len(done)} skipped, 0 failed of 4 cells" in stdout, stdout
    assert {f.parent: f.stat().st_mtime_ns for f in out.glob("kill/**/metrics.json") if f.parent in done} == done, "finished cells untouched"
    assert len(list(out.glob("kill/**/metrics.json"))) == 4 and leftovers(out) == []

def test_two_grids_on_one_folder_run_each_cell_once(tmp, quick):
    study, out, log = tiny_study(tmp, name="twice", seeds=[0, 1, 2]), tmp / "out", tmp / "runs.log"   # 6 cells
    env = quick_env(sleep=1, log=log)
    ps = [grid(study, out, quick, "--jobs", 2, env=env) for _ in range(2)]
    results = [finish(p) for p in ps]
    assert [rc for rc, _, _ in results] == [0, 0], [err[-2000:] for _, _, err in results]
    runs = [line.split()[0] for line in log.read_text().splitlines()]
    assert sorted(runs) == sorted(set(runs)) and len(runs) == 6, f"every cell runs exactly once: {runs}"
    assert sum(int(re.search(r"grid twice: (\d+) done", stdout).group(1)) for _, stdout, _ in results) == 6, [s for _, s, _ in results]
    assert leftovers(out) == [] and not list(out.rglob("error.txt"))
    assert set(cell_table(out / "twice").state) == {"done"}

def test_ctrl_c_stops_the_running_cell_and_exits_130(tmp, quick):
    study, out, log = tiny_study(tmp, name="stop"), tmp / "out", tmp / "runs.log"
    p = grid(study, out, quick, env=quick_env(sleep=120, log=log), start_new_session=True)
    wait_for(lambda: log.exists() and log.read_text().strip(), what="the first cell's kernel")
    kernel = int(log.read_text().split()[1])
    t0 = time.time()
    p.send_signal(signal.SIGINT); time.sleep(0.3); p.send_signal(signal.SIGINT)    # an impatient user presses twice
    rc, stdout, err = finish(p, timeout=60)
    assert rc == 130, (rc, stdout, err[-2000:])
    assert time.time() - t0 < 30, "the running cell is stopped, not waited for"
    assert "1 interrupted, 1 not started" in stdout and "interrupted" in err and "Traceback" not in err, (stdout, err)
    wait_for(lambda: not alive(kernel), timeout=15, what="the kernel to be gone")
    assert not list(out.rglob("metrics.json")) and leftovers(out) == [] and not list(out.rglob("error.txt"))
    rc, stdout, err = finish(grid(study, out, quick))                    # the interrupted cell runs next time
    assert rc == 0 and "2 done, 0 skipped" in stdout, stdout + err[-2000:]

def test_sigterm_is_handled_as_ctrl_c(tmp, quick):
    "SIGTERM (what kill, docker, systemd and SLURM send): the running cell stopped, the summary printed, results.csv refreshed, no attempt or lock left."
    study, out, log = tiny_study(tmp, name="term"), tmp / "out", tmp / "runs.log"
    p = grid(study, out, quick, env=quick_env(sleep=120, log=log), start_new_session=True)
    wait_for(lambda: log.exists() and log.read_text().strip(), what="the first cell's kernel")
    kernel = int(log.read_text().split()[1])
    p.send_signal(signal.SIGTERM)
    rc, stdout, err = finish(p, timeout=60)
    assert rc == 130 and "1 interrupted, 1 not started" in stdout and "Traceback" not in err, (rc, stdout, err[-2000:])
    wait_for(lambda: not alive(kernel), timeout=15, what="the kernel to be gone")
    assert (out / "term" / "results.csv").exists() and leftovers(out) == [] and not list(out.rglob("error.txt"))

def _small_disk(folder: Path, size: str):
    "Mount a tmpfs of `size` at `folder` (a real full disk); False where mounting is not allowed."
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0: return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True).returncode == 0

def test_full_disk_fails_cells_cleanly_and_resumes(tmp, quick):
    study, out = tiny_study(tmp, name="full", seeds=[0, 1, 2]), tmp / "out"   # 6 cells of 150 kB checkpoints on a 512 kB disk
    mounted = _small_disk(out, "512k")
    limit = None if mounted else (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000)))   # else: files may not grow past 100 kB
    try:
        rc, stdout, err = finish(grid(study, out, quick, env=quick_env(bytes=150_000), preexec_fn=limit))
        assert rc == 1, (rc, stdout, err[-3000:])
        assert "grid full: " in stdout and " failed" in stdout and "Traceback" not in err, (stdout, err[-3000:])
        assert_whole(out); assert leftovers(out) == []
        done = {f.parent: f.stat().st_mtime_ns for f in out.glob("full/**/metrics.json")}
        assert len(done) < 6
        if mounted: subprocess.run(["mount", "-o", "remount,size=8m", str(out)], check=True)   # space freed
        rc, stdout, err = finish(grid(study, out, quick, "--retry-failed", env=quick_env(bytes=150_000)))
        assert rc == 0, stdout + err[-3000:]
        assert f"{6 - len(done)} done, {len(done)} skipped, 0 failed of 6 cells" in stdout, stdout
        assert {f.parent: f.stat().st_mtime_ns for f in out.glob("full/**/metrics.json") if f.parent in done} == done
        assert leftovers(out) == [] and not list(out.rglob("error.txt"))
    finally:
        if mounted: subprocess.run(["umount", "-l", str(out)])

@pytest.mark.cost(75)
def test_changed_config_is_not_done_and_reruns_when_asked(tmp, quick, capsys):   # in process: the grid's startup once, not four times
    study, out = tiny_study(tmp, name="changing"), tmp / "out"
    assert cli(capsys, study, "--out", out, "--notebook", quick)[0] == 0
    raw = yaml.safe_load(study.read_text()); raw["epochs"] = 2; study.write_text(yaml.safe_dump(raw))
    rc, stdout, err = cli(capsys, study, "--out", out, "--notebook", quick)
    assert rc == 0, err[-2000:]
    assert "2 cell(s) have results from other settings" in stdout and "epochs 1 -> 2 (2 cells)" in stdout, stdout
    assert "0 done, 0 skipped, 0 failed, 2 changed (kept, not rerun: use --rerun-changed) of 2 cells" in stdout, stdout
    assert list(cell_table(out / "changing").state) == ["changed", "changed"], "the report leaves them out"
    raw["datasets"][0]["n_train"] = 72; study.write_text(yaml.safe_dump(raw))
    rc, stdout, err = cli(capsys, study, "--out", out, "--notebook", quick, "--dry-run")
    assert "dataset options; the data (2 cells)" in stdout, stdout
    rc, stdout, err = cli(capsys, study, "--out", out, "--notebook", quick, "--rerun-changed")
    assert rc == 0 and "2 done, 0 skipped" in stdout, stdout + err[-2000:]
    assert list(cell_table(out / "changing").state) == ["done", "done"]
    m = json.loads(next(out.glob("changing/**/metrics.json")).read_text())
    assert m["params"]["epochs"] == 2 and m["params"]["dataset"]["n_train"] == 72

def cli(capsys, *argv):
    "attnmed-grid in this process: (exit code, stdout, stderr)."
    from attnmed.cli import grid_cli
    with pytest.raises(SystemExit) as e: grid_cli([str(a) for a in argv])
    out, err = capsys.readouterr()
    return e.value.code, out, err

def test_refused_config_leaves_the_record_alone(tmp, quick, capsys):
    study, out = tiny_study(tmp, name="kept"), tmp / "out"
    assert cli(capsys, study, "--out", out, "--notebook", quick)[0] == 0
    record = (out / "kept" / "study.yaml").read_text()
    raw = yaml.safe_load(study.read_text())
    for bad in (dict(archs=["resnet19"]), dict(lr=float("inf")), dict(image_size=16, archs=["vgg16"]), dict(seeds=[2 ** 70])):
        study.write_text(yaml.safe_dump({**raw, **bad}))
        rc, stdout, err = cli(capsys, study, "--out", out, "--notebook", quick)
        assert rc == 2 and str(study) in err and "Traceback" not in err, (bad, err[-2000:])
        assert (out / "kept" / "study.yaml").read_text() == record, f"{bad}: the record was overwritten"
    study.write_text(yaml.safe_dump(raw))
    rc, stdout, err = cli(capsys, study, "--out", out, "--only", "seed1")
    assert rc == 2 and "--only 'seed1' selects none of the 2 cells" in err
    rc, stdout, err = cli(capsys, study, "--out", out, "--gpus", "a,b")
    assert rc == 2 and "expected comma-separated GPU ids" in err and "Traceback" not in err
    study.write_text(yaml.safe_dump({**raw, "archs": ["vit_small"], "attentions": ["se"]}))
    rc, stdout, err = cli(capsys, study, "--out", out)
    assert rc == 2 and "no cell can run: every arch x attention pair is left out" in err

def test_a_planted_search_result_cannot_run_code_or_replace_settings(tmp, quick, capsys):
    "A best.json in the output folder is data: keys other than the tunable settings are refused, naming the file."
    study = tiny_study(tmp, name="planted", attentions=["se"], search=dict(trials=1))
    out, marker = tmp / "out", tmp / "pwned"
    best = out / "planted/search/synth-derm/resnet10t/se/noaug/best.json"; best.parent.mkdir(parents=True)
    for params in ({"lr": 0.01, f"_ = 0\nopen({str(marker)!r}, 'w')\n_": 1}, {"seed": 7}, {"arch": "resnet18"}, {"epochs": 300}):
        best.write_text(json.dumps({"params": params}))
        rc, stdout, err = cli(capsys, study, "--out", out, "--notebook", quick)
        assert rc == 2 and str(best) in err and "which the search does not tune" in err, err
    assert not marker.exists() and not list(out.rglob("metrics.json"))
    best.write_text(json.dumps({"params": {"lr": 0.01}}))
    rc, stdout, err = cli(capsys, study, "--out", out, "--notebook", quick)
    assert rc == 0 and json.loads(next(out.rglob("metrics.json")).read_text())["params"]["tuned"] == {"lr": 0.01}

def test_kernel_env_pins_gpu(tmp, quick):
    "A cell's kernel sees the CUDA_VISIBLE_DEVICES of its job slot; on the CPU, its share of the cores."
    from attnmed.config import load_study
    from attnmed.grid import run_cell
    from attnmed.study import study_cells, cell_dir
    cell = study_cells(load_study(tiny_study(tmp)))[0]
    assert run_cell(cell, tmp / "out" / "tiny", notebook=quick, env={"CUDA_VISIBLE_DEVICES": 3}) == "done"
    assert json.loads((cell_dir(tmp / "out" / "tiny", cell) / "metrics.json").read_text())["kernel"]["CUDA_VISIBLE_DEVICES"] == "3"
    assert os.environ.get("CUDA_VISIBLE_DEVICES") != "3"

def test_pretrained_weights_out_of_reach_are_refused_before_any_cell(tmp):
    "pretrained: true with an empty Hugging Face cache and no network: one line naming the field and how to provide the weights, before any cell starts; the dry run only warns."
    import os, subprocess
    from conftest import BIN
    f = tiny_study(tmp, pretrained=True)
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "hf")}
    r = subprocess.run([str(BIN / "attnmed-grid"), str(f), "--out", str(tmp / "out")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "field 'pretrained': pretrained ImageNet weights for 'resnet10t'" in r.stderr and "copy the Hugging Face cache" in r.stderr, r.stderr
    assert not (tmp / "out" / "tiny").exists(), "refused before anything was written"
    r = subprocess.run([str(BIN / "attnmed-grid"), str(f), "--out", str(tmp / "out"), "--dry-run"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and "warning: resnet10t: its pretrained weights are not in the Hugging Face cache yet" in r.stdout, r.stdout + r.stderr

def test_sequential_grid_stops_where_decided_and_a_kill_between_looks_repeats_nothing(tmp, quick):
    "Looks [3, 5]: se (clearly better) stops at look 1, cbam (no effect) goes on; a kill in look 2 and a restart keep look 1's decision as written and lose no cell."
    study, out, log = tiny_study(tmp, name="seq", attentions=["none", "se", "cbam"], seeds=dict(looks=[3, 5])), tmp / "out", tmp / "runs.log"
    env = quick_env(items=400, errors="none=0.3,se=0.05,cbam=0.3", log=log)
    p = grid(study, out, quick, env={**env, "ATTNMED_QUICK_SLEEP": "1"}, start_new_session=True)
    look1 = out / "seq" / "looks" / "look-1.json"
    wait_for(lambda: look1.exists() and any("seed3" in line for line in log.read_text().splitlines()), what="look 1 decided, look 2 running")
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    written = look1.read_bytes()
    status = {d["variant"]: d["status"] for d in json.loads(written)["decisions"] if d["family"] == "primary"}
    assert status == {"se": "better", "cbam": "open"}, status
    rc, stdout, err = finish(grid(study, out, quick, env=env))
    assert rc == 0, err[-2000:]
    assert "look 1 of 2 (3 seeds): 1 better, 1 open; look 2 trains seeds 3-4 of 2 arms" in stdout, stdout
    assert re.search(r"look 2 of 2 \(5 seeds\): 1 better, 1 (inconclusive|equivalent); done", stdout), stdout
    assert look1.read_bytes() == written, "a look's decision is final: never decided again"
    seeds_of = lambda att: sorted(int(f.parent.name[4:]) for f in out.glob(f"seq/*/*/{att}/noaug/seed*/metrics.json"))
    assert (seeds_of("se"), seeds_of("cbam"), seeds_of("none")) == ([0, 1, 2], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]), "seeds only where the answer was open"
    runs = [line.split()[0] for line in log.read_text().splitlines()]
    assert len(set(runs)) == 13 and leftovers(out) == []
    look2 = (out / "seq" / "looks" / "look-2.json").read_bytes()
    rc, stdout, _ = finish(grid(study, out, quick, env=env))                # run again: nothing trains, the same decisions are read back
    assert rc == 0 and "0 done, 13 skipped" in stdout and (out / "seq" / "looks" / "look-2.json").read_bytes() == look2, stdout

@pytest.mark.cost(70)
def test_a_cell_killed_mid_training_goes_on_from_its_last_epoch_with_the_same_numbers(tmp):
    "kill -9 while a cell trains (what a preemption or a lost node does): the next grid goes on after its last saved epoch, and the cell ends as an uninterrupted one."
    from conftest import run
    study = tiny_study(tmp, name="resume", attentions=["se"], augment=[True], epochs=24)
    whole = run(["attnmed-grid", study, "--out", tmp / "whole"]); assert whole.returncode == 0, whole.stderr[-2000:]
    out = tmp / "cut"
    p = subprocess.Popen([str(BIN / "attnmed-grid"), str(study), "--out", str(out)], cwd=ROOT, env=quick_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    def saved():
        f = next(out.glob("resume/**/resume/latest.json"), None)
        try: return f is not None and json.loads(f.read_text())["done"] >= 3
        except (OSError, ValueError): return False
    wait_for(saved, timeout=240, what="three epochs saved")
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    assert not list(out.glob("resume/**/metrics.json")), "killed too late: the cell had finished"
    again = run(["attnmed-grid", study, "--out", out]); assert again.returncode == 0, again.stderr[-2000:]
    cell = next(out.glob("resume/**/metrics.json")).parent; ref = next((tmp / "whole").glob("resume/**/metrics.json")).parent
    m, r = json.loads((cell / "metrics.json").read_text()), json.loads((ref / "metrics.json").read_text())
    assert m["environment"]["resumed_from"] >= 3 and r["environment"]["resumed_from"] == 0, (m["environment"], r["environment"])
    assert "went on after epoch" in (cell / "experiment.ipynb").read_text()
    assert (m["balanced_accuracy"], m["confusion_matrix"]) == (r["balanced_accuracy"], r["confusion_matrix"])
    assert (cell / "predictions.csv").read_text() == (ref / "predictions.csv").read_text(), "the same numbers, bit for bit on the CPU"
    hist = lambda d: [l.split(",")[:5] for l in (d / "history.csv").read_text().splitlines()]   # without the wall time per epoch
    assert hist(cell) == hist(ref) and len(hist(cell)) == 25
    assert not (cell / "resume").exists() and leftovers(out) == []
    import pandas as pd
    row = pd.read_csv(out / "resume" / "results.csv").iloc[0]                  # every result row says where and with what it ran
    assert row.env_executor == "local" and row.env_resumed_from >= 3 and row.env_host and row.env_device.startswith("cpu") and row.env_torch, row
