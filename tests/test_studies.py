"""The seed studies as configs: the full-size ones plan (dry run) without their data; the small ones run end to end on CI."""
import json
from pathlib import Path
import pandas as pd, pytest
from conftest import ROOT, run

def test_full_size_studies_dry_run():
    for name, n_cells in [("seed000", 2 * (2 * 4 + 2) * 5), ("seed001", 2 * 3 * 4 * 2 * 5)]:
        r = run(["attnmed-grid", str(ROOT / "studies" / f"{name}.yaml"), "--out", "/tmp/attnmed-dry-run", "--dry-run"])
        assert r.returncode == 0, r.stderr[-2000:]
        assert f"grid {name}: {n_cells} cells: 0 done, 0 failed, {n_cells} to do (dry run: nothing was run)" in r.stdout, r.stdout[-1500:]
        assert "warning: datasets[0]" in r.stdout, "missing data is reported, not fatal, in a dry run"
    r = run(["attnmed-grid", str(ROOT / "studies" / "seed000.yaml"), "--out", "/tmp/attnmed-dry-run"])
    assert r.returncode == 2 and "not found" in r.stderr, "a real run refuses missing data"

def test_small_seed000_runs_with_in_and_out_of_distribution_tests(tmp):
    out = tmp / "out"
    r = run(["attnmed-grid", str(ROOT / "studies" / "seed000-small.yaml"), "--out", str(out), "--jobs", "2"])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "8 done, 0 skipped, 0 failed of 8 cells" in r.stdout
    m = json.loads((out / "seed000-small/synth-derm/efficientnet_b0/ela/aug/seed0/metrics.json").read_text())
    assert 0 <= m["balanced_accuracy_ood_test"] <= 1 and "confusion_matrix" in m["ood_test"]
    assert (out / "seed000-small/synth-derm/efficientnet_b0/ela/aug/seed0/predictions_ood_test.csv").exists()
    r = run(["attnmed-report", str(out / "seed000-small"), "--no-explain"])
    assert r.returncode == 0, r.stderr[-2000:]
    html = (out / "seed000-small" / "report.html").read_text()
    assert "test (in distribution)" in html and "On the extra test set <code>ood_test</code>" in html

def test_small_seed001_runs_the_four_use_cases_and_both_declared_comparisons(tmp):
    out = tmp / "out"
    r = run(["attnmed-grid", str(ROOT / "studies" / "seed001-small.yaml"), "--out", str(out), "--jobs", "2"])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "18 done, 0 skipped, 0 failed of 18 cells" in r.stdout
    r = run(["attnmed-report", str(out / "seed001-small")])
    assert r.returncode == 0, r.stderr[-2000:]
    exp = out / "seed001-small" / "explanations"
    assert not (exp / "error.txt").exists(), (exp / "error.txt").read_text() if (exp / "error.txt").exists() else ""
    html = (out / "seed001-small" / "report.html").read_text()
    answer = html[html.index('id="The-answer"'):html.index('id="Results"')]
    for cmp in ("mldam vs mlphead on resnet50", "mldam vs none on resnet50", "mldam vs mlphead on vgg16", "mldam vs none on densenet121"): assert cmp in answer, cmp
    assert "Declared comparisons: mldam vs mlphead, mldam vs none" in answer
    sanity = pd.read_csv(exp / "sanity.csv")
    assert {"mldam", "mlphead"} <= set(sanity.attention), "the randomisation test ran on the MLDAM family"
