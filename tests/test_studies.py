"""The studies as configs: the full-size reproductions plan (dry run) without their data; the small ones run end to end on CI,
the positive control included (its report must find the gain that exists)."""
import json
from pathlib import Path
import pandas as pd, pytest
from conftest import ROOT, run, run_here

def answer_of(html:str) -> str:
    "The report's answer section."
    return html[html.index('id="The-answer"'):html.index('id="Results"')]

def test_full_size_studies_dry_run():
    for name, n_cells in [("piater", 2 * (2 * 4 + 2) * 5), ("goncalves-cardoso", 2 * 3 * 4 * 2 * 5)]:
        r = run_here(["attnmed-grid", str(ROOT / "studies" / f"{name}.yaml"), "--out", "/tmp/attnmed-dry-run", "--dry-run"])
        assert r.returncode == 0, r.stderr[-2000:]
        assert f"grid {name}: {n_cells} cells: 0 done, {n_cells} todo; {n_cells} would run (dry run: nothing was run)" in r.stdout, r.stdout[-1500:]
        assert "warning: datasets[0]" in r.stdout, "missing data is reported, not fatal, in a dry run"
    r = run_here(["attnmed-grid", str(ROOT / "studies" / "piater.yaml"), "--out", "/tmp/attnmed-dry-run"])
    assert r.returncode == 2 and "not found" in r.stderr, "a real run refuses missing data"

@pytest.mark.slow
@pytest.mark.cost(115)
def test_small_piater_runs_with_in_and_out_of_distribution_tests(tmp):
    out = tmp / "out"
    r = run(["attnmed-grid", str(ROOT / "studies" / "piater-small.yaml"), "--out", str(out), "--jobs", "2"])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "8 done, 0 skipped, 0 failed of 8 cells" in r.stdout
    m = json.loads((out / "piater-small/synth-derm/efficientnet_b0/ela/aug/seed0/metrics.json").read_text())
    assert 0 <= m["balanced_accuracy_ood_test"] <= 1 and "confusion_matrix" in m["ood_test"]
    assert (out / "piater-small/synth-derm/efficientnet_b0/ela/aug/seed0/predictions_ood_test.csv").exists()
    r = run(["attnmed-report", str(out / "piater-small"), "--no-explain"])
    assert r.returncode == 0, r.stderr[-2000:]
    html = (out / "piater-small" / "report.html").read_text()
    assert "test (in distribution)" in html and "On the extra test set <code>ood_test</code>" in html

@pytest.mark.slow
@pytest.mark.cost(220)
def test_small_goncalves_cardoso_runs_mldam_with_both_declared_comparisons_and_explanations(tmp):
    out = tmp / "out"
    r = run(["attnmed-grid", str(ROOT / "studies" / "goncalves-cardoso-small.yaml"), "--out", str(out), "--jobs", "2"])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "9 done, 0 skipped, 0 failed of 9 cells" in r.stdout
    m = json.loads((out / "goncalves-cardoso-small/synth-mammo/vgg16/none/aug/seed0/metrics.json").read_text())
    assert m["params"]["protocol"] == "goncalves-cardoso" and m["params"]["head"] == "goncalves-cardoso"
    assert m["pretrained_weights"] == "", "from scratch: no pretrained weights recorded"
    r = run(["attnmed-report", str(out / "goncalves-cardoso-small"), "--figure-images", "3", "--score-images", "6", "--sanity-images", "3"])   # every method, fewer images
    assert r.returncode == 0, r.stderr[-2000:]
    exp = out / "goncalves-cardoso-small" / "explanations"
    assert not (exp / "error.txt").exists(), (exp / "error.txt").read_text() if (exp / "error.txt").exists() else ""
    assert not len(pd.read_csv(exp / "problems.csv")), pd.read_csv(exp / "problems.csv").to_string()   # no error; cells with nothing to score are noted apart
    answer = answer_of((out / "goncalves-cardoso-small" / "report.html").read_text())
    for cmp in ("mldam vs mlphead on resnet50", "mldam vs none on resnet50", "mldam vs mlphead on vgg16", "mldam vs none on densenet121"): assert cmp in answer, cmp
    assert "Declared comparisons: mldam vs mlphead, mldam vs none" in answer
    sanity = pd.read_csv(exp / "sanity.csv")
    assert {"mldam", "mlphead"} <= set(sanity.attention), "the randomisation test ran on the MLDAM family"
    table = lambda name: pd.read_csv(exp / name) if (exp / name).stat().st_size > 1 else pd.DataFrame(columns=["why"])
    loc, not_scored = table("localisation.csv"), table("not_scored.csv")
    assert "n_score = 6" in (out / "goncalves-cardoso-small" / "explain.ipynb").read_text(), "the report's --score-images reaches the explanations"
    if len(loc): assert loc.n.le(6).all(), loc
    else: assert len(not_scored) and not_scored.why.str.startswith("at chance").all(), not_scored   # one epoch on 32 images learns nothing: no map of it is scored as evidence
    m = json.loads((out / "goncalves-cardoso-small/synth-mammo/vgg16/none/aug/seed0/metrics.json").read_text())
    assert 1 <= m["train_checkpoint"]["epoch"] <= 1 and (out / "goncalves-cardoso-small/synth-mammo/vgg16/none/aug/seed0/best_train.pth").exists(), "their second checkpoint, tested beside"

@pytest.mark.slow
@pytest.mark.cost(400)
def test_positive_control_finds_the_gain_that_exists(tmp):
    "The whole instrument (data, training, seeds, test items, verdict) finds a gain that exists: self-attention on synth-pair."
    out = tmp / "out"
    r_grid = r = run(["attnmed-grid", str(ROOT / "studies" / "positive-control-small.yaml"), "--out", str(out), "--jobs", "2"])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = run(["attnmed-report", str(out / "positive-control-small"), "--no-explain"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert "look 1 of 2 (3 seeds): 1 better; done: every declared comparison is decided" in r_grid.stdout, r_grid.stdout[-2000:]   # stopped at its first look
    assert not list(out.glob("positive-control-small/**/seed3")), "no seed beyond the first look was trained"
    answer = answer_of((out / "positive-control-small" / "report.html").read_text())
    assert "<strong>mhsa</strong> (vs none) <strong>helps</strong>" in answer, answer[:3000]
    assert "the attention <strong>helps</strong>" in answer and "Stopped at look 1 of 2: stopped early" in answer
    assert "It trained 6 of the 10 cells a fixed design of 5 seeds would: 4 saved (40 %)." in answer
