"""MedMNIST by flag, offline: a local HTTP server on 127.0.0.1 serves a sample file under the address scheme of `medmnist.INFO`
(Zenodo's `/records/<id>/files/<flag>_<size>.npz?download=1`); the study's data preparation downloads it once, reuses the
cache, refuses a corrupt file, and the official metrics agree with MedMNIST's own `Evaluator`."""
import hashlib, os
from pathlib import Path
from unittest import mock
import medmnist, numpy as np, pytest, yaml
from urllib.parse import urlsplit
from attnmed.data import DataError
from attnmed.datasets import load_dataset
from attnmed.evaluate import medmnist_metrics
from attnmed.config import StudyConfigError, load_study
from attnmed.study import check_study, prepare_datasets
from attnmed.testing import FileServer, write_sample_medmnist

FLAG, SIZE = "breastmnist", 64

@pytest.fixture
def served(tmp_path):
    "The sample file served where INFO says breastmnist_64.npz lives, INFO's MD5 pointed at it, the mirror at the server."
    body = write_sample_medmnist(tmp_path / "sample.npz", n=30, resolution=SIZE).read_bytes()
    url = urlsplit(medmnist.INFO[FLAG]["url_64"])
    files = {f"{url.path}?{url.query}": body}
    info = {**medmnist.INFO[FLAG], "MD5_64": hashlib.md5(body).hexdigest()}
    with FileServer(files) as srv, mock.patch.dict(medmnist.INFO, {FLAG: info}), mock.patch.dict(os.environ, ATTNMED_MEDMNIST_MIRROR=srv.url):
        yield srv, files, body

def study_file(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(dict(name="m", archs=["resnet10t"], image_size=32,
                                     datasets=[dict(name="breast", format="medmnist", flag=FLAG, size=SIZE, path="cache")])))
    return f

def test_a_study_downloads_once_and_reuses_the_cache(tmp_path, served):
    srv, files, body = served
    study = check_study(load_study(study_file(tmp_path)))
    prepare_datasets(study)
    cached = tmp_path / "cache" / f"{FLAG}_{SIZE}.npz"
    assert cached.read_bytes() == body and len(srv.requests) == 1
    prepare_datasets(study)                                           # a second run: no request
    ds = load_dataset(study.datasets[0], 32)
    assert len(srv.requests) == 1
    assert ds.class_names == ["malignant", "normal, benign"] and ds.images["test"].shape[1:] == (32, 32)
    assert ds.extras["medmnist"] == dict(flag=FLAG, size=SIZE, task="binary-class", catalogue=True)

def test_a_corrupt_download_is_refused_and_deleted(tmp_path, served):
    srv, files, body = served
    for k in files: files[k] = body[:-10] + b"0123456789"             # same size, other bytes
    study = check_study(load_study(study_file(tmp_path)))
    with pytest.raises(DataError, match="MD5 is .*, expected ") as e: prepare_datasets(study)
    assert urlsplit(srv.url).netloc in str(e.value)
    assert not list((tmp_path / "cache").iterdir()), "nothing partial or corrupt is left"

def test_a_local_file_with_its_flag_gets_the_official_metrics(tmp_path, served):
    "A MedMNIST file already on disk, named by path with its flag: MedMNIST's class names and task (for the official metrics), and whether it is the catalogue's file, by MD5."
    srv, files, body = served
    (tmp_path / "mine.npz").write_bytes(body)
    ds = load_dataset(dict(name="breast", format="medmnist", flag=FLAG, path=str(tmp_path / "mine.npz")), 32)
    assert ds.extras["medmnist"] == dict(flag=FLAG, size=SIZE, task="binary-class", catalogue=True) and ds.class_names == ["malignant", "normal, benign"]
    assert len(srv.requests) == 0, "a local file is never downloaded"
    write_sample_medmnist(tmp_path / "other.npz", n=20, resolution=SIZE, seed=3)
    ds = load_dataset(dict(name="breast", format="medmnist", flag=FLAG, path=str(tmp_path / "other.npz")), 32)
    assert ds.extras["medmnist"]["catalogue"] is False and ds.extras["medmnist"]["task"] == "binary-class"

def test_an_unknown_flag_is_refused_naming_the_closest(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(dict(name="m", archs=["resnet10t"], datasets=[dict(name="b", format="medmnist", flag="bloodmnst", path="c")])))
    with pytest.raises((DataError, StudyConfigError), match="did you mean 'bloodmnist'"): check_study(load_study(f))

@pytest.mark.parametrize("flag,n_classes", [("breastmnist", 2), ("dermamnist", 7)])
def test_official_metrics_are_medmnists_own(tmp_path, flag, n_classes):
    "medmnist_metrics on the labels of a file = MedMNIST's Evaluator reading the same file."
    write_sample_medmnist(tmp_path / f"{flag}.npz", n=60)
    with np.load(tmp_path / f"{flag}.npz") as z: y = np.arange(len(z["test_labels"])) % n_classes    # every class present
    np.savez(tmp_path / f"{flag}.npz", **{**dict(np.load(tmp_path / f"{flag}.npz")), "test_labels": y[:, None]})
    probs = np.random.default_rng(0).dirichlet(np.ones(n_classes), size=len(y))
    ours = medmnist_metrics(y, probs, medmnist.INFO[flag]["task"])
    auc, acc = medmnist.Evaluator(flag, "test", root=str(tmp_path)).evaluate(probs)
    assert ours == pytest.approx(dict(medmnist_auc=auc, medmnist_acc=acc))
