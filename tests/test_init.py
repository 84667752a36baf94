"""attnmed-init: your own images to a study in one command. The YAML it writes for a fixture folder trains through
attnmed-grid as written; the example studies in studies/ parse and plan."""
import io, json
from contextlib import redirect_stderr, redirect_stdout
import pytest
from attnmed.cli import grid_cli
from attnmed.testing import write_sample_csv, write_sample_folder
from conftest import ROOT, run, run_here

@pytest.mark.cost(70)
def test_init_on_a_folder_writes_a_study_that_trains(tmp):
    write_sample_folder(tmp / "lesions", per_class=6)
    r = run_here(["attnmed-init", "lesions", "--epochs", "1", "--image-size", "32", "--arch", "resnet10t"], cwd=tmp)
    assert r.returncode == 0, r.stderr
    assert "wrote " in r.stdout and "attnmed-grid" in r.stdout
    text = (tmp / "lesions.yaml").read_text()
    assert "format: folder" in text and "# none = the baseline" in text, "commented"
    r = run_here(["attnmed-grid", "lesions.yaml", "--out", "out", "--only", "seed0"], cwd=tmp)     # the file as written, one seed of it
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 done, 0 skipped, 0 failed" in r.stdout, r.stdout[-1500:]
    m = json.loads((tmp / "out" / "lesions" / "lesions" / "resnet10t" / "se" / "noaug" / "seed0" / "metrics.json").read_text())
    assert 0 <= m["balanced_accuracy"] <= 1 and m["class_names"] == ["benign", "malignant"]

def test_init_finds_ground_truth_masks_in_a_csv_and_a_folder(tmp):
    "A CSV's mask column is written into the study; a folder's masks/ tree is found by the format (not taken for a class); both dry-run."
    csv, tree = write_sample_csv(tmp / "d", n=40, masks=True), write_sample_folder(tmp / "lesions", per_class=6, masks=True)
    for data, name, classes in ((csv, "c.yaml", "(melanoma "), (tree, "f.yaml", "(benign ")):
        r = run_here(["attnmed-init", str(data), "--out", name], cwd=tmp)
        assert r.returncode == 0, r.stderr
        r = run_here(["attnmed-grid", name, "--out", "out", "--dry-run"], cwd=tmp)
        assert r.returncode == 0 and "would run" in r.stdout and classes in r.stdout, r.stdout + r.stderr
        assert not __import__("re").search(r"\bmasks \d", r.stdout), "masks/ is no class: " + r.stdout
    assert 'mask_column: "mask"' in (tmp / "c.yaml").read_text()

def test_init_on_a_csv_finds_its_columns_and_refuses_to_overwrite(tmp):
    csv = write_sample_csv(tmp / "d", n=40)   # enough patients to carve validation and test splits, as the grid will
    r = run_here(["attnmed-init", str(csv), "--out", "s.yaml"], cwd=tmp)
    assert r.returncode == 0, r.stderr
    assert 'label_column: "diagnosis"' in (tmp / "s.yaml").read_text() and 'patient_column: "patient"' in (tmp / "s.yaml").read_text()   # values from the data, quoted
    r = run_here(["attnmed-grid", "s.yaml", "--out", "out", "--dry-run"], cwd=tmp)
    assert r.returncode == 0 and "6 would run" in r.stdout, r.stdout + r.stderr
    r = run_here(["attnmed-init", str(csv), "--out", "s.yaml"], cwd=tmp)
    assert r.returncode == 2 and r.stderr.startswith("attnmed-init: error: ") and "--force" in r.stderr

@pytest.mark.parametrize("name", ["folder-example", "csv-example", "medmnist-example", "medmnist"])
def test_the_example_studies_plan(name, tmp_path):
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()), pytest.raises(SystemExit) as e:
        grid_cli([str(ROOT / "studies" / f"{name}.yaml"), "--out", str(tmp_path), "--dry-run"])
    assert e.value.code == 0 and "would run (dry run: nothing was run)" in out.getvalue(), out.getvalue()[-2000:]

def xray_folder(root, patients=45, per_patient=3, split_of=None):
    """Three classes of grey X-ray-like PNGs as a user might hold them: 8-bit grey, 12-bit data in 16-bit files and grey stored as RGB,
    32-80 px, one class per patient, the patient id in the file name (P0062_Röntgen_2.png); under split folders when `split_of(patient, image)` names them."""
    import numpy as np
    from attnmed import testing as T
    rng = np.random.default_rng(0)
    for p in range(patients):
        for k in range(per_patient):
            a = T.blob_image(rng, p % 3, int(rng.integers(32, 81)), channels=1)
            img = (a, a.astype(np.uint16) * 16, np.repeat(a[..., None], 3, -1))[(p + k) % 3]
            T.save_image(root / (split_of(p, k) if split_of else "") / "abc"[p % 3] / f"P{p:04d}_Röntgen_{k}.png", img)
    return root

@pytest.mark.cost(40)
def test_init_and_dry_run_say_what_the_data_hold_and_the_study_they_write_learns(tmp):
    "Tiny splits, patients in the file names, 12-bit data in 16-bit files, grey images: said by attnmed-init and the dry run before any training; the study init writes (carved by patient, one channel) trains above chance."
    import numpy as np, pandas as pd, yaml
    from attnmed.preflight import PATIENT_PATTERN
    from attnmed.statistics import at_chance
    xray_folder(tmp / "xr")
    r = run_here(["attnmed-init", "xr", "--epochs", "6", "--image-size", "32", "--arch", "resnet10t"], cwd=tmp)
    assert r.returncode == 0, r.stderr
    study = yaml.safe_load((tmp / "xr.yaml").read_text())
    assert study["datasets"][0]["patient_pattern"] == PATIENT_PATTERN and study["datasets"][0]["channels"] == 1, "set from the data, not left as comments"
    out = r.stdout
    assert "dataset 'xr': note: train" in out and "warning: dataset 'xr': split 'test' holds" in out and "16-bit files holding 12-bit data" in out, out
    assert "LEAK" not in out and "are grey" not in out, "carved by patient and decoded grey: nothing left to warn of"
    assert out.index("wrote ") < out.index("dataset 'xr'") < out.index("next:  ")
    study["attentions"] = ["none", "mhsa"]; (tmp / "xr.yaml").write_text(yaml.safe_dump(study))
    r = run_here(["attnmed-grid", "xr.yaml", "--out", "out", "--dry-run"], cwd=tmp)
    assert r.returncode == 0 and "warning: resnet10t + mhsa at image_size 32: the attention gets a 1 x 1 feature map" in r.stdout, r.stdout + r.stderr
    study["attentions"] = ["none"]; study["seeds"] = [0]; (tmp / "xr.yaml").write_text(yaml.safe_dump(study))
    r = run_here(["attnmed-grid", "xr.yaml", "--out", "out"], cwd=tmp)
    assert r.returncode == 0 and "1 done" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    preds = pd.read_csv(tmp / "out" / "xr" / "xr" / "resnet10t" / "none" / "noaug" / "seed0" / "predictions.csv")
    assert not at_chance(preds), f"the study init wrote learned nothing: {np.mean(preds.label == preds.prediction):.2f} accuracy"

def test_init_and_dry_run_warn_loudly_when_split_folders_share_patients(tmp):
    "Split folders that put one patient's images on both sides: init leaves the published split alone and says so; the dry run says it again."
    xray_folder(tmp / "xs", split_of=lambda p, k: ("train", "train", "test")[k] if p % 2 else ("train", "valid", "valid")[k])
    r = run_here(["attnmed-init", "xs", "--out", "xs.yaml"], cwd=tmp)
    assert r.returncode == 0, r.stderr
    assert "warning: dataset 'xs': LEAK: 22 of 22 'test' patients also have training images" in r.stdout, r.stdout
    assert "patient_pattern: " not in [l.strip()[:17] for l in (tmp / "xs.yaml").read_text().splitlines()], "the published split is not overridden"
    r = run_here(["attnmed-grid", "xs.yaml", "--out", "out", "--dry-run"], cwd=tmp)
    assert r.returncode == 0 and r.stdout.count("LEAK:") == 2, r.stdout
