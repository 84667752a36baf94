"""The statistics behave as stated, on simulated data where the truth is known."""
import numpy as np, pandas as pd, pytest
from attnmed.evaluate import bootstrap_ci
from attnmed.statistics import compare_to_baseline, mcnemar_test, paired_test, verdict

def test_bootstrap_ci_covers_the_truth_at_about_the_nominal_rate():
    "A classifier with per-class accuracies 0.8 and 0.7 (true balanced accuracy 0.75), fresh 300-item test sets."
    rng = np.random.default_rng(0)
    hits, sims = 0, 150
    for s in range(sims):
        y = rng.integers(0, 2, 300)
        correct = rng.random(300) < np.where(y == 1, 0.8, 0.7)
        pred = np.where(correct, y, 1 - y)
        probs = np.stack([1 - pred, pred], 1).astype(float)
        lo, hi = bootstrap_ci(y, probs, n_boot=200, seed=s, metrics=("balanced_accuracy",))["balanced_accuracy"]
        hits += lo <= 0.75 <= hi
    assert 0.88 <= hits / sims <= 0.99, hits / sims

def simulated_cells(rng, deltas, seeds=8, seed_sd=0.02, noise_sd=0.01):
    "Cells of one dataset/arch: a shared per-seed effect, each variant = baseline + delta + noise."
    base = 0.80 + seed_sd * rng.standard_normal(seeds)
    rows = [dict(dataset="d", arch="a", augment=False, attention="none", seed=s, balanced_accuracy=base[s]) for s in range(seeds)]
    for name, d in deltas.items():
        rows += [dict(dataset="d", arch="a", augment=False, attention=name, seed=s, balanced_accuracy=base[s] + d + noise_sd * rng.standard_normal()) for s in range(seeds)]
    return pd.DataFrame(rows)

def test_planted_difference_detected_and_null_not(monkeypatch):
    import gc
    monkeypatch.setattr(gc, "collect", lambda *a, **k: 0)   # statsmodels' multipletests calls gc.collect(): 0.2 s each with torch loaded
    rng = np.random.default_rng(1)
    sims, found_null, found_real, any_null = 300, 0, 0, 0
    for _ in range(sims):
        c = compare_to_baseline(simulated_cells(rng, {"null1": 0.0, "null2": 0.0, "null3": 0.0, "real": 0.02})).set_index("attention")
        found_real += bool(c.loc["real", "significant"])
        raw_null = c.loc[["null1", "null2", "null3"], "p_ttest"] < 0.05
        found_null += raw_null.iloc[0]
        any_null += bool(c.loc[["null1", "null2", "null3"], "significant"].any())
    assert found_null / sims <= 0.09, f"false-positive rate of one uncorrected null comparison {found_null / sims:.3f} (nominal 0.05)"
    assert any_null / sims <= 0.08, f"family-wise error rate after Holm {any_null / sims:.3f} (nominal <= 0.05)"
    assert found_real / sims >= 0.9, f"power against a planted +2 pp effect {found_real / sims:.3f}"

def test_mcnemar_error_rates():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    null_hits = real_hits = 0
    for _ in range(200):
        a = np.where(rng.random(400) < 0.8, y, 1 - y); b = np.where(rng.random(400) < 0.8, y, 1 - y)
        better = np.where(rng.random(400) < 0.9, y, 1 - y)
        null_hits += mcnemar_test(y, a, b)["p_mcnemar"] < 0.05
        real_hits += mcnemar_test(y, better, b)["p_mcnemar"] < 0.05
    assert null_hits / 200 <= 0.09 and real_hits / 200 >= 0.9, (null_hits, real_hits)

def test_verdicts_say_what_a_test_can_and_cannot_say():
    rng = np.random.default_rng(3)
    one = compare_to_baseline(simulated_cells(rng, {"se": 0.05}, seeds=1)).iloc[0].to_dict()
    assert "no test possible" in verdict(one)
    three = compare_to_baseline(simulated_cells(rng, {"se": 0.0}, seeds=3)).iloc[0].to_dict()
    v = verdict(three)
    assert "Wilcoxon cannot reach significance with 3 seeds: its smallest p is 0.25" in v and "95 % CI [" in v
    big = compare_to_baseline(simulated_cells(rng, {"se": 0.05}, seeds=8)).iloc[0].to_dict()
    assert "attention better" in verdict(big) and "Wilcoxon cannot" not in verdict(big)

def test_paired_test_refuses_nothing_silently():
    r = paired_test([0.8], [0.7])
    assert r["n"] == 1 and np.isnan(r["p_ttest"])
