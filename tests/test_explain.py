"""Explanations that are scored: every method on every model family, localisation scores, the shortcut and randomisation tests on
really trained models, the concept test's error rates, and the explanation section of a real report."""
import json
import numpy as np, pandas as pd, pytest, torch
from attnmed.data import FORMATS
from attnmed.datasets import load_dataset, dataset_stats
from attnmed.loaders import make_dataloaders
from attnmed.models import create_model, randomised_copy
from attnmed.train import make_learner, fit, seed_everything
from attnmed.explain import (METHODS, ExplainError, explain, localisation_scores, shortcut_accuracies,
                             randomisation_test, concept_test, normalised, predict_logits)
from conftest import tiny_study, run
from attnmed.config import DatasetSpec

FAMILIES = [("resnet18", "se"), ("resnet18", "nonlocal"), ("resnet18", "botnet"), ("vgg16", "cbam"), ("densenet121", "mldam"),
            ("efficientnet_b0", "eca"), ("convnext_tiny", "mhsa"), ("vit_small", "none"), ("swin_tiny", "none")]

@pytest.mark.parametrize("arch,att", FAMILIES)
def test_every_method_on_every_family(arch, att):
    torch.manual_seed(0)
    m = create_model(arch, att, image_size=64)
    x = torch.randn(2, 3, 64, 64)
    for method in METHODS:
        if att == "none" and method == "attention":
            with pytest.raises(ExplainError, match="no attention modules"): explain(m, x, method)
            continue
        a = explain(m, x, method)
        assert a.shape == (2, 64, 64) and torch.isfinite(a).all() and (a >= 0).all(), method

def test_localisation_scores_bounds():
    masks = np.zeros((4, 32, 32), bool); masks[:, 10:14, 3:9] = True
    perfect = localisation_scores(masks * 5.0, masks)
    assert {k: perfect[k] for k in ("relevance_mass", "pointing_game", "auroc", "n")} == dict(relevance_mass=1.0, pointing_game=1.0, auroc=1.0, n=4)
    assert perfect["relevance_mass_chance"] == pytest.approx(24 / 1024) and perfect["auroc_chance"] == 0.5
    u = localisation_scores(np.ones((4, 32, 32)), masks)
    assert u["relevance_mass"] == pytest.approx(24 / 1024) and u["auroc"] == pytest.approx(0.5)
    inverted = localisation_scores((~masks).astype(float), masks)
    assert inverted["relevance_mass"] == 0 and inverted["auroc"] == pytest.approx(0.0)

def train_tiny(tmp, shortcut_train, visibility=0.35, label_noise=0.0, epochs=4, size=32, seed=0):
    spec = dict(name="d", format="synthetic", path=str(tmp), n_train=600, n_val=100, n_test=300, shortcut_train=shortcut_train,
                shortcut_test=0.5, visibility=visibility, label_noise=label_noise, hair_rate=0.4)
    seed_everything(seed)
    data = load_dataset(spec, size)
    dls, _ = make_dataloaders(data, batch_size=32, seed=seed)
    learn = make_learner(dls, create_model("resnet10t", "none", image_size=size, seed=seed), lr=3e-3, path=tmp, progress=False)
    fit(learn, epochs)
    return spec, data, learn.model.eval()

def shortcut_drop(spec, data, model, size=32):
    predict = lambda imgs: predict_logits(model, normalised(imgs, dataset_stats(data.images["train"]))).argmax(1).numpy()
    return shortcut_accuracies(predict, FORMATS["synthetic"].counterfactual_tests(DatasetSpec.of(spec), size))

@pytest.mark.slow
@pytest.mark.cost(60)
def test_shortcut_test_detects_a_shortcut_model_and_not_a_clean_one(tmp_path):
    # visible evidence (visibility 1) at 48 px: the clean model learns it well, so its decisions are not on a knife's edge
    biased = shortcut_drop(*train_tiny(tmp_path / "a", shortcut_train=1.0, visibility=1.0, size=48), size=48)
    clean = shortcut_drop(*train_tiny(tmp_path / "b", shortcut_train=0.5, visibility=1.0, size=48), size=48)
    assert biased["changed_flipped"] > 0.5, biased          # test co-occurrence 0.5: the accuracy barely moves, the predictions do
    assert clean["changed_flipped"] < 0.1 and clean["accuracy_as_is"] > 0.85, clean
    assert biased["changed_flipped"] > biased["changed_removed"]

@pytest.mark.slow
@pytest.mark.cost(70)
def test_gradcam_localises_the_evidence_of_a_trained_model(tmp_path):
    # at 64 px the last stage is 2 x 2: upsampled, it cannot peak on a small central structure; the default layer (>= 7 x 7) can
    spec, data, model = train_tiny(tmp_path, shortcut_train=0.5, visibility=1.0, epochs=6, size=64)
    pos = np.where(data.labels["test"] == 1)[0][:48]
    x, masks, target = normalised(data.images["test"][pos], dataset_stats(data.images["train"])), data.extras["test_masks"][pos], torch.ones(len(pos), dtype=torch.long)
    default = localisation_scores(explain(model, x, "gradcam", targets=target).numpy(), masks)
    last_stage = localisation_scores(explain(model, x, "gradcam", targets=target, gradcam_min_size=1).numpy(), masks)
    assert default["pointing_game"] > 0.5 and default["auroc"] > 0.9, default
    assert default["pointing_game"] > last_stage["pointing_game"] + 0.3, (default, last_stage)

@pytest.mark.slow
@pytest.mark.cost(65)
def test_randomisation_and_concepts_on_a_trained_model(tmp_path):
    spec, data, model = train_tiny(tmp_path, shortcut_train=0.9, visibility=1.0, label_noise=0.1, epochs=6, size=64)   # at 48 px an undertrained model also reads hairs as globules
    x = normalised(data.images["test"][:8], dataset_stats(data.images["train"]))
    r = randomisation_test(model, x, "gradcam")
    assert r["passed"] and r["spearman"] < 0.5, r
    rand = randomised_copy(model)
    assert all(not torch.equal(a, b) for (n, a), (_, b) in zip(model.state_dict().items(), rand.state_dict().items()) if a.is_floating_point() and a.numel() > 1 and "running" not in n)
    lg = predict_logits(model, normalised(data.images["test"], dataset_stats(data.images["train"]))).numpy()
    ct = concept_test(lg[:, 1] - lg[:, 0], data.labels["test"], data.extras["test_concepts"], data.extras["concept_names"]).set_index("concept")
    assert ct.loc["has_structure", "used"] and ct.loc["has_structure", "effect"] > 0, ct
    assert ct.loc["has_shortcut", "used"] and ct.loc["has_shortcut", "effect"] > 0, ct
    assert not ct.loc["has_hair", "used"], ct

CONCEPT_NAMES = ["has_structure", "has_shortcut", "has_hair", "calcification"]

def simulated_concepts(rng, rate, n=300):
    "Concepts as the synthetic generators draw them: the shortcut follows the visible evidence at `rate`, the label disagrees with the evidence for 5 % of items, calcifications are a subset of the evidence."
    evidence = rng.integers(0, 2, n)
    label = np.where(rng.random(n) < 0.05, 1 - evidence, evidence)
    shortcut = np.where(rng.random(n) < rate, evidence, 1 - evidence)
    hair = (rng.random(n) < 0.3).astype(int)
    calc = evidence * (rng.random(n) < 0.5)
    return label, np.stack([evidence, shortcut, hair, calc], 1)

@pytest.mark.parametrize("rate", [0.5, 0.7, 0.9])
def test_concept_test_conditions_on_the_other_concepts(rate):
    """A model that reads only the shortcut is not said to use the evidence, one that reads only the evidence is not said to use the
    shortcut or the calcifications (a subset of the evidence), at every shortcut co-occurrence from 0.5 to 0.9: error <= 5 %, power >= 80 %."""
    rng = np.random.default_rng(int(rate * 100))
    sims, wrong, found = 200, {"structure": 0, "hair": 0, "shortcut": 0, "calcification": 0}, {"shortcut": 0, "structure": 0}
    for _ in range(sims):
        label, C = simulated_concepts(rng, rate)
        n = len(label)
        ct = concept_test(2.0 * C[:, 1] + rng.normal(0, 1, n), label, C, CONCEPT_NAMES, n_perm=199, seed=int(rng.integers(1 << 30))).set_index("concept")
        wrong["structure"] += ct.loc["has_structure", "used"]; wrong["hair"] += ct.loc["has_hair", "used"]; found["shortcut"] += ct.loc["has_shortcut", "used"]
        ct = concept_test(2.0 * C[:, 0] + rng.normal(0, 1, n), label, C, CONCEPT_NAMES, n_perm=199, seed=int(rng.integers(1 << 30))).set_index("concept")
        wrong["shortcut"] += ct.loc["has_shortcut", "used"]; wrong["calcification"] += ct.loc["calcification", "used"]; found["structure"] += ct.loc["has_structure", "used"]
    for k, v in wrong.items(): assert v / sims <= 0.05, f"{k} flagged in {v / sims:.3f} of simulations at shortcut rate {rate}"
    assert found["shortcut"] / sims >= 0.8, found
    assert found["structure"] / sims >= 0.8, found

def test_concept_test_label_alone_is_not_enough():
    "The old test (conditioning on the label only) flags the evidence for a shortcut-only model at a 0.9 co-occurrence; the joint one does not."
    rng = np.random.default_rng(7)
    label, C = simulated_concepts(rng, 0.9, n=600)
    score = 2.0 * C[:, 1] + rng.normal(0, 1, len(label))
    joint = concept_test(score, label, C, CONCEPT_NAMES).set_index("concept")
    alone = concept_test(score, label, C[:, :1], CONCEPT_NAMES[:1]).set_index("concept")
    assert alone.loc["has_structure", "used"] and not joint.loc["has_structure", "used"]
@pytest.mark.cost(50)
def test_models_at_chance_give_no_maps_scores_or_localisation_verdict(tmp_path):
    "Images whose label leaves no trace (visibility 0): every model is at chance, so no map is drawn as what it learned, nothing is scored, and no localisation comparison is decided."
    from attnmed.grid import demo_study
    from attnmed.report import render_explanations
    from attnmed.layout import STUDY, explanation_table
    from attnmed.statistics import NOT_DECIDED
    folder = demo_study(tmp_path, datasets=[dict(name="blind", format="synthetic", path=str(tmp_path / "data"), n_train=96, n_val=32, n_test=64, visibility=0.0, label_noise=0.0)],
                        seeds=[0, 1, 2], epochs=1)
    render_explanations(folder, n_images=2, n_score=4, n_sanity=2, only="seed0,seed2")   # picked as the grid's --only picks
    assert sorted(f.rsplit("/", 1)[1] for f in json.loads((folder / STUDY.explained_cells).read_text())) == ["seed0", "seed0", "seed2", "seed2"]
    out = folder / STUDY.explanations
    read = lambda name: pd.read_csv(out / explanation_table(name))
    not_scored = read("not_scored")
    assert not_scored.why.str.startswith("at chance on the test set").sum() >= 1, not_scored
    assert not any("_saliency.png" in f for f in read("figures").file), "no map of a model at chance is drawn as evidence"
    loc = read("localisation_tests") if (out / explanation_table("localisation_tests")).stat().st_size > 1 else pd.DataFrame()
    assert not len(loc) or (loc.verdict == NOT_DECIDED).all(), loc[["variant", "verdict", "undecided"]]

@pytest.mark.cost(150)
def test_masks_from_each_publishers_layout_are_scored_in_the_explanations(tmp_path):
    "A folder with masks/, a CSV with a mask column, ISIC 2019 with ISIC 2018's segmentations and CBIS-DDSM's whole mammograms with their ROI masks train through the grid, and their test images' maps are scored against the masks (with intervals and the thresholded IoU) in the explanations."
    from attnmed.grid import demo_study
    from attnmed.report import render_explanations
    from attnmed.layout import STUDY, explanation_table
    from attnmed.testing import write_sample_folder, write_sample_csv, write_sample_isic2019, write_sample_cbis_ddsm
    tree, listing = write_sample_folder(tmp_path / "tree", per_class=16, masks=True), write_sample_csv(tmp_path / "listing", n=96, masks=True)
    isic = write_sample_isic2019(tmp_path / "isic", n=96, masks=True)
    datasets = [dict(name="tree", format="folder", path=str(tree)),
                dict(name="listing", format="csv", path=str(listing), label_column="diagnosis", patient_column="patient", mask_column="mask"),
                dict(name="isic", format="isic2019", path=str(isic), positive=["MEL"], masks=str(isic / "ISIC2018_Task1_Training_GroundTruth")),
                dict(name="mammo", format="cbis-ddsm", path=str(cbis := write_sample_cbis_ddsm(tmp_path / "cbis", n_patients=24, jpeg=True)), image="full"),
                dict(name="crops", format="cbis-ddsm", path=str(cbis), image="crop")]   # each crop's ROI mask cut where the crop lies in its mammogram
    folder = demo_study(tmp_path, datasets=datasets, seeds=[0], epochs=4)
    render_explanations(folder, n_images=2, n_score=8, n_sanity=2)
    read = lambda name: pd.read_csv(folder / STUDY.explanations / explanation_table(name))
    loc, not_scored = read("localisation"), read("not_scored")
    at_chance = set(not_scored[not_scored.why.str.startswith("at chance")].cell.str.split("/").str[0])
    assert set(loc.dataset) | at_chance == {"tree", "listing", "isic", "mammo", "crops"}, (loc.dataset.unique(), not_scored)
    assert len(set(loc.dataset)) >= 2, "the blobs are learnt: most datasets' maps are scored"
    scored = loc[loc.relevance_mass_low.notna()]                               # an interval where 2 or more images' maps are not zero everywhere
    assert (loc.n > 0).all() and len(scored) >= len(loc) // 2 and scored[["iou", "iou_low", "iou_high"]].notna().all().all()
    assert (scored.relevance_mass_low <= scored.relevance_mass).all() and (scored.relevance_mass <= scored.relevance_mass_high).all()
    items = read("localisation_items")                                          # per image: the same images for every model of a group, so they pair
    assert set(items.dataset) == set(loc.dataset) and {"id", "relevance_mass", "pointing_game", "auroc", "iou"} <= set(items.columns)
    for _, g in items.groupby(["dataset", "arch", "augment", "method"]): assert g.groupby(["attention", "seed"]).id.apply(frozenset).nunique() == 1
    tests = read("localisation_tests")
    paired = tests.sources == "seeds and test items (the images every model scored)"
    assert set(tests.metric) == {"relevance_mass", "pointing_game", "auroc", "iou"} and paired.mean() > 0.5 and (tests["items"][paired] > 1).all(), tests[["dataset", "method", "metric", "sources", "items"]]
    import nbformat
    said = " ".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/markdown", "")) for c in nbformat.read(folder / STUDY.explain_notebook, as_version=4).cells for o in c.get("outputs", []))
    assert "model(s) loaded" in said and "no ground-truth masks" not in said, said[:2000]
