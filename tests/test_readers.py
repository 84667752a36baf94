"""The readers of the real datasets' official layouts: quirks, failure paths, caching, and a 1-epoch study on every format."""
import json, os, shutil
from pathlib import Path
import numpy as np, pandas as pd
import pytest, yaml
from attnmed.data import DataError, DatasetFormat, SPLITS, FORMATS
from attnmed.datasets import load_dataset, check_dataset
from attnmed import readers as R, testing as T
from conftest import run
from attnmed.config import DatasetSpec

def n_items(ds): return sum(len(ds.labels[s]) for s in SPLITS)

def load(tmp, **spec):
    return load_dataset({"name": "d", "cache": str(tmp / "cache"), **spec}, 32)

# --- ISIC 2019 -------------------------------------------------------------------------------------------------

def test_isic2019_groups_by_lesion_and_maps_binary(tmp):
    root = T.write_sample_isic2019(tmp / "isic", n=60)
    ds = load(tmp, format="isic2019", path=str(root), positive="MEL")
    assert ds.class_names == ["other", "MEL"] and n_items(ds) == 60
    lesions = {s: set(ds.patients[s]) for s in SPLITS}
    assert not (lesions["train"] & lesions["test"]) and not (lesions["train"] & lesions["val"])
    meta = pd.read_csv(root / "ISIC_2019_Training_Metadata.csv", keep_default_na=False)
    no_lesion = meta.image[meta.lesion_id == ""].tolist()
    assert no_lesion and all(i in set().union(*lesions.values()) for i in no_lesion), "an image without lesion_id is its own group"

def test_isic2019_without_metadata_and_errors(tmp):
    root = T.write_sample_isic2019(tmp / "isic", n=40)
    (root / "ISIC_2019_Training_Metadata.csv").unlink()
    assert n_items(load(tmp, format="isic2019", path=str(root))) == 40
    with pytest.raises(DataError, match="option 'positive' has unknown class"): load(tmp, format="isic2019", path=str(root), positive=["MELANOMA"])
    gt = root / "ISIC_2019_Training_GroundTruth.csv"
    df = pd.read_csv(gt, dtype=str); df.loc[6, "NV"] = "yes"; df.to_csv(gt, index=False)
    with pytest.raises(DataError, match=r"GroundTruth.csv, line 8, column 'NV': expected 0.0 or 1.0, got 'yes'"): load(tmp, format="isic2019", path=str(root))
    df.drop(columns=["SCC"]).to_csv(gt, index=False)
    with pytest.raises(DataError, match=r"missing column\(s\) \['SCC'\]"): load(tmp, format="isic2019", path=str(root))
    T.write_sample_isic2019(root, n=40)
    (root / "ISIC_2019_Training_Input" / "ISIC_0000007.jpg").unlink()
    with pytest.raises(DataError, match=r"1 of 40 listed image file\(s\) not found, e.g. \['.*ISIC_0000007.jpg'\]"): load(tmp, format="isic2019", path=str(root))
    shutil.rmtree(root / "ISIC_2019_Training_Input")
    with pytest.raises(DataError, match="ISIC_2019_Training_Input not found"): check_dataset(dict(name="d", format="isic2019", path=str(root)))

# --- CBIS-DDSM -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("jpeg", [False, True])
def test_cbis_ddsm_official_split_and_swapped_crops(tmp, jpeg):
    root = T.write_sample_cbis_ddsm(tmp / "cbis", jpeg=jpeg, swap_every=2)
    ds = load(tmp, format="cbis-ddsm", path=str(root))
    assert ds.channels == 1 and ds.class_names == ["benign", "malignant"]
    for s in SPLITS: assert not np.isin(ds.images[s], (0, 255)).all((1, 2)).any(), "an ROI mask was taken for a crop"
    # official split: a third of the patients (p % 3 == 0) in test; val carved from train, grouped by patient
    assert {int(p[2:]) % 500 % 3 for p in ds.patients["test"]} == {0}
    assert set(ds.patients["val"]).isdisjoint(ds.patients["train"]) and len(ds.patients["val"])
    mass = load(tmp, format="cbis-ddsm", path=str(root), abnormality="mass", image="full")
    assert n_items(mass) == 24 and all(p < "P_00500" for s in SPLITS for p in mass.patients[s])
    crop_found = sum(int(ds.extras[f"{s}_masks"].reshape(len(ds.labels[s]), -1).any(1).sum()) for s in SPLITS)
    assert crop_found == n_items(ds) and ds.extras["mask_notes"] == [], "each crop is found in its mammogram and its ROI mask cut there"
    for s in SPLITS: assert not ds.extras[f"{s}_masks"][:, -2:].any() and not ds.extras[f"{s}_masks"][:, :, -2:].any(), "cut where the crop lies: the abnormality inside its margin"
    for s in SPLITS: assert mass.extras[f"{s}_masks"].reshape(len(mass.labels[s]), -1).any(1).all(), "every mammogram has its abnormalities' ROI masks"
    s, i = next((s, list(mass.ids[s]).index("Mass-Training_P_00001_LEFT_CC")) for s in SPLITS if "Mass-Training_P_00001_LEFT_CC" in mass.ids[s])
    m = mass.extras[f"{s}_masks"][i]
    assert m[1:5, 1:5].all() and m[8:, 8:].any(), "two abnormalities on one mammogram: both ROI masks, united"
    assert mass.extras["mask_notes"] == []

def test_cbis_ddsm_tcia_retriever_layout_and_monochrome1(tmp):
    "TCIA's downloader renames files (1-1.dcm) and adds date/series folders: the reader finds them under the case folder."
    root = T.write_sample_cbis_ddsm(tmp / "cbis", n_patients=6)
    for f in list((root / "CBIS-DDSM").rglob("*.dcm")):
        case, study, series = f.relative_to(root / "CBIS-DDSM").parts[:3]
        new = root / "CBIS-DDSM" / case / "07-20-2016-DDSM-74994" / f"1.000000-{series[-5:]}" / f"1-{f.stem[-1]}.dcm"
        new.parent.mkdir(parents=True, exist_ok=True); f.rename(new)
    full = load(tmp, format="cbis-ddsm", path=str(root), image="full")
    crops = load(tmp, format="cbis-ddsm", path=str(root), image="crop")
    assert n_items(full) == 24 and n_items(crops) == 25, "one mammogram holds two abnormalities: two crops, one image"
    a = np.zeros((20, 20), np.uint8); a[5:10] = 200
    f = T.write_dicom(tmp / "m1.dcm", a, monochrome1=True)
    assert abs(int(R.read_dicom(f)[7, 0]) - 200) <= 1 and R.read_dicom(f)[0, 0] <= 1, "MONOCHROME1 is inverted back, on the bit depth's scale"

def test_cbis_ddsm_errors(tmp):
    root = T.write_sample_cbis_ddsm(tmp / "cbis", n_patients=12)
    with pytest.raises(DataError, match="field 'abnormality': expected one of mass, calc, both, got 'masses'"): load(tmp, format="cbis-ddsm", path=str(root), abnormality="masses")
    with pytest.raises(DataError, match=r"unknown option 'crop' for format cbis-ddsm"): load(tmp, format="cbis-ddsm", path=str(root), crop=True)
    (root / R.CBIS_FILES[("calc", "test")]).unlink()
    with pytest.raises(DataError, match="calc_case_description_test_set.csv: file not found"): load(tmp, format="cbis-ddsm", path=str(root))
    assert n_items(load(tmp, format="cbis-ddsm", path=str(root), abnormality="mass")) > 0
    for f in R.CBIS_FILES.values(): (root / f).unlink(missing_ok=True)
    with pytest.raises(DataError, match="no CBIS-DDSM case-description CSV"): check_dataset(dict(name="d", format="cbis-ddsm", path=str(root)))

# --- MIMIC-CXR-JPG ----------------------------------------------------------------------------------------------

def test_mimic_cxr_views_uncertainty_and_split(tmp, capsys):
    root = T.write_sample_mimic_cxr(tmp / "mimic", n_subjects=20)
    spec = dict(format="mimic-cxr-jpg", path=str(root), finding="Pleural Effusion")
    ign, zeros, ones = (load(tmp, **spec, uncertain=u) for u in ("ignore", "zeros", "ones"))
    assert "left out 40 image(s): view not in PA/AP" in capsys.readouterr().out, "dropped images are counted, not silent"
    assert n_items(zeros) == n_items(ones) == 40 > n_items(ign)
    assert sum(ones.labels[s].sum() for s in SPLITS) > sum(zeros.labels[s].sum() for s in SPLITS)
    split = pd.read_csv(root / "mimic-cxr-2.0.0-split.csv.gz", dtype=str)
    test_subjects = set(split.subject_id[split.split == "test"])
    assert set(ones.patients["test"]) == test_subjects and set(ones.patients["val"]).isdisjoint(ones.patients["train"])
    pa_only = load(tmp, **spec, uncertain="ones", views=["PA"])
    assert n_items(pa_only) == 20

def test_mimic_cxr_errors(tmp):
    root = T.write_sample_mimic_cxr(tmp / "mimic", n_subjects=10)
    spec = dict(format="mimic-cxr-jpg", path=str(root), finding="Pleural Effusion")
    with pytest.raises(DataError, match="field 'uncertain': expected one of ignore, zeros, ones"): load(tmp, **spec, uncertain="maybe")
    f = root / "mimic-cxr-2.0.0-split.csv.gz"
    df = pd.read_csv(f, dtype=str); df.loc[3, "split"] = "valid"; df.to_csv(f, index=False, compression="gzip")
    with pytest.raises(DataError, match=r"split.csv.gz, line 5, column 'split': expected train, validate or test, got 'valid'"): load(tmp, **spec)
    f.unlink()
    with pytest.raises(DataError, match="mimic-cxr-2.0.0-split.csv.gz not found"): check_dataset(dict(name="d", **spec))

# --- folder and csv ---------------------------------------------------------------------------------------------

def test_folder_errors(tmp):
    root = T.write_sample_folder(tmp / "tree")
    (root / "extra").mkdir()
    with pytest.raises(DataError, match="mixes split folders"): load(tmp, format="folder", path=str(root))
    (root / "extra").rmdir()
    shutil.rmtree(root / "train" / "malignant")
    with pytest.raises(DataError, match=r"class\(es\) \['malignant'\] have no folder in the training split"): load(tmp, format="folder", path=str(root))
    (root / "train" / "malignant").mkdir()
    with pytest.raises(DataError, match="malignant: class folder holds no images"): load(tmp, format="folder", path=str(root))
    flat = T.write_sample_folder(tmp / "flat", splits=None)
    with pytest.raises(DataError, match="does not match file name"): load(tmp, format="folder", path=str(flat), patient_pattern=r"^(patient\d+)")

def test_csv_errors_and_official_split(tmp):
    f = T.write_sample_csv(tmp / "c", n=40)
    df = pd.read_csv(f)
    df["set"] = ["test" if i < 9 else "train" for i in range(40)]; df.to_csv(f, index=False)   # patients pt0..pt2
    spec = dict(format="csv", path=str(f), label_column="diagnosis", patient_column="patient", split_column="set")
    ds = load(tmp, **spec)
    assert len(ds.labels["test"]) == 9 and len(ds.labels["val"]) > 0
    df.loc[9, "set"] = "test"; df.to_csv(f, index=False)
    with pytest.raises(DataError, match=r"patient\(s\) \[.pt3.\] appear in both .train. and .test."): load(tmp, **spec)
    df.loc[9, "set"] = "train"
    with pytest.raises(DataError, match=r"missing column\(s\) \['dx'\]"): load(tmp, **{**spec, "label_column": "dx"})
    df.loc[10, "set"] = "holdout"; df.to_csv(f, index=False)
    with pytest.raises(DataError, match=r"labels.csv, line 12, column 'set': expected train, val .* got 'holdout'"): load(tmp, **spec)
    df.loc[10, "set"] = "train"; df.loc[11, "diagnosis"] = ""; df.to_csv(f, index=False)
    with pytest.raises(DataError, match=r"labels.csv, line 13, column 'diagnosis': empty label"): load(tmp, **spec)

def test_meaningless_data_is_refused(tmp):
    "A split of one class (balanced accuracy 1.0 for nothing learned), a test split at another size, labels that are not ids."
    f = T.write_sample_csv(tmp / "c", n=40)
    df = pd.read_csv(f); df["diagnosis"] = "nevus"; df.loc[:2, "diagnosis"] = "melanoma"; df.to_csv(f, index=False)
    with pytest.raises(DataError, match=r"holds only class .nevus.; every split needs at least two classes"): load(tmp, format="csv", path=str(f), label_column="diagnosis")
    m = T.write_sample_medmnist(tmp / "m.npz")
    with np.load(m) as z: arrays = {k: z[k] for k in z.files}
    arrays["test_images"] = np.zeros((8, 64, 64), np.uint8)            # the test split at another size than train: resized with it
    np.savez(m, **arrays)
    medmnist = lambda: load_dataset(dict(name="m", format="medmnist", path=str(m)), 32)
    assert medmnist().images["test"].shape[1:] == (32, 32)
    arrays["train_labels"] = np.where(np.arange(24)[:, None] == 3, np.nan, arrays["train_labels"].astype(float)); np.savez(m, **arrays)
    with pytest.raises(DataError, match="non-integer labels"): medmnist()

def test_16_bit_images_are_scaled_not_clipped(tmp):
    "A folder of 16-bit grey PNGs (12 bits used, as mammogram exports often are) decodes to the full 0..255 range (not near-black, not clipped); a window of the container's range keeps it dark."
    rng = np.random.default_rng(0)
    for split in ("train", "valid", "test"):
        for c, name in enumerate(("benign", "malignant")):
            for i in range(6): T.save_image(tmp / "png16" / split / name / f"p{i}.png", T.blob_image(rng, c, 40, channels=1).astype(np.uint16) * 16)
    ds = load(tmp, format="folder", path=str(tmp / "png16"), channels=1)
    a = ds.images["train"]
    b = load(tmp, format="folder", path=str(tmp / "png16"), channels=1, window=[0, 4095], cache=str(tmp / "cache2")).images["train"]
    assert np.abs(b.astype(int) - a).max() <= 1, "scaled by the 12 bits used: the same as the 12-bit window"
    c = load(tmp, format="folder", path=str(tmp / "png16"), channels=1, window=[0, 65535], cache=str(tmp / "cache3")).images["train"]
    assert c.max() <= 16 and a.mean() > 12 * c.mean() and (a == 255).mean() < 0.01, "the container's range (asked for) is near-black; auto is not, nor clipped"

# --- decoding, corrupt files, cache ------------------------------------------------------------------------------

def test_truncated_jpeg_is_named_or_skipped_and_listed(tmp):
    root = T.write_sample_isic2019(tmp / "isic", n=40)
    img = root / "ISIC_2019_Training_Input" / "ISIC_0000011.jpg"
    img.write_bytes(img.read_bytes()[:200])
    with pytest.raises(DataError, match=r"1 image file\(s\) cannot be decoded, e.g. .*ISIC_0000011.jpg.*skip_corrupt: true"): load(tmp, format="isic2019", path=str(root))
    ds = load(tmp, format="isic2019", path=str(root), skip_corrupt=True)
    assert n_items(ds) == 39 and len(ds.extras["skipped"]) == 1 and "ISIC_0000011.jpg" in ds.extras["skipped"][0]

def test_cache_is_reused_and_invalidated(tmp, monkeypatch):
    f = T.write_sample_csv(tmp / "c", n=30)
    spec = dict(format="csv", path=str(f), label_column="diagnosis")
    first = load(tmp, **spec)
    calls = []
    from attnmed import tables                                       # where the cache decodes
    real = tables.read_image
    monkeypatch.setattr(tables, "read_image", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = load(tmp, **spec)
    assert calls == [] and np.array_equal(again.images["train"], first.images["train"]), "served from the cache, nothing decoded"
    img = f.parent / "images" / "0003.png"
    os.utime(img, ns=(img.stat().st_atime_ns, img.stat().st_mtime_ns + 10 ** 9))
    load(tmp, **spec)
    assert len(calls) == 30, "a changed file rebuilds the cache"
    assert len(list((tmp / "cache").glob("*.npz"))) == 2

# --- every registered format through attnmed-grid ----------------------------------------------------------------

def test_every_format_has_an_example():
    "Every registered format can write a small sample of itself (the registry-driven test below needs it)."
    for name, fmt in FORMATS.items():
        assert type(fmt).example is not DatasetFormat.example, f"format {name} has no example()"

def test_one_epoch_on_every_format(tmp):
    "Every registered format (camelyon17 included) through the study checks, the preparation and one cell's recipe (train_cell, evaluate_cell), with a study-relative cache folder."
    from attnmed.config import parse_study
    from attnmed.study import check_study, prepare_datasets, study_cells
    from attnmed.train import train_cell
    from attnmed.evaluate import evaluate_cell
    datasets = []
    for name, fmt in FORMATS.items():
        spec = dict(name=name, **fmt.example(tmp / "data" / name))
        if any(o.name == "cache" for o in fmt.options_for(DatasetSpec.of(spec))): spec["cache"] = "cache"
        datasets.append(spec)
    datasets.append(dict(name="mammo", **{**FORMATS["synthetic"].example(tmp / "data" / "mammo"), "kind": "synth-mammo"}))
    datasets.append(dict(name="pair", **{**FORMATS["synthetic"].example(tmp / "data" / "pair"), "kind": "synth-pair"}))
    study = check_study(parse_study(dict(name="formats", datasets=datasets, archs=["resnet10t"], attentions=["none"], seeds=[0], epochs=1, image_size=32,
                                         batch_size=16, device="cpu", imbalance="weighted_loss"), base_dir=tmp))
    prepare_datasets(study)
    for cell in study_cells(study):
        m = evaluate_cell(train_cell(cell.parameters(), tmp / "out" / cell.key, log=False)).metrics
        assert 0 <= m["balanced_accuracy"] <= 1, cell.dataset
        if cell.dataset == "camelyon17": assert 0 <= m["balanced_accuracy_ood_test"] <= 1, "camelyon17's out-of-distribution hospital is evaluated"
    assert list((tmp / "cache").glob("cbis-ddsm_32px_1ch_*.npz")), "the study-relative cache folder was used"
