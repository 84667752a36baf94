"""The verdicts keep their promises on simulated studies where the truth is known (numpy, seconds): the family-wise rate of
better / worse under the null, the rate of 'equivalent' when the true effect equals the margin, the power at the reported minimum
detectable effect; and the bootstrap, McNemar and the sentences behave as stated."""
import numpy as np, pandas as pd, pytest
from attnmed.evaluate import bootstrap_ci
from attnmed.statistics import (Contrast, balanced_accuracy_weights, compare, contrast_row, decide, decide_comparisons, item_contrast, mcnemar_test,
                                paired_effect, plan, pooled_effects, pooled_sentence, power, verdict_sentence)

N_ITEMS, SEEDS, FAMILY, MARGIN = 400, 5, 4, 1.0
LABELS = np.arange(N_ITEMS) % 2
W = balanced_accuracy_weights(LABELS)

def study(rng, shifts, seeds=SEEDS, n=N_ITEMS, item_sd=0.5, seed_sd=0.15, noise_sd=0.6):
    """One simulated test set and, per model, `seeds` trained copies' correctness on it. An item is answered correctly when its
    ease for the model (a shared difficulty + an item x model interaction of sd `item_sd`, so a fixed test set favours one model by
    chance) plus a per-seed shift and per-(seed, item) noise is positive: copies trained with other seeds mostly agree, as real
    ones do (seed-to-seed sd of balanced accuracy about 2 pp). `shifts[m]` moves model m (the planted effect)."""
    base = rng.normal(1.0, 1.0, n)
    out = {}
    for m, shift in shifts.items():
        ease = base + rng.normal(0, item_sd, n) + shift
        out[m] = (ease[None] + rng.normal(0, seed_sd, (seeds, 1)) + rng.normal(0, noise_sd, (seeds, n)) > 0).astype(float)
    return out

def true_effect(shift, item_sd=0.5, rng=np.random.default_rng(123), n=400_000):
    "Population balanced-accuracy difference (pp) of a shift: fresh items and seeds, Monte Carlo."
    base = rng.normal(1.0, 1.0, n)
    ok = lambda s: (base + rng.normal(0, item_sd, n) + s + rng.normal(0, 0.15, n) + rng.normal(0, 0.6, n) > 0).mean()
    return 100 * (ok(shift) - ok(0.0))

IDS = np.arange(N_ITEMS)

def contrast(delta, dataset="d"):
    "The comparison's data, as `compare` builds it from predictions."
    return item_contrast(delta, LABELS, IDS, dataset=dataset)

def decided(contrasts, families=None, alpha=0.05, margin=MARGIN):
    "The verdict table `compare` gives for these comparisons (its deciding step, `decide_comparisons`, on rows built by `contrast_row`)."
    rows = [dict(contrast_row(c), family=(families or ["primary"] * len(contrasts))[i], undecided="") for i, c in enumerate(contrasts)]
    return decide_comparisons(pd.DataFrame(rows), margin, alpha)

def verdicts(models, variants, baseline="none", margin=MARGIN):
    return decided([contrast(models[v] - models[baseline]) for v in variants], margin=margin)

def shift_for(effect_pp):
    "The logit shift whose population effect is `effect_pp` (bisection)."
    lo, hi = 0.0, 2.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if true_effect(mid) < effect_pp else (lo, mid)
    return (lo + hi) / 2

def sim_error(p, n): return 2 * np.sqrt(p * (1 - p) / n)

@pytest.mark.parametrize("seeds,item_sd,n", [(5, 0.5, 500), (10, 0.5, 400), (5, 1.5, 250)])
def test_null_studies_keep_the_family_wise_rate_near_alpha(seeds, item_sd, n):
    """Null studies of 4 declared comparisons against the same baseline runs: P(any better or worse) is at most 5 % (within simulation
    error) and not far below it (at least 2.5 %: the items' degrees of freedom are credited); a seeds-only test, which takes the test
    set as fixed, does not keep the rate when the test set's own favouritism (item x model interaction) is strong (there the rate is
    held to its ceiling only: strong favouritism leaves the items' part large and noisy, and the rule stays on the safe side)."""
    rng = np.random.default_rng(seeds * 10 + int(item_sd * 10))
    fw, fw_seeds_only = 0, 0
    for _ in range(n):
        models = study(rng, {"none": 0, "a": 0, "b": 0, "c": 0, "d": 0}, seeds=seeds, item_sd=item_sd)
        t = verdicts(models, "abcd")
        fw += t.verdict.isin(["better", "worse"]).any()
        fw_seeds_only += any(decide(r.effect, 100 * np.sqrt(r.contrast.per_seed.var(ddof=1) / seeds), seeds - 1, MARGIN, 0.05, FAMILY)["verdict"] in ("better", "worse")
                             for r in t.itertuples())
    rate = fw / n
    assert rate <= 0.05 + sim_error(0.05, n), f"family-wise rate {rate:.3f}"
    if item_sd < 1: assert rate >= 0.025 - sim_error(0.025, n) / 2, f"family-wise rate {rate:.3f}: power wasted"
    if item_sd > 1: assert fw_seeds_only / n > 0.10, f"the item part matters here: seeds-only rate {fw_seeds_only / n:.3f}"

def test_equivalence_is_rarely_claimed_at_the_margin():
    "True effect exactly +1 pp (the margin): 'equivalent' in <= 5 % of 500 studies."
    rng, shift = np.random.default_rng(1), shift_for(MARGIN)
    eq = sum(verdicts(study(rng, {"none": 0, "a": shift}), "a").verdict[0] == "equivalent" for _ in range(500))
    assert eq / 500 <= 0.05, f"equivalent at the margin: {eq / 500:.3f}"

def test_equivalent_never_beside_an_interval_that_crosses_the_margin():
    "10 seeds, effects near zero, a 4 pp margin: every 'equivalent' verdict's printed interval lies inside the margin."
    rng, n_eq = np.random.default_rng(11), 0
    for _ in range(150):
        t = verdicts(study(rng, {"none": 0, "a": 0.0, "b": 0.1}, seeds=10, item_sd=0.2), "ab", margin=4.0)
        eq = t[t.verdict == "equivalent"]; n_eq += len(eq)
        assert ((eq.ci_low > -4.0) & (eq.ci_high < 4.0)).all(), eq[["ci_low", "ci_high"]]
    assert n_eq > 20, n_eq                                                           # the check saw equivalence verdicts

def test_power_at_the_reported_minimum_detectable_effect():
    "Plant the minimum detectable effect that null studies of this design report: 'better' >= 75 % of the time; the planner agrees with the verdicts."
    rng = np.random.default_rng(2)
    mde = np.median([verdicts(study(rng, {"none": 0, "a": 0}), "a").mde[0] for _ in range(200)])
    shift = shift_for(mde)
    better = sum(verdicts(study(rng, {"none": 0, "a": shift}), "a").verdict[0] == "better" for _ in range(400))
    assert better / 400 >= 0.75, f"power at the reported MDE ({mde:.2f} pp): {better / 400:.3f}"
    r = verdicts(study(rng, {"none": 0, "a": 0}), "a").iloc[0]
    assert abs(power(r.mde, r.var_seed * SEEDS, r.var_item, SEEDS) - 0.8) < 0.03, "the planner and the verdicts agree"

def shared_grid(rng, n_ds, n_arch, seeds, tau=0.0, item_sd=0.5, seed_sd=0.15):
    """One null grid: `n_ds` test sets, `n_arch` backbones on each; the variant's item interaction on a test set is shared by every
    backbone (the worst case for pooling that ignores shared test sets); `tau`: a per-comparison true effect (heterogeneity, mean 0)."""
    rows = []
    for d in range(n_ds):
        base, inter = rng.normal(1.0, 1.0, N_ITEMS), rng.normal(0, item_sd, N_ITEMS)
        for a in range(n_arch):
            arch = base + rng.normal(0, 0.3, N_ITEMS)
            ok = lambda e: (e[None] + rng.normal(0, seed_sd, (seeds, 1)) + rng.normal(0, 0.6, (seeds, N_ITEMS)) > 0).astype(float)
            ease_v = arch + 0.9 * inter + np.sqrt(1 - 0.81) * rng.normal(0, item_sd, N_ITEMS) + rng.normal(0, tau)
            c = contrast(ok(ease_v) - ok(arch + rng.normal(0, item_sd, N_ITEMS)), dataset=f"d{d}")
            rows.append(dict(contrast_row(c), dataset=f"d{d}", arch=f"a{a}", augment=False, variant="se", baseline="none", family="primary",
                             undecided="", conditional=False))
    return pd.DataFrame(rows)

@pytest.mark.parametrize("n_ds,n_arch", [(4, 1), (2, 3)])
@pytest.mark.parametrize("seeds", [3, 5])
def test_the_pooled_answer_keeps_its_error_rate(n_ds, n_arch, seeds):
    """The report's first line: under the null, the pooled verdict is better or worse in at most 5 % of grids (within simulation error),
    for 4 independent datasets and for 2 datasets x 3 backbones sharing each test set, at 3 and 5 seeds."""
    rng = np.random.default_rng(100 * n_ds + seeds)
    n = 320
    hits = sum(pooled_effects(shared_grid(rng, n_ds, n_arch, seeds)).verdict[0] in ("better", "worse") for _ in range(n))
    assert hits / n <= 0.05 + sim_error(0.05, n), f"pooled false-positive rate {hits / n:.3f}"

def test_the_pooled_answer_with_heterogeneous_effects():
    "Real between-comparison heterogeneity with mean zero (4 datasets, 5 seeds): the pooled verdict still keeps about its 5 %."
    rng, n = np.random.default_rng(77), 320
    hits = sum(pooled_effects(shared_grid(rng, 4, 1, 5, tau=0.3)).verdict[0] in ("better", "worse") for _ in range(n))
    assert hits / n <= 0.05 + sim_error(0.05, n), f"pooled false-positive rate {hits / n:.3f}"

def test_the_prediction_interval_covers_a_new_dataset():
    "5 datasets with true effects spread around 0 (sd tau): the 95 % prediction interval holds a new dataset's true effect >= 93 % of the time."
    rng, hits, n = np.random.default_rng(8), 0, 600
    for i in range(n):
        tau = [0.0, 1.0, 3.0][i % 3]
        theta = rng.normal(0, tau, 6)                                               # 5 datasets and a new one (pp)
        rows = [dict(contrast_row(Contrast(np.arange(5), (theta[d] + rng.normal(0, 2.0, 5) + rng.normal(0, 1.0)) / 100)), dataset=f"d{d}", arch="a", augment=False,
                     variant="se", baseline="none", family="primary", undecided="", conditional=True) for d in range(5)]
        p = pooled_effects(pd.DataFrame(rows)).iloc[0]
        hits += p.pi_low <= theta[5] <= p.pi_high
    assert hits / n >= 0.93, f"prediction interval coverage {hits / n:.3f}"

def test_plans_ask_about_the_seeds_the_truth_needs():
    """3-seed pilots (seed sd 2 pp, item part 0.5 pp^2), a +3 pp gain: the seeds `plan` asks for are about right in the median (half of pilots
    ask too many, half too few), rarely beyond its largest design, the range it states holds the seeds the truth needs, and the power it says
    to expect is the power its plans reach on average (each plan's power computed at the true variances)."""
    rng = np.random.default_rng(9)
    true_vs, vi, effect, asked, pw, said, inside = 4.0, 0.5, 3.0, [], [], [], 0
    need_true = plan(true_vs, vi, effects=(effect,), items_factors=(1,)).iloc[0]["seeds, 1x test items"]
    for _ in range(60):
        s2 = true_vs * rng.chisquare(2) / 2                                         # the pilot's s^2_D on 2 df
        row = plan(s2, vi, effects=(effect,), items_factors=(1,), pilot_seeds=3, max_seeds=200).iloc[0]
        n_seeds = row["seeds, 1x test items"]
        asked.append(201 if isinstance(n_seeds, str) else n_seeds)
        pw.append(power(effect, true_vs, vi, min(asked[-1], 200)))
        if not isinstance(n_seeds, str): said.append(float(row["expected power, 1x"].rstrip(" %")) / 100)
        lo, hi = (int(x) if x.isdigit() else 10 ** 6 for x in row["range, 1x"].replace("between ", "").replace("> 200", "1000000").split(" and "))
        inside += lo <= need_true <= hi
    assert 0.7 * need_true <= np.median(asked) <= 1.4 * need_true, (np.median(asked), need_true)
    assert np.mean(np.array(asked) > 200) < 0.15 and inside / 60 >= 0.7, (asked, inside)
    assert abs(np.mean(said) - np.mean(pw)) <= 0.1, (np.mean(said), np.mean(pw))

def test_an_underpowered_null_is_inconclusive_not_negative():
    "3 seeds, a +4 pp observed effect with a wide interval: the sentence says inconclusive and what the design could detect."
    rows = pd.DataFrame([dict(dataset="d", arch="resnet18", augment=False, attention=a, seed=s, balanced_accuracy=v)
                         for s, (b, x) in enumerate([(0.70, 0.78), (0.74, 0.73), (0.72, 0.77)]) for a, v in (("none", b), ("se", x))])
    r = compare(rows).iloc[0].to_dict()
    assert r["verdict"] == "inconclusive" and r["ci_low"] < 0 < r["ci_high"] and r["ci_high"] > MARGIN
    s = verdict_sentence(r)
    assert "inconclusive" in s and "95.0 % CI" in s and "detects about ±" in s and "seeds only" in s

def test_pooled_effect_finds_a_consistent_gain_and_reports_heterogeneity():
    rng = np.random.default_rng(4)
    rows, preds = [], {}
    for ds in range(5):
        models = study(rng, {"none": 0, "se": 0.35})
        for att, c in models.items():
            for s in range(SEEDS):
                pred = np.where(c[s] == 1, LABELS, 1 - LABELS)
                preds[(f"d{ds}", "resnet18", False, att, s)] = pd.DataFrame(dict(id=np.arange(N_ITEMS), label=LABELS, prediction=pred))
                rows.append(dict(dataset=f"d{ds}", arch="resnet18", augment=False, attention=att, seed=s, balanced_accuracy=float(c[s] @ W)))
    cmp = compare(pd.DataFrame(rows), predictions=preds)
    p = pooled_effects(cmp).iloc[0]
    assert p.k == 5 and p.verdict == "better" and p.ci_low > 0 and np.isfinite(p.pi_low) and 0 <= p.i2 <= 1
    assert "**se** (vs none) **helps**" in pooled_sentence(p.to_dict())

def test_mcnemar_ignores_training_randomness():
    "Why McNemar is only a diagnostic: on a null with real seed-to-seed variation it calls far more comparisons significant than its 5 %."
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(100):
        m = study(rng, {"none": 0, "a": 0}, seeds=5, seed_sd=0.3)
        y = np.tile(LABELS, 5)
        pa, pb = (np.where(m[k].ravel() == 1, y, 1 - y) for k in ("a", "none"))
        hits += mcnemar_test(y, pa, pb)["p_mcnemar"] < 0.05
    assert hits / 100 > 0.2, hits

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

def test_one_seed_is_no_test():
    rows = pd.DataFrame([dict(dataset="d", arch="a", augment=False, attention=a, seed=0, balanced_accuracy=v) for a, v in (("none", .7), ("se", .8))])
    r = compare(rows).iloc[0].to_dict()
    assert r["verdict"] == "not decided" and "cannot be estimated from one seed" in verdict_sentence(r) and "inconclusive" not in verdict_sentence(r)

def cells_and_predictions(correct, dataset="d", arch="resnet18"):
    "Result rows and prediction frames from {attention: S x n correctness on the binary test set}."
    rows, preds = [], {}
    for att, c in correct.items():
        for s in range(len(c)):
            pred = np.where(c[s] == 1, LABELS, 1 - LABELS)
            preds[(dataset, arch, False, att, s)] = pd.DataFrame(dict(id=IDS, label=LABELS, prediction=pred))
            rows.append(dict(dataset=dataset, arch=arch, augment=False, attention=att, seed=s, balanced_accuracy=float(c[s] @ W)))
    return pd.DataFrame(rows), preds

def test_degenerate_designs_are_named_never_decided():
    "Each design that cannot support a verdict gets its sentence and no better / worse / equivalent."
    rng = np.random.default_rng(12)
    good = study(rng, {"none": 0, "se": 0.3})
    r, p = cells_and_predictions({"none": good["none"], "se": good["none"].copy()}); row = compare(r, predictions=p).iloc[0].to_dict()
    assert row["verdict"] == "not decided" and "identical predictions on every item" in verdict_sentence(row)
    r, p = cells_and_predictions({"none": good["none"][:2], "se": good["se"][:2]}); row = compare(r, predictions=p).iloc[0].to_dict()
    assert "one degree of freedom" in verdict_sentence(row) and not np.isfinite(row["ci_low"])
    # both at chance: every item answered with one class (so right on exactly one class's items)
    chance = np.tile((LABELS == 0).astype(float), (5, 1)); chance_b = np.tile((LABELS == 1).astype(float), (5, 1))
    r, p = cells_and_predictions({"none": chance, "se": chance_b}); row = compare(r, predictions=p).iloc[0].to_dict()
    assert row["verdict"] == "not decided" and "both models are at chance" in verdict_sentence(row), verdict_sentence(row)
    # the same difference on every seed, seeds only: zero spread is not certainty
    rows = pd.DataFrame([dict(dataset="d", arch="a", augment=False, attention=a, seed=s, balanced_accuracy=0.70 + (0.0099 if a == "se" else 0)) for s in range(3) for a in ("none", "se")])
    row = compare(rows).iloc[0].to_dict()
    assert row["verdict"] == "not decided" and "same on every seed" in verdict_sentence(row) and "detects about ±0.0" not in verdict_sentence(row)
    # still improving at the last epoch (histories), in the verdict and kept out of the pool
    r, p = cells_and_predictions(good)
    rising = {(k[0], k[1], k[2], k[3], k[4]): pd.DataFrame(dict(epoch=[1, 2, 3], balanced_accuracy_score=[0.5, 0.55, 0.65])) for k in p}
    c = compare(r, predictions=p, histories=rising); row = c.iloc[0].to_dict()
    assert row["verdict"] == "not decided" and "still improving at the last epoch" in verdict_sentence(row)
    assert "not decided" in pooled_sentence(pooled_effects(c).iloc[0].to_dict())
    flat = {k: h.assign(balanced_accuracy_score=[0.5, 0.65, 0.652]) for k, h in rising.items()}
    r2, p2 = cells_and_predictions({"none": good["none"][:2], "se": good["se"][:2]})   # 2 of 3 declared seeds done: an unfinished grid, not a design to change
    row = compare(r2, predictions=p2, declared_seeds=3).iloc[0].to_dict()
    assert row["verdict"] == "not decided" and "only 2 of the study's 3 seeds have finished" in verdict_sentence(row) and "run at least 3" not in verdict_sentence(row)
    assert compare(r, predictions=p, histories=flat).undecided[0] == ""
    one = {k: (h if k[3] == "none" else flat[k]) for k, h in rising.items()}         # only the baseline still rising: decided, with the caveat
    row = compare(r, predictions=p, histories=one).iloc[0].to_dict()
    assert row["undecided"] == "" and "none was still improving at its last epoch" in verdict_sentence(row)

def test_no_silent_fallback():
    "A seed whose predictions are missing is dropped from its comparison, and said; without predictions the verdict is worded as conditional on the test set."
    rng = np.random.default_rng(13)
    r, p = cells_and_predictions(study(rng, {"none": 0, "se": 0.5}))
    del p[("d", "resnet18", False, "se", 2)]
    row = compare(r, predictions=p).iloc[0].to_dict()
    assert row["seeds"] == SEEDS - 1 and "seed 2 left out" in verdict_sentence(row) and row["sources"] == "seeds and test items"
    row = compare(r).iloc[0].to_dict()
    s = verdict_sentence(row)
    assert "conditional on this test set" in s and (row["verdict"] not in ("better", "worse") or "on this test set" in s.split(":")[-2])


def test_zero_spread_is_judged_with_a_tolerance():
    "+3 pp on every seed whose float differences are 1e-16 apart is the same difference on every seed: not decided, never 'helps, p=4e-60, detects ±0.0'."
    rows = pd.DataFrame([dict(dataset="d", arch="a", augment=False, attention=a, seed=s, balanced_accuracy=0.70 + (0.03 + s * 1e-16 if a == "se" else 0))
                         for s in range(5) for a in ("none", "se")])
    row = compare(rows).iloc[0].to_dict()
    assert row["verdict"] == "not decided" and "same on every seed" in row["undecided"], verdict_sentence(row)

def test_a_seed_with_one_arm_only_is_left_out_with_a_note():
    rows = pd.DataFrame([dict(dataset="d", arch="a", augment=False, attention=a, seed=s, balanced_accuracy=0.7 + 0.01 * s + (0.02 if a == "se" else 0))
                         for s in range(4) for a in ("none", "se") if not (s == 3 and a == "se")])   # seed 3's se cell failed
    row = compare(rows).iloc[0].to_dict()
    assert row["seeds"] == 3 and "seed 3 left out: only one of the two arms has a result" in row["notes"], row["notes"]

def test_printed_intervals_agree_with_their_verdict():
    "Enough digits that the interval shown reads as the verdict: no 'equivalent' beside [-1.0, +1.0], no 'helps' beside an interval from +0.0."
    base = dict(variant="se", baseline="none", arch="a", dataset="d", augment=False, family="primary", seeds=5, items=400, df=20, p_adjusted=0.01,
                adjustment="Holm over 1 declared comparison", sources="seeds and test items", margin=1.0, ci_level=0.95, mde=1.0, undecided="", notes="")
    s = verdict_sentence(dict(base, effect=0.02, ci_low=-0.96, ci_high=0.999, verdict="equivalent"))
    assert "[-0.960, +0.999]" in s and "**equivalent**" in s, s
    s = verdict_sentence(dict(base, effect=1.2, ci_low=0.04, ci_high=2.3, verdict="better"))
    assert "[+0.04, +2.30]" in s and "**helps**" in s, s
