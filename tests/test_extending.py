"""Extending attnmed in one place: a study's plugin file registers a new dataset format (with ground truth) and a new inserted
attention variant, and both work in the checks, the grid, the explanations and the report without touching any other file.
A third variant fails in training: the grid goes on, records the failure, keeps it on a rerun, and the report lists it."""
import json
import pandas as pd
import pytest, yaml
from conftest import run

PLUGIN = '''
"A study's own dataset format and attention variant, registered where they are defined."
import numpy as np, torch
from torch import nn
from attnmed.config import Setting
from attnmed.data import SPLITS, DatasetFormat, ImageSplits, FORMATS
from attnmed.attention import InsertedAttention, ATTENTIONS

def draw(n, size, rate, rng, mode="as_is"):
    "Grey noise; positives carry a bright square (the evidence); a dark corner marker co-occurs with the class at `rate` (the shortcut)."
    y = np.arange(n) % 2
    img = (rng.random((n, size, size)) * 60 + 60).astype(np.uint8)
    masks, markers = np.zeros((n, size, size), bool), np.zeros((n, size, size), bool)
    sc = np.where(rng.random(n) < rate, y, 1 - y)
    sc = {"as_is": sc, "removed": np.zeros_like(sc), "flipped": 1 - sc}[mode]
    for i in range(n):
        r, c = rng.integers(4, size - 10, 2)
        if y[i]: img[i, r:r + 6, c:c + 6] = 220; masks[i, r:r + 6, c:c + 6] = True
        if sc[i]: img[i, :3, :8] = 0; markers[i, :3, :8] = True
    return img, y, masks, markers, np.stack([y, sc], 1).astype(np.uint8)

@FORMATS.register
class Squares(DatasetFormat):
    name, doc = "squares", "a throwaway format: a bright square (the evidence) and a corner marker (the shortcut)"
    options = (Setting("n", int, 48, "images per split", low=8), Setting("shortcut", float, 0.9, "marker / class co-occurrence in training", low=0, high=1))
    def check_files(self, spec): pass
    def splits(self, spec, image_size, mode="as_is"):
        o, rng = self.values(spec), np.random.default_rng(0)
        return {s: draw(o["n"], image_size, o["shortcut"] if s != "test" else 0.5, rng, mode) for s in SPLITS}
    def load(self, spec, image_size):
        d = self.splits(spec, image_size)
        extras = {f"{s}_{k}": d[s][i] for s in SPLITS for k, i in (("masks", 2), ("shortcut_masks", 3), ("concepts", 4))}
        extras["concept_names"] = ["has_square", "has_marker"]
        return ImageSplits(spec["name"], {s: d[s][0] for s in SPLITS}, {s: d[s][1] for s in SPLITS},
                           {s: np.array([f"{s}{i}" for i in range(len(d[s][1]))]) for s in SPLITS}, ["plain", "square"], extras=extras).check(spec["name"])
    def counterfactual_tests(self, spec, image_size):
        return {m: self.splits(spec, image_size, m)["test"][:2] for m in ("as_is", "removed", "flipped")}
    def example(self, root): return dict(format=self.name, path=str(root))

class PixelGate(nn.Module):
    "A throwaway spatial attention: one sigmoid weight per position."
    def __init__(self, channels): super().__init__(); self.conv = nn.Conv2d(channels, 1, 1)
    def forward(self, x): return x * torch.sigmoid(self.conv(x))

ATTENTIONS.register(InsertedAttention("pixelgate", "a throwaway spatial gate", PixelGate, "last"))

class Broken(nn.Module):
    "A variant that builds and predicts, but fails as soon as it trains: its cells fail inside their notebooks."
    def __init__(self, channels): super().__init__(); self.conv = nn.Conv2d(channels, channels, 1)
    def forward(self, x):
        if self.training: raise RuntimeError("broken on purpose")
        return self.conv(x)

ATTENTIONS.register(InsertedAttention("broken", "a variant that fails in training", Broken, "last"))
'''

@pytest.mark.slow
@pytest.mark.cost(150)
def test_a_plugin_format_and_variant_work_everywhere(tmp):
    (tmp / "my_extensions.py").write_text(PLUGIN)
    raw = dict(name="ext", plugins=["my_extensions.py"], datasets=[dict(name="sq", format="squares", path=".", n=48)],
               archs=["resnet10t"], attentions=["none", "pixelgate", "broken"], seeds=[0], epochs=2, image_size=32, batch_size=16, device="cpu",
               comparisons=[{"variant": "pixelgate", "baseline": "none"}])
    study = tmp / "ext.yaml"
    # the plugin's declared options are checked like the built-in ones, before anything runs
    study.write_text(yaml.safe_dump({**raw, "datasets": [dict(name="sq", format="squares", path=".", nn=48)]}))
    r = run(["attnmed-grid", str(study), "--out", str(tmp / "out"), "--dry-run"])
    assert r.returncode == 2 and "unknown option 'nn' for format squares; did you mean 'n'?" in r.stderr, r.stderr
    study.write_text(yaml.safe_dump(raw))
    r = run(["attnmed-grid", str(study), "--out", str(tmp / "out")])
    assert r.returncode == 1 and "grid ext: 2 done, 0 skipped, 1 failed of 3 cells" in r.stdout, r.stdout[-2000:] + r.stderr[-3000:]
    m = json.loads((tmp / "out/ext/sq/resnet10t/pixelgate/noaug/seed0/metrics.json").read_text())
    assert m["params"]["attention"] == "pixelgate" and 0 <= m["balanced_accuracy"] <= 1
    bad = tmp / "out/ext/sq/resnet10t/broken/noaug/seed0"
    assert (bad / "experiment.ipynb").exists() and "broken on purpose" in (bad / "error.txt").read_text() and not (bad / "metrics.json").exists()
    r = run(["attnmed-grid", str(study), "--out", str(tmp / "out")])
    assert r.returncode == 1 and "0 done, 2 skipped, 0 failed, 1 failed earlier (not retried: use --retry-failed)" in r.stdout, r.stdout
    r = run(["attnmed-report", str(tmp / "out/ext")])
    assert r.returncode == 0, r.stderr[-3000:]
    exp = tmp / "out/ext/explanations"
    assert not (exp / "error.txt").exists(), (exp / "error.txt").read_text() if (exp / "error.txt").exists() else ""
    loc = pd.read_csv(exp / "localisation.csv")
    assert set(loc.attention) == {"none", "pixelgate"} and "attention" in set(loc[loc.attention == "pixelgate"].method)
    assert loc.relevance_mass.between(0, 1).all()
    sc = pd.read_csv(exp / "shortcut.csv"); assert {"accuracy_as_is", "accuracy_removed", "accuracy_flipped"} <= set(sc.columns) and len(sc) == 2
    assert set(pd.read_csv(exp / "sanity.csv").attention) == {"none", "pixelgate"}
    assert "has_marker" in set(pd.read_csv(exp / "concepts.csv").concept)
    html = (tmp / "out/ext/report.html").read_text()
    assert "pixelgate vs none on resnet10t, sq" in html
    assert "Cells not in the results" in html and "broken" in html
    for s in ("Explanations", "Shortcut reliance", "Can the maps be trusted?", "Concepts the models use", 'href="explain.html"'): assert s in html, s
