"""The command line end to end: attnmed-grid, attnmed-report and papermill by hand, on tiny real trainings."""
import json, os, shutil, subprocess
from pathlib import Path
import pandas as pd
import pytest
from conftest import ROOT, tiny_study, run, run_here

CELLS = ["synth-derm/resnet10t/none/noaug/seed0", "synth-derm/resnet10t/se/noaug/seed0"]
METRIC_KEYS = {"accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc", "confusion_matrix", "params", "seconds"}

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]

def browser_check(report, tmp):
    "Open report.html in headless Chromium (installed by .ci/run): the rendered page reads answer, results, explanations, then the folded configuration."
    if CHROMIUM is None: pytest.skip("chromium is not installed (`.ci/run` installs it: apt-get install chromium)")
    args = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'chromium-profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([*args, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "<h1" in dom and "does attention help?" in dom, dom[:2000]
    order = [dom.index(s) for s in ('id="The-answer"', 'id="Results"', 'id="Explanations"', "The study's configuration (study.yaml)")]
    assert order == sorted(order), "the answer first, the configuration last"
    config = dom[dom.rindex("<details", 0, order[-1]):order[-1]]
    assert "open" not in config.split(">")[0], "the configuration is folded"
    assert "Warning" not in dom and "Traceback" not in dom
    shot = tmp / "report.png"
    subprocess.run([*args, "--window-size=1200,2000", f"--screenshot={shot}", report.as_uri()], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000, "the page renders"

@pytest.mark.cost(100)
def test_grid_report_and_resume(tmp):
    study = tiny_study(tmp, description="<script>alert('x')</script> & <b>co</b>")   # what a config says is shown, never run
    out = tmp / "out"
    r = run(["attnmed-grid", study.name, "--out", "out"], cwd=tmp)   # --out relative to the working folder, as `make study` uses it
    assert r.returncode == 0, r.stderr[-3000:]
    assert "grid tiny: 2 done, 0 skipped, 0 failed of 2 cells" in r.stdout
    for key in CELLS:
        cell = out / "tiny" / key
        assert (cell / "experiment.ipynb").exists() and not (cell / "error.txt").exists() and not (cell / "out").exists()
        m = json.loads((cell / "metrics.json").read_text())
        assert METRIC_KEYS <= set(m), METRIC_KEYS - set(m)
        assert m["params"]["attention"] == key.split("/")[2] and m["params"]["seed"] == 0
        assert 0 <= m["balanced_accuracy"] <= 1 and m["seconds"] > 0
        mask = os.umask(0); os.umask(mask)
        assert {f.stat().st_mode & 0o777 for f in (cell / "metrics.json", cell / "predictions.csv")} == {0o666 & ~mask}, "created with the user's umask"
        preds = pd.read_csv(cell / "predictions.csv")
        assert list(preds.columns) == ["id", "label", "prediction", "prob_negative", "prob_positive"]
        assert len(preds) == 32 and preds["id"].is_unique
        # the metrics really come from the predictions
        assert m["accuracy"] == pytest.approx((preds.label == preds.prediction).mean())
        assert sum(map(sum, m["confusion_matrix"])) == 32
    # results.csv: one row per cell and test set, every metric and parameter; attnmed.load_results reads the same
    import attnmed
    table = pd.read_csv(out / "tiny" / "results.csv")
    assert len(table) == 2 and set(table.test_set) == {"test"} and {"balanced_accuracy", "balanced_accuracy_ci_low", "param_lr", "param_attention"} <= set(table.columns)
    cols = ["dataset", "attention", "seed", "test_set", "balanced_accuracy", "balanced_accuracy_ci_low", "roc_auc", "param_lr", "param_epochs"]
    pd.testing.assert_frame_equal(attnmed.load_results(out / "tiny")[cols], table[cols], check_dtype=False)
    assert list(attnmed.load_results(out / "tiny").columns) == list(table.columns)
    # the report holds both cells
    r = run_here(["attnmed-report", str(out / "tiny"), "--no-explain"])
    assert r.returncode == 0, r.stderr[-3000:]
    html = (out / "tiny" / "report.html").read_text()
    for key in CELLS: assert f'href="{key}/experiment.html"' in html and (out / "tiny" / key / "experiment.html").exists()
    assert "balanced_accuracy" in html and html.count("data:image/png;base64") >= 1, "the bar chart is embedded"
    assert "Warning" not in html, "no library warnings in the report"
    assert "<script>alert" not in html and "&lt;script&gt;alert(" in html, "the description is escaped"
    assert "does attention help?" in html and "se vs none on resnet10t, synth-derm" in html, "the verdict for the one comparison"
    assert html.index('id="The-answer"') < html.index('id="Results"') < html.index("(study.yaml)"), "the answer first, the configuration last"
    browser_check(out / "tiny" / "report.html", tmp)
    # a partial grid (one cell's result gone) still renders, listing the missing cell
    part = tmp / "partial"; shutil.copytree(out, part)
    (part / "tiny" / CELLS[1] / "metrics.json").unlink()
    r = run_here(["attnmed-report", str(part / "tiny"), "--no-explain"])
    assert r.returncode == 0, r.stderr[-3000:]
    html = (part / "tiny" / "report.html").read_text()
    assert "Cells not in the results" in html and "1 todo" in html and f'href="{CELLS[0]}/experiment.html"' in html
    # a second run skips both cells and changes nothing
    before = {k: (out / "tiny" / k / "metrics.json").stat().st_mtime_ns for k in CELLS}
    r = run_here(["attnmed-grid", str(study), "--out", str(out)])
    assert r.returncode == 0 and "0 done, 2 skipped, 0 failed" in r.stdout, r.stdout + r.stderr[-2000:]
    assert before == {k: (out / "tiny" / k / "metrics.json").stat().st_mtime_ns for k in CELLS}
    # dry run lists the cells and their state
    r = run_here(["attnmed-grid", str(study), "--out", str(out), "--dry-run"])
    assert r.returncode == 0 and all(f"done    {k}" in r.stdout for k in CELLS)

@pytest.mark.parametrize("over,message", [
    (dict(epoch=3), "field 'epoch': unknown key(s) 'epoch'; did you mean 'epochs'? (valid keys: name"),
    (dict(datasets=[dict(name="m", format="medmnist", path="missing/chest.npz")]), "dataset 'm': path"),
    (dict(archs=["resnet19"]), "field 'archs': unknown arch 'resnet19' (did you mean 'resnet18'?); valid archs: resnet10t"),
])
def test_bad_config_refused_before_training(tmp, over, message):
    study = tiny_study(tmp, name="bad", **over)
    r = run_here(["attnmed-grid", str(study), "--out", str(tmp / "out")])
    assert r.returncode == 2
    assert str(study) in r.stderr and message in r.stderr, r.stderr
    assert not (tmp / "out").exists(), "nothing may be written before the config is accepted"

def test_papermill_by_hand(tmp):
    out_nb, cell = tmp / "out.ipynb", tmp / "cell"
    r = run(["papermill", str(ROOT / "nbs/experiment.ipynb"), str(out_nb), "-p", "arch", "resnet10t", "-p", "attention", "cbam",
             "-p", "epochs", "1", "-p", "image_size", "32", "-p", "out_dir", str(cell),
             "-y", f"dataset: {{name: d, format: synthetic, path: {tmp / 'data'}, n_train: 64, n_val: 32, n_test: 32}}"])
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((cell / "metrics.json").read_text())
    assert m["params"]["attention"] == "cbam" and m["params"]["image_size"] == 32
