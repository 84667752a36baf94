"""The synthetic benchmarks: shortcut rates per split, mask / concept consistency, determinism, option checks."""
import numpy as np, pytest
from functools import partial
from attnmed.data import DataError
from attnmed.synthetic import generate, synthetic_options, Synthetic
from attnmed.config import DatasetSpec

@pytest.mark.parametrize("gen", [partial(generate, "synth-derm"), partial(generate, "synth-mammo")], ids=["derm", "mammo"])
def test_shortcut_rates_per_split(gen):
    d = gen(image_size=32, n_train=1200, n_val=400, n_test=1200, shortcut_train=0.9, shortcut_test=0.5, seed=5)
    for split, rate in [("train", 0.9), ("val", 0.9), ("test", 0.5)]:
        y, sc = d[f"{split}_labels"][:, 0] == 1, d[f"{split}_concepts"][:, 1] == 1
        assert abs(sc[y].mean() - rate) < 0.05 and abs((~sc[~y]).mean() - rate) < 0.05, split
        assert np.array_equal(d[f"{split}_shortcut_masks"].any((1, 2)), sc), "shortcut mask iff the shortcut concept"
        assert np.array_equal(d[f"{split}_masks"].any((1, 2)), y), "evidence mask iff positive"
        assert np.array_equal(d[f"{split}_concepts"][:, 0] == 1, y)

@pytest.mark.parametrize("gen", [partial(generate, "synth-derm"), partial(generate, "synth-mammo")], ids=["derm", "mammo"])
def test_deterministic_and_seed_dependent(gen):
    a, b, c = (gen(image_size=48, n_train=16, n_val=4, n_test=4, seed=s) for s in (1, 1, 2))
    assert all(np.array_equal(a[k], b[k]) for k in a if k != "concept_names")
    assert not np.array_equal(a["train_images"], c["train_images"])

def test_visibility_zero_hides_the_evidence():
    vis = generate("synth-derm", image_size=48, n_train=32, n_val=2, n_test=2, visibility=1.0, seed=3)
    hid = generate("synth-derm", image_size=48, n_train=32, n_val=2, n_test=2, visibility=0.0, seed=3)
    pos = vis["train_labels"][:, 0] == 1
    m = vis["train_masks"][pos]
    assert vis["train_images"][pos][m].mean() < hid["train_images"][pos][m].mean() - 5, "dark globules only when visible"

def test_options_are_checked():
    with pytest.raises(DataError, match=r"unknown option 'hair_rate' for format synthetic"):
        Synthetic().values(DatasetSpec.of(dict(name="m", format="synthetic", path="/tmp", kind="synth-mammo", hair_rate=0.2)))
    with pytest.raises(DataError, match="field 'shortcut_train': must be <= 1"): generate("synth-derm", shortcut_train=1.5)
    with pytest.raises(DataError, match="field 'kind': expected one of synth-derm, synth-mammo, synth-pair, got 'synth-xray'"): Synthetic().values(DatasetSpec.of(dict(name="x", path="/tmp", kind="synth-xray")))
    with pytest.raises(DataError, match="unknown synthetic kind 'synth-xray'"): synthetic_options("synth-xray")
