"""Carving missing splits from a large image table, measured side by side in one run:
attnmed's `assign_splits` (`group_carve`: a few array operations) against scikit-learn's `StratifiedGroupKFold` (one Python step per
group), on the same table. The target: a 1,000,000-row table of 250,000 patients carved in seconds, so a dry run answers at once.

    python bench/carve.py [--rows 1000000] [--patients 250000] [--sklearn-rows 100000]

scikit-learn runs on a smaller table (`--sklearn-rows`, the same rows per patient), and the ratio is measured on that table.
"""
import argparse, time, warnings
import numpy as np, pandas as pd
from attnmed.tables import assign_splits

def table(rows, patients, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(dict(path=[f"img/{i}.png" for i in range(rows)], label=rng.integers(0, 8, rows),
                             patient=[f"p{i}" for i in rng.integers(0, patients, rows)], split=""))

def sklearn_carve(t, fraction=0.2, seed=0):
    from sklearn.model_selection import StratifiedGroupKFold
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return next(StratifiedGroupKFold(n_splits=round(1 / fraction), shuffle=True, random_state=seed).split(t, t["label"], t["patient"]))[1]

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000); p.add_argument("--patients", type=int, default=250_000)
    p.add_argument("--sklearn-rows", type=int, default=100_000)
    a = p.parse_args(argv)
    big, small = table(a.rows, a.patients), table(a.sklearn_rows, a.sklearn_rows * a.patients // a.rows)
    t = time.perf_counter(); s = assign_splits(big, source="bench"); ours = time.perf_counter() - t
    assert s.groupby("patient").split.nunique().max() == 1
    t = time.perf_counter(); assign_splits(small, source="bench"); ours_small = time.perf_counter() - t
    t = time.perf_counter(); sklearn_carve(small); theirs = time.perf_counter() - t
    print(f"assign_splits, {a.rows:,} rows / {a.patients:,} patients: {ours:.2f} s (test and val carved)")
    print(f"{a.sklearn_rows:,} rows: assign_splits {ours_small:.2f} s (test and val); StratifiedGroupKFold {theirs:.2f} s (test only)")
    print(f"ratio StratifiedGroupKFold / assign_splits on the same {a.sklearn_rows:,} rows: {theirs / ours_small:.0f}x")

if __name__ == "__main__": main()
