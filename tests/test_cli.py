"""The command line end to end: attnmed-grid, attnmed-report and papermill by hand, on tiny real trainings."""
import html, json, os, re, shutil, subprocess
from pathlib import Path
import pandas as pd
import pytest
from conftest import ROOT, tiny_study, run, run_here

CELLS = ["synth-derm/resnet10t/none/noaug/seed0", "synth-derm/resnet10t/se/noaug/seed0"]
METRIC_KEYS = {"accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc", "confusion_matrix", "params", "seconds"}

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]

LAYOUT_SCRIPT = """<script>
window.addEventListener('load', () => {
  document.querySelectorAll('details').forEach(d => d.open = true);   // folded tables count too
  const W = document.documentElement.clientWidth, bad = [];
  const scroller = el => { for (let p = el.parentElement; p && p !== document.body && p !== document.documentElement; p = p.parentElement) {
    const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll') return p; } return null; };
  for (const el of document.querySelectorAll('img, table, pre, figure, svg')) {
    const r = el.getBoundingClientRect(); if (!r.width) continue;
    const s = scroller(el), col = (s || el.parentElement).getBoundingClientRect();
    const what = `${el.tagName.toLowerCase()} ${Math.round(r.left)}-${Math.round(r.right)} px: ${(el.getAttribute('alt') || el.textContent || '').trim().slice(0, 60)}`;
    if (s ? col.right > W + 1 : r.right > Math.min(W, col.right) + 1) bad.push(`past its column (${Math.round(Math.min(W, col.right))} px): ${what}`);
  }
  if (document.documentElement.scrollWidth > W + 1) bad.push(`the page is ${document.documentElement.scrollWidth} px wide in a ${W} px window`);
  const pre = document.createElement('pre'); pre.id = 'layout-check'; pre.textContent = JSON.stringify(bad); document.body.appendChild(pre);
});
</script>"""

def layout_problems(page, tmp, width=1000):
    "Open `page` in headless Chromium `width` px wide, every <details> opened: the images, tables, figures and code blocks that reach past their column or widen the page."
    if CHROMIUM is None: pytest.skip("chromium is not installed (`.ci/run` installs it: apt-get install chromium)")
    probe = page.with_name(page.stem + ".layout-check.html")
    probe.write_text(page.read_text().replace("</body>", LAYOUT_SCRIPT + "</body>"))
    try:
        dom = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'chromium-layout'}", f"--window-size={width},2000", "--virtual-time-budget=5000",
                              "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    finally: probe.unlink()
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', dom, re.S)
    assert found, f"the layout check did not run: {dom[-1000:]}"
    return json.loads(html.unescape(found.group(1)))

def test_layout_check_can_fail(tmp):
    page = tmp / "wide.html"
    page.write_text('<html><body><p>text</p><div><table style="width:3000px"><tr><td>wide</td></tr></table></div>'
                    '<div style="overflow-x:auto"><table style="width:3000px"><tr><td>scrolls</td></tr></table></div></body></html>')
    found = layout_problems(page, tmp)
    assert any("past its column" in p and "wide" in p for p in found) and any("page is" in p for p in found), found
    assert not any("scrolls" in p for p in found), "a table in a scrolling box stays in its column"

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
    assert layout_problems(report, tmp) == [], "every figure and table stays in its column"
    html_text = report.read_text()
    caption = re.search(r'<figcaption[^>]*>Confusion matrices[^<]*</figcaption>', html_text)
    classes = {c for f in report.parent.glob("*/*/*/*/seed*/metrics.json") for c in json.loads(f.read_text()).get("class_names", [])}
    assert caption and classes and all(html.escape(c) in caption.group(0) for c in classes), "every confusion matrix names its classes"
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

def test_notebook_by_hand(tmp):
    "The README's recipe: attnmed-run with papermill's parameters, on a private kernel (no TCP warning), into the folder it names."
    out_nb, cell = tmp / "outputs" / "adhoc" / "experiment.ipynb", tmp / "cell"
    r = run(["attnmed-run", str(ROOT / "nbs/experiment.ipynb"), "--output", str(out_nb), "--param", "arch", "resnet10t", "--param", "attention", "cbam",
             "--param", "epochs", "1", "--param", "image_size", "32", "--param", "out_dir", str(cell),
             "--yaml", f"dataset: {{name: d, format: synthetic, path: {tmp / 'data'}, n_train: 64, n_val: 32, n_test: 32}}"], cwd=tmp)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "without encryption" not in r.stderr and r.stdout.strip() == f"wrote {out_nb}"
    m = json.loads((cell / "metrics.json").read_text())
    assert m["params"]["attention"] == "cbam" and m["params"]["image_size"] == 32

def test_config_errors_come_before_the_grid_imports_torch():
    "A mistake in the study file is said before torch, timm or fastai are imported (a fraction of a second, not the 4 s of the grid's imports)."
    import subprocess, sys
    code = ("import sys, tempfile, pathlib; from attnmed.cli import grid_cli\n"
            "f = pathlib.Path(tempfile.mkdtemp()) / 's.yaml'; f.write_text('name: x\\ndatasets:\\n  - name: d\\n   format: synthetic\\n')\n"
            "try: grid_cli([str(f)])\nexcept SystemExit as e: print('exit', e.code, 'torch' in sys.modules, 'timm' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "exit 2 False False", r.stdout + r.stderr
    assert "is not valid YAML at line 4, column 4" in r.stderr and r.stderr.count("\n") == 1, r.stderr

@pytest.mark.cost(45)
def test_report_on_an_unfinished_grid_says_so_first(tmp):
    "2 of 6 cells done (one of 3 declared seeds): the report's first line says the grid is not finished and gives the command that finishes it; the comparison is not decided for that reason, not for 'run at least 3 seeds'; answer.csv holds it."
    import pandas as pd
    study = tiny_study(tmp, seeds=[0, 1, 2])
    r = run(["attnmed-grid", str(study), "--out", str(tmp / "out"), "--only", "seed0"], cwd=tmp)
    assert r.returncode == 0, r.stderr[-2000:]
    (tmp / "out" / "tiny" / "results.csv").unlink()                          # the rest still running elsewhere: --collect reads what is done
    r = run(["attnmed-grid", str(study), "--out", str(tmp / "out"), "--collect"], cwd=tmp)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "collected 2 of 6 cells" in r.stdout and "4 missing (4 todo" in r.stdout, r.stdout
    assert len(pd.read_csv(tmp / "out" / "tiny" / "results.csv")) == 2 and (tmp / "out" / "tiny" / "report.html").exists()
    assert "Not finished: 2 of 6 cells are done" in (tmp / "out" / "tiny" / "report.html").read_text()
    r = run(["attnmed-grid", str(tmp / "other.yaml"), "--out", str(tmp / "out"), "--collect"], cwd=tmp)
    assert r.returncode != 0 and "other.yaml" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run(["attnmed-report", str(tmp / "out" / "tiny"), "--no-explain"], cwd=tmp)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Not finished: 2 of 6 cells are done (4 todo)" in r.stdout and "--out " + str(tmp / "out") in r.stdout, r.stdout
    page = (tmp / "out" / "tiny" / "report.html").read_text()
    assert page.index("Not finished: 2 of 6 cells are done") < page.index("The answer"), "said first"
    answer = pd.read_csv(tmp / "out" / "tiny" / "answer.csv", keep_default_na=False)
    row = answer[answer.line == "comparison"].iloc[0]
    assert row.verdict == "not decided" and row.reason.startswith("only 1 of the study's 3 seeds has finished"), row.to_dict()

@pytest.mark.cost(100)
def test_folder_study_explained_and_readable(tmp):
    "A 3-class study on your own folder of images (no masks, no concepts): explain.html shows every method's maps with both sanity checks, the scores that need masks are left out with a reason, and report.html names the classes of every confusion matrix and keeps every figure and table in its column."
    from attnmed.testing import write_sample_folder
    classes = ["normal", "pneumonia bacterial", "pneumonia viral"]
    write_sample_folder(tmp / "xray", classes=classes, per_class=10)
    study = tiny_study(tmp, name="three", datasets=[dict(name="chest3", format="folder", path=str(tmp / "xray"))], epochs=2, batch_size=16)
    r = run_here(["attnmed-grid", study, "--out", tmp / "out", "--jobs", "2"])
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    r = run_here(["attnmed-report", tmp / "out" / "three", "--figure-images", "4", "--sanity-images", "4"])
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    folder = tmp / "out" / "three"
    exp = folder / "explanations"
    figs = pd.read_csv(exp / "figures.csv")
    for method in ("saliency", "gradcam", "integrated_gradients", "attention"):
        assert (exp / f"chest3_resnet10t_noaug_{method}.png").exists(), f"no {method} maps"
    per_method = figs[~figs.file.str.contains("attention_vs_gradcam|faithfulness")]
    assert len(per_method) == 4 and per_method.caption.str.contains("test images of each class that every model classifies correctly").all()
    assert per_method.caption.str.contains("pixels shuffled").all(), "each figure shows its method on an input without signal"
    sanity, no_signal = pd.read_csv(exp / "sanity.csv"), pd.read_csv(exp / "no_signal.csv")
    assert set(sanity.method) == set(no_signal.method) == {"saliency", "gradcam", "integrated_gradients", "attention"}
    assert set(no_signal.verdict) <= {"passes", "fails", "undefined"} and no_signal.concentration.dropna().between(0.0, 1.0).all()
    captions = dict(zip(figs.file, figs.caption))
    for r in sanity[sanity.verdict == "fails"].itertuples():   # a map's caption carries its method's randomisation result
        assert f"† resnet10t+{r.attention}: failed the randomisation test" in captions[f"chest3_resnet10t_noaug_{r.method}.png"]
    faith = pd.read_csv(exp / "faithfulness.csv")                              # no masks: the maps are still checked against the model (ROAD)
    assert set(faith.method) == {"saliency", "gradcam", "integrated_gradients", "random"} and faith.road.between(-1, 1).all(), faith
    assert (exp / "chest3_faithfulness.png").exists() and figs.file.str.contains("chest3_faithfulness.png").any()
    page = (folder / "explain.html").read_text()
    assert "0 model(s) loaded" not in page and "2 model(s) loaded" in page
    assert "no ground-truth masks, so the scores that need them (localisation, shortcut mass) are left out" in page
    assert "Model randomisation" in page and "No signal" in page
    report = (folder / "report.html").read_text()
    caption = re.search(r'<figcaption[^>]*>Confusion matrices[^<]*</figcaption>', report)
    assert caption and all(c in caption.group(0) for c in classes), "the confusion matrices name their classes"
    assert "fails the no-signal check" in report or "passes the no-signal check" in report
    assert "Do the maps rank what the model uses?" in report and "against a random map" in report
    cell = (folder / "chest3/resnet10t/se/noaug/seed0/experiment.html").read_text()
    assert "Top losses" in cell and "one class against the rest, averaged over the 3 classes" in cell, "the cell's record names how a 3-class AUC is taken"
    for p in (folder / "report.html", folder / "explain.html"): assert layout_problems(p, tmp) == [], p.name
