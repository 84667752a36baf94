"""No value in a study file ends in a traceback: property-based tests (hypothesis) over the config schema. Every generated study is
either accepted, and then every cell's parameters pass the cell's own checks, or refused with a `StudyConfigError` / `DataError`
naming the file; through the command line, the exit code is 0 or 2, never a traceback."""
import datetime, io, tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
import pytest, yaml
from hypothesis import HealthCheck, event, given, settings, strategies as st
from attnmed.config import PARAMS, STUDY_KEYS, StudyConfigError, check_parameters, load_study
from attnmed.data import DataError, FORMATS
from attnmed.study import check_study, data_fingerprints, prepare_datasets, study_cells
from attnmed.testing import write_sample_csv, write_sample_folder, write_sample_medmnist
from attnmed.cli import grid_cli
from attnmed.config import DatasetSpec

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10), st.integers(min_value=2 ** 31, max_value=2 ** 80), st.integers(max_value=-2 ** 40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6), st.dates(min_value=datetime.date(1990, 1, 1)),
    st.lists(st.one_of(st.integers(-3, 300), st.text(max_size=3), st.floats()), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from(["200", "200.5", "abc", "auto", "none", "se", "resnet10t", "\n", "a\nb", ".nan", "1e400", "../x", "any", "image"]))

def value_for(default):
    "Mostly a plausible value of the declared kind, often junk."
    plausible = {bool: st.booleans(), int: st.integers(-5, 70000), float: st.floats(-1, 20), str: st.text(max_size=8)}
    kind = plausible.get(type(default), st.just(default))
    return st.one_of(st.just(default), kind, JUNK)

def dataset_entry(files):
    "A dataset entry of one of four formats with some options (declared or not), each valid or junk."
    def entry(fmt):
        path = {"synthetic": str(files["root"] / "synth"), "csv": str(files["csv"]), "folder": str(files["folder"]), "medmnist": str(files["medmnist"])}[fmt]
        opts = FORMATS[fmt].options_for(DatasetSpec.of(dict(name="d", format=fmt, path=path)))
        names = [o.name for o in opts] + ["n_trian", "window", "label_column"]
        base = dict(name="d", format=fmt, path=path, **({"label_column": "diagnosis"} if fmt == "csv" else {}),
                    **({"n_train": 24, "n_val": 8, "n_test": 8} if fmt == "synthetic" else {}))
        option = st.sampled_from(names).flatmap(lambda n: st.tuples(st.just(n), JUNK))
        return st.lists(option, max_size=2).map(lambda o: {**base, **dict(o)})
    return st.sampled_from(["synthetic", "csv", "folder", "medmnist"]).flatmap(entry)

def study_dict(files):
    "A small valid study with up to two top-level values changed (each plausible or junk) and its dataset entry's options varied."
    base = dict(name="p", archs=["resnet10t"], attentions=["none", "se"], seeds=[0], epochs=1, image_size=32, batch_size=8)
    keys = [k for k in (*STUDY_KEYS, *PARAMS) if k != "datasets"]
    change = st.sampled_from(keys).flatmap(lambda k: st.tuples(st.just(k), value_for(PARAMS[k].default) if k in PARAMS else JUNK))
    return st.tuples(dataset_entry(files), st.lists(change, max_size=2)).map(lambda t: {**base, "datasets": [t[0]], **dict(t[1])})

def write(raw) -> Path:
    f = Path(tempfile.mkdtemp(prefix="attnmed-prop-")) / "study.yaml"
    f.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return f

@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.data())
def test_every_value_is_accepted_whole_or_refused_by_name(tmp_path_factory, data):
    files = _files(tmp_path_factory)
    raw = data.draw(study_dict(files))
    f = write(raw)
    try:
        study = check_study(load_study(f))
    except (StudyConfigError, DataError) as e:
        event(f"refused: {type(e).__name__} {str(e).split(': ')[0].split(', ')[-1][:30]}")
        assert str(f) in str(e) or "dataset 'd'" in str(e) or str(files["root"]) in str(e), f"the message names neither the file nor the dataset: {e}"
        return
    event(f"accepted: {study.datasets[0]['format']}")
    for cell in study_cells(study): check_parameters(cell.parameters())     # what the study accepts, every cell accepts
    if study.datasets[0]["format"] != "synthetic":                            # the synthetic sizes may be huge: generating is not checking
        try:
            prepare_datasets(study); data_fingerprints(study)
        except DataError as e:
            assert "Traceback" not in str(e)

_FILES = {}
def _files(factory):
    if not _FILES:
        root = factory.mktemp("data")
        _FILES.update(root=root, csv=write_sample_csv(root / "csv", n=24), folder=write_sample_folder(root / "folder", per_class=6),
                      medmnist=write_sample_medmnist(root / "m.npz", n=12))
    return _FILES

@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.data())
def test_the_command_line_exits_0_or_2_never_a_traceback(tmp_path_factory, data):
    files = _files(tmp_path_factory)
    f = write(data.draw(study_dict(files)))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), pytest.raises(SystemExit) as e:
        grid_cli([str(f), "--out", str(f.parent / "out"), "--dry-run"])
    assert e.value.code in (0, 2), err.getvalue()
    if e.value.code == 2: assert err.getvalue().startswith("attnmed-grid: error: ") and "Traceback" not in err.getvalue()

@pytest.mark.parametrize("text,field", [
    ("seeds: [2020-01-01]", "seeds"), ("label_smoothing: .nan", "label_smoothing"), ("weight_decay: -5", "weight_decay"), ("lr: .inf", "lr"),
    ("batch_size: 1", "batch_size"), ("seeds: [1180591620717411303424]", "seeds"), ("epochs: 2\nepochs: 3", "epochs"),
])
def test_the_reported_values_are_refused_by_name(tmp_path, text, field):
    f = tmp_path / "s.yaml"
    f.write_text("name: s\ndatasets: [{name: d, format: synthetic, path: data}]\narchs: [resnet10t]\n" + text + "\n")
    with pytest.raises(StudyConfigError) as e: load_study(f)
    assert str(f) in str(e.value) and field in str(e.value), str(e.value)

@pytest.mark.parametrize("option,value,message", [
    ("n_train", "200", "n_train"), ("n_train", 200.5, "n_train"), ("path", None, "path"), ("val_fraction", "abc", "val_fraction"),
    ("label_column", 5, "label_column 5 does not exist"), ("window", [3, 1], "window"), ("window", "bright", "window"),
])
def test_the_reported_dataset_values_are_refused_by_name(tmp_path, option, value, message):
    fmt = {"n_train": "synthetic", "path": "synthetic", "val_fraction": "csv", "label_column": "medmnist", "window": "csv"}[option]
    path = {"synthetic": "data", "csv": str(write_sample_csv(tmp_path / "csv", n=12)), "medmnist": str(write_sample_medmnist(tmp_path / "m.npz"))}[fmt]
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(dict(name="s", datasets=[{"name": "d", "format": fmt, "path": path, option: value}], archs=["resnet10t"])))
    with pytest.raises(StudyConfigError) as e: check_study(load_study(f))
    assert str(f) in str(e.value) and message in str(e.value), str(e.value)

@pytest.mark.parametrize("name", ["p\n", "p/q", "..", ".hidden", "", "x" * 101])
def test_names_are_folder_names(tmp_path, name):
    f = tmp_path / "s.yaml"
    for raw in (dict(name=name, datasets=[dict(name="d", format="synthetic", path="data")], archs=["resnet10t"]),
                dict(name="s", datasets=[dict(name=name, format="synthetic", path="data")], archs=["resnet10t"])):
        f.write_text(yaml.safe_dump(raw))
        with pytest.raises(StudyConfigError, match="is not a valid name"): load_study(f)

@pytest.mark.parametrize("where,key", [("dataset", "kind"), ("dataset", "format"), ("study", "archs"), ("study", "attentions"), ("study", "head")])
@pytest.mark.parametrize("value", [[], {}, [[]], [{"a": 1}]])
def test_unhashable_names_are_refused_by_name(tmp_path, where, key, value):
    "Found by the property test in CI: `kind: []` ended in `TypeError: unhashable type`."
    ds = dict(name="d", format="synthetic", path="data", n_train=24, n_val=8, n_test=8)
    raw = dict(name="s", datasets=[ds], archs=["resnet10t"])
    (ds if where == "dataset" else raw)[key] = value
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises((StudyConfigError, DataError)) as e: check_study(load_study(f))
    assert str(f) in str(e.value) or "dataset 'd'" in str(e.value), str(e.value)
