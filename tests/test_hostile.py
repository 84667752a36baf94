"""Hostile inputs get one line naming the file or field, exit code 2, and no traceback (in process: the command
lines' own functions, so each case takes seconds)."""
import contextlib, io, json
from pathlib import Path
import pytest, yaml
from attnmed.cli import grid_cli, report_cli
from attnmed.config import DatasetSpec

def tiny_study(folder: Path, **over) -> Path:
    raw = dict(name="tiny", datasets=[dict(name="synth-derm", format="synthetic", path=str(folder / "data"), n_train=32, n_val=16, n_test=16)],
               archs=["resnet10t"], attentions=["none"], seeds=[0], epochs=1, image_size=16, batch_size=16, device="cpu")
    raw.update(over)
    f = folder / "tiny.yaml"; f.write_text(yaml.safe_dump(raw)); return f

def cli(fn, argv):
    "Exit code and stderr of a command line run in process."
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try: fn([str(a) for a in argv]); code = 0
        except SystemExit as e: code = e.code
    return code, err.getvalue()

@pytest.mark.parametrize("seed", ["1:30", "010"])
def test_yaml_1_1_numbers_are_not_misread(tmp_path, seed):
    f = tmp_path / "s.yaml"
    f.write_text(tiny_study(tmp_path).read_text().replace("- 0\n", f"- {seed}\n"))   # YAML 1.1 would read 90 / 8
    code, err = cli(grid_cli, [f, "--out", tmp_path / "out", "--dry-run"])
    assert code == 2 and "ambiguous number" in err and "Traceback" not in err, err

def test_alias_bomb_is_refused_quickly(tmp_path):
    f = tmp_path / "bomb.yaml"
    f.write_text("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")))
    code, err = cli(grid_cli, [f, "--out", tmp_path / "out", "--dry-run"])
    assert code == 2 and "aliases are expanded" in err and len(err) < 2000, err[:500]

@pytest.mark.parametrize("content", ["[]", "1", '"x"'])
def test_metrics_that_are_not_an_object_are_damaged_not_a_crash(tmp_path, content):
    f = tiny_study(tmp_path)
    cell = tmp_path / "out" / "tiny" / "synth-derm" / "resnet10t" / "none" / "noaug" / "seed0"
    cell.mkdir(parents=True); (cell / "metrics.json").write_text(content)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try: grid_cli([str(f), "--out", str(tmp_path / "out"), "--dry-run"]); code = 0
        except SystemExit as e: code = e.code
    assert code == 0 and "damaged" in out.getvalue() and "Traceback" not in out.getvalue(), out.getvalue()[-1000:]

def test_out_that_is_a_file(tmp_path):
    (tmp_path / "out").write_text("x")
    code, err = cli(grid_cli, [tiny_study(tmp_path), "--out", tmp_path / "out"])
    assert code == 2 and "is a file; expected a folder" in err

def test_damaged_study_record_in_the_report(tmp_path):
    (tmp_path / "study.yaml").write_text("name: [unclosed")
    code, err = cli(report_cli, [tmp_path])
    assert code == 2 and err.startswith("attnmed-report: error") and "Traceback" not in err

def test_corrupt_search_database(tmp_path):
    from attnmed.search import run_search
    from attnmed.config import StudyConfigError
    f = tiny_study(tmp_path, search=dict(trials=1))
    (tmp_path / "out" / "tiny").mkdir(parents=True); (tmp_path / "out" / "tiny" / "search.sqlite3").write_bytes(b"not a database" * 100)
    with pytest.raises(StudyConfigError, match="cannot be opened as the search's Optuna database"): run_search(f, out=tmp_path / "out")

def test_markup_in_a_cells_metrics_never_reaches_the_report_as_markup():
    import math
    from attnmed.study import _number
    assert math.isnan(_number("<script>alert(1)</script>")) and math.isnan(_number([1, 2])) and math.isnan(_number(True)) and _number(3) == 3.0

# --- the study folder: nothing planted there runs, nothing is overwritten, nothing stale is "done" (quick cells: no training) ---
from attnmed.testing import write_quick_experiment

def quick_grid(folder: Path, *extra, **over):
    "Run a quick-cell grid (no training) of `tiny_study(folder, **over)` in process; returns (exit code, stdout + stderr, study file)."
    f, nb = tiny_study(folder, **over), write_quick_experiment(folder / "quick.ipynb")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try: grid_cli([str(f), "--out", str(folder / "out"), "--notebook", str(nb), *map(str, extra)]); code = 0
        except SystemExit as e: code = e.code
    return code, out.getvalue(), f

CELL = Path("synth-derm/resnet10t/none/noaug/seed0")

def test_planted_modules_in_a_study_folder_are_not_imported_by_the_report(tmp_path):
    code, log, _ = quick_grid(tmp_path); assert code == 0, log
    study = tmp_path / "out" / "tiny"
    for name in ("yaml.py", "ipykernel_launcher.py", "pandas.py"):   # what the report's kernel would import from its working folder
        (study / name).write_text(f"open({str(tmp_path / 'ran')!r}, 'a').write({name!r})\n")
    code, err = cli(report_cli, [study, "--no-explain"])
    assert code == 0, err
    assert not (tmp_path / "ran").exists(), (tmp_path / "ran").read_text()
    assert (study / "report.html").exists()

def test_a_plugin_added_to_the_record_is_refused_not_run(tmp_path):
    code, log, _ = quick_grid(tmp_path); assert code == 0, log
    study = tmp_path / "out" / "tiny"
    evil = tmp_path / "evil.py"; evil.write_text(f"open({str(tmp_path / 'ran')!r}, 'w').write('x')\n")
    (study / "study.yaml").write_text((study / "study.yaml").read_text().replace("plugins: []", f"plugins: [{evil}]"))
    code, err = cli(report_cli, [study, "--no-explain"])
    assert code == 2 and "is not the file attnmed-grid wrote" in err and "Traceback" not in err, err
    assert not (tmp_path / "ran").exists()

def test_an_edited_plugin_makes_its_cells_changed(tmp_path):
    plug = tmp_path / "plug.py"; plug.write_text("X = 1\n")
    code, log, f = quick_grid(tmp_path, plugins=[str(plug)]); assert code == 0, log
    plug.write_text("X = 2\n")
    code, log, _ = quick_grid(tmp_path, "--dry-run", plugins=[str(plug)])
    assert code == 0 and "changed" in log and "the plugins' code" in log, log

def test_a_replaced_cache_is_other_data(tmp_path):
    import numpy as np
    from attnmed.data import load_npz, save_npz
    code, log, _ = quick_grid(tmp_path); assert code == 0, log
    cache = next((tmp_path / "data").glob("*.npz"))
    arrays = {k: np.asarray(v) for k, v in load_npz(cache).items()}
    arrays["train_labels"] = 1 - arrays["train_labels"]                    # labels flipped in place, same file name
    save_npz(cache, arrays)
    code, log, _ = quick_grid(tmp_path, "--dry-run")
    assert code == 0 and "changed" in log and "the data" in log, log

def test_a_done_cell_without_its_predictions_is_run_again(tmp_path):
    code, log, _ = quick_grid(tmp_path); assert code == 0, log
    (tmp_path / "out" / "tiny" / CELL / "predictions.csv").unlink()
    code, log, _ = quick_grid(tmp_path, "--dry-run")
    assert code == 0 and f"damaged {CELL}" in log, log
    code, log, _ = quick_grid(tmp_path)
    assert code == 0 and (tmp_path / "out" / "tiny" / CELL / "predictions.csv").exists(), log

def test_a_folder_that_is_not_this_study_is_not_written_into(tmp_path):
    other = tmp_path / "out" / "tiny"; other.mkdir(parents=True)
    (other / "results.csv").write_text("someone else's results\n")
    code, log, _ = quick_grid(tmp_path)
    assert code == 2 and "is not a study folder" in log and "Traceback" not in log, log
    assert (other / "results.csv").read_text() == "someone else's results\n" and not (other / "study.yaml").exists()

def test_a_second_config_is_refused_while_another_grid_runs_on_the_folder(tmp_path):
    from attnmed.study import acquire_lock, release_lock
    code, log, _ = quick_grid(tmp_path); assert code == 0, log
    cell = tmp_path / "out" / "tiny" / CELL
    assert acquire_lock(cell)                                               # as a grid running that cell holds it
    try:
        code, log, _ = quick_grid(tmp_path, epochs=2)                      # another config, same name and folder
        assert code == 2 and "another grid is running" in log, log
    finally: release_lock(cell)
    code, log, _ = quick_grid(tmp_path, epochs=2)                          # once it is done, an edited config may run: its cells are 'changed'
    assert code == 0 and "changed" in log, log

def test_cell_pages_come_only_from_the_notebook_the_grid_wrote(tmp_path):
    import nbformat
    from attnmed.report import render_cell_pages
    code, log, _ = quick_grid(tmp_path); assert code == 0, log
    study = tmp_path / "out" / "tiny"; cell = study / CELL
    render_cell_pages(study)
    assert "attnmed: rendered from" in (cell / "experiment.html").read_text()
    (cell / "experiment.html").write_text("<script>alert('planted')</script>")   # a planted page, newer than the notebook
    render_cell_pages(study)
    assert "planted" not in (cell / "experiment.html").read_text()
    nb = nbformat.read(cell / "experiment.ipynb", as_version=4)                # a planted notebook with script output
    nb.cells.append(nbformat.v4.new_code_cell("", outputs=[nbformat.v4.new_output("display_data", {"text/html": "<script>alert('x')</script>"})]))
    nbformat.write(nb, cell / "experiment.ipynb")
    render_cell_pages(study)
    assert not (cell / "experiment.html").exists(), "a notebook the grid did not write is not rendered"
    import hashlib                                                             # ... nor one planted with its own hash beside it
    (cell / "experiment.sha256").write_text(hashlib.sha256((cell / "experiment.ipynb").read_bytes()).hexdigest() + "\n")
    render_cell_pages(study)
    assert not (cell / "experiment.html").exists(), "a planted notebook with its own hash is not rendered"

def test_a_study_whose_metrics_are_nan_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNMED_QUICK_NAN", "1")                          # the kernels inherit it: every cell's balanced accuracy is NaN
    code, log, _ = quick_grid(tmp_path, attentions=["none", "se"]); assert code == 0, log
    code, err = cli(report_cli, [tmp_path / "out" / "tiny", "--no-explain"])
    assert code == 0, err
    html = (tmp_path / "out" / "tiny" / "report.html").read_text()
    assert "have no balanced accuracy (NaN" in html and "balanced accuracy is NaN, so none can be compared" in html, html[html.find("The-answer"):][:1500]

def test_an_image_size_past_the_memory_is_refused_up_front_with_the_numbers(tmp_path):
    from attnmed.study import available_memory
    n = int(available_memory() // (4096 * 4096 * 8)) + 10                # just past what this machine has now
    f = tiny_study(tmp_path, image_size=4096, datasets=[dict(name="big", format="synthetic", path=str(tmp_path / "data"), n_train=n, n_val=4, n_test=4)])
    code, err = cli(grid_cli, [f, "--out", tmp_path / "out"])
    assert code == 2 and "needs about" in err and "GB are available" in err and "Traceback" not in err, err
    assert not (tmp_path / "data").exists(), "refused before anything was generated"

# --- properties (hypothesis): whatever the folder names or the metrics files hold, exit code 0 or 2, no traceback, nothing run, nothing
# outside the study's folders changed ---
import json as _json, os as _os
from hypothesis import HealthCheck, example, given, settings, strategies as st
from attnmed.cli import init_cli

FOLDER_NAME = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=30).filter(
    lambda s: s not in (".", "..") and not s.startswith(".") and s == s.strip() and len(s.encode()) < 200)
JSON = st.recursive(st.none() | st.booleans() | st.integers(-10 ** 6, 10 ** 6) | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["balanced_accuracy", "ci95", "seconds", "params", "fingerprint",
                                                                                                 "confusion_matrix", "class_names", "x"]), inner, max_size=4), max_leaves=8)

def tree(root: Path) -> dict:
    "Every file under `root` with its size and modification time."
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(a=FOLDER_NAME, b=FOLDER_NAME)
def test_class_folder_names_never_become_yaml_or_code(tmp_path_factory, a, b):
    from attnmed.testing import blob_image, save_image
    import numpy as np
    if a == b or a.lower() == b.lower(): return
    d = tmp_path_factory.mktemp("names"); root = d / "data"; marker = d / "ran"
    (d / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    rng = np.random.default_rng(0)
    for ci, name in enumerate((a, b)):
        for i in range(8): save_image(root / name / f"p{i // 2}_{i}.png", blob_image(rng, ci, 24))
    before = tree(root)
    cwd = _os.getcwd(); _os.chdir(d)
    try:
        code, err = cli(init_cli, [root, "--out", d / "s.yaml", "--epochs", "1", "--image-size", "16"])
        assert code in (0, 2) and "Traceback" not in err, err
        if code == 0:
            from attnmed.config import load_study
            s = load_study(d / "s.yaml")
            assert s.plugins == [] and (d / s.datasets[0]["path"]).resolve() == root.resolve(), (d / "s.yaml").read_text()
            code, err = cli(grid_cli, [d / "s.yaml", "--out", d / "out", "--dry-run"])
            assert code in (0, 2) and "Traceback" not in err, err
    finally: _os.chdir(cwd)
    assert not marker.exists(), "a folder name ran as code"
    assert tree(root) == before, "the data folder was changed"

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(content=JSON)
def test_any_metrics_file_is_read_or_called_damaged(tmp_path_factory, content):
    from attnmed.study import cell_table, load_results
    d = tmp_path_factory.mktemp("metrics")
    f = tiny_study(d)
    cell = d / "out" / "tiny" / CELL; cell.mkdir(parents=True)
    (cell / "metrics.json").write_text(_json.dumps(content)); (cell / "predictions.csv").write_text("id,label,prediction\n")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try: grid_cli([str(f), "--out", str(d / "out"), "--dry-run"]); code = 0
        except SystemExit as e: code = e.code
    assert code in (0, 2) and "Traceback" not in out.getvalue(), out.getvalue()[-1500:]
    from attnmed.study import write_study_record, load_checked_study
    write_study_record(load_checked_study(f), d / "out" / "tiny")
    state = cell_table(d / "out" / "tiny").state.iloc[0]
    assert state in ("done", "changed", "damaged"), state
    load_results(d / "out" / "tiny")                                        # what the report reads: no exception

def test_a_planted_search_result_in_a_study_without_search_is_not_read(tmp_path):
    code, log, _ = quick_grid(tmp_path); assert code == 0, log
    study = tmp_path / "out" / "tiny"
    planted = study / "search" / CELL.parent / "best.json"; planted.parent.mkdir(parents=True)
    planted.write_text(json.dumps({"lr": "<b>x</b>"}))                  # no 'group': the old report died on KeyError
    code, err = cli(report_cli, [study, "--no-explain"])
    assert code == 0 and "Traceback" not in err, err
    html = (study / "report.html").read_text()
    assert "Tuned hyperparameters" not in html and "<b>x</b>" not in html

def test_a_study_folder_the_report_cannot_write_gets_one_line(tmp_path):
    code, log, _ = quick_grid(tmp_path); assert code == 0, log
    study = tmp_path / "out" / "tiny"
    (study / "report.html").mkdir()                                      # unwritable even for root (a folder where the page goes)
    code, err = cli(report_cli, [study, "--no-explain"])
    last = err.replace("\r", "\n").strip().splitlines()[-1]               # after the progress bar: one line
    assert code == 1 and "Traceback" not in err and last.startswith("attnmed-report: error") and "report.html" in last and "must be writable" in last, err

NAME_CHARS = ["\u2028", "\u2029", "\x85", "\x7f", "\x9b", "\u200b", "\ufeff", "\n", "\r", "\t", "#", ":", " ", "[", "]", "{", "}", "'", '"', "\\", "plugins", "evil_plugin.py", "a", "é"]

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(NAME_CHARS), min_size=1, max_size=8))
@example(["\u2028", "plugins", ":", " ", "[", "evil_plugin.py", "]", "\u2028", "#"])   # the probe's payload: a plugins line out of a folder name
@example(["s", "\x85", "#", "x"])                                                       # NEL folded into a space: the sibling folder 'ds #x'
def test_no_code_or_other_folder_from_a_folder_name(tmp_path_factory, parts):
    "A data folder whose name holds YAML line breaks, controls or quotes: attnmed-init writes a study that names that very folder and imports no plugin, however the name is made."
    from attnmed.new_study import new_study
    from attnmed.config import load_study
    from attnmed.study import check_study
    from attnmed.testing import write_sample_folder
    tmp = tmp_path_factory.mktemp("names")
    (tmp / "evil_plugin.py").write_text(f"open({str(tmp / 'ran')!r}, 'w').close()\n")
    name = "d" + "".join(parts)
    write_sample_folder(tmp / name, per_class=4)
    if "\x85" in name: write_sample_folder(tmp / name.replace("\x85", " "), per_class=4, classes=("other", "data"))   # the sibling a folded name would point at
    from attnmed.config import StudyConfigError
    from attnmed.data import DataError
    try: f = new_study(tmp / name, out=tmp / "s.yaml")
    except (StudyConfigError, DataError) as e:               # a name the study's checks refuse (a line break in a path): one line, nothing written, nothing run
        assert "\n" not in str(e) and not (tmp / "s.yaml").exists() and not (tmp / "ran").exists(); return
    study = check_study(load_study(f))                      # imports the plugins it names: none
    assert study.plugins == [] and not (tmp / "ran").exists()
    assert Path(study.datasets[0]["path"]).resolve() == (tmp / name).resolve()

def test_results_csv_runs_no_formula_in_a_spreadsheet(tmp_path):
    "A metrics.json whose text values are formulas (=cmd..., =HYPERLINK(...), @SUM): results.csv carries them neutralised (OWASP: a leading '), numbers still numbers."
    import pandas as pd
    from attnmed.grid import demo_study
    from attnmed.study import write_results_csv
    folder = demo_study(tmp_path)
    m = next(folder.rglob("metrics.json")); d = json.loads(m.read_text())
    d["seconds"] = "=cmd|' /C calc'!A0"; d["note"] = '=HYPERLINK("http://x","y")'; d["params"]["tracking_uri"] = "@SUM(A1)"
    m.write_text(json.dumps(d))
    text = write_results_csv(folder).read_text()
    assert "'=cmd|" in text and "'=HYPERLINK" in text or "=HYPERLINK" not in text, text[:500]
    r = pd.read_csv(folder / "results.csv")
    assert not r.astype(str).apply(lambda c: c.str.match(r"^[=+@\t\r-]")).to_numpy().any(), "no cell starts a formula"
    assert r.balanced_accuracy.dtype.kind == "f", "numbers stay numbers"

def test_an_alias_bomb_makes_a_short_error(tmp_path):
    "A 300-byte study file whose aliases expand to 16,000 strings under the value limit, in a field that quotes its value: one short line naming the field, not half a megabyte."
    items, prev = ["&a [xxxxxxxxxxxxxxxxxxxx, xxxxxxxxxxxxxxxxxxxx, xxxxxxxxxxxxxxxxxxxx, xxxxxxxxxxxxxxxxxxxx]"], "a"
    for n in "bcdefg": items.append(f"&{n} [" + ", ".join([f"*{prev}"] * 4) + "]"); prev = n
    f = tmp_path / "bomb.yaml"
    f.write_text("name: x\ndatasets: [{name: d, format: synthetic, path: data}]\narchs: [resnet18]\nepochs: [" + ", ".join(items) + "]\n")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as e: grid_cli([str(f), "--dry-run"])
    assert e.value.code == 2 and err.getvalue().count("\n") == 1 and len(err.getvalue()) < 1000, len(err.getvalue())
    assert "field 'epochs'" in err.getvalue() and "characters in all)" in err.getvalue()

def test_planted_or_earlier_explanations_are_not_shown_as_this_studys(tmp_path):
    "--no-explain beside an explanations folder that does not record these very cells (planted, or from models retrained since): the report says so and shows none of it."
    code, log, _ = quick_grid(tmp_path); assert code == 0, log
    study = tmp_path / "out" / "tiny"
    (study / "explanations").mkdir()
    (study / "explanations" / "sanity.csv").write_text("dataset,arch,augment,attention,method,spearman,verdict\nsynth-derm,resnet10t,False,se,saliency,0.01,PLANTED-PASS\n")
    code, err = cli(report_cli, [study, "--no-explain"])
    assert code == 0, err
    page = (study / "report.html").read_text()
    assert "are not shown" in page and "hold no record of the cells they explain" in page and "PLANTED-PASS" not in page

def test_carving_a_million_rows_of_250k_patients_keeps_whole_patients_and_class_shares():
    "The dry run of a 1,000,000-row CSV once spent minutes in a per-patient loop; the carve is array operations now (timed in bench/carve.py)."
    import numpy as np, pandas as pd
    from attnmed.tables import assign_splits
    rng = np.random.default_rng(0); n = 1_000_000
    t = pd.DataFrame(dict(path=np.arange(n).astype(str), label=rng.choice(8, n, p=[.5, .2, .1, .08, .06, .03, .02, .01]),
                          patient=rng.integers(0, 250_000, n).astype(str), split=""))
    s = assign_splits(t, source="big.csv")
    assert s.groupby("patient").split.nunique().max() == 1
    share = pd.crosstab(s.label, s.split, normalize="index")
    assert (share["test"] - 0.2).abs().max() < 0.01 and (share["val"] - 0.8 * 0.15).abs().max() < 0.01, share

def test_a_csv_row_naming_a_link_to_an_image_outside_its_folder_is_refused(tmp_path):
    "Confinement follows links: a listed image (or mask) that is a symlink to a file outside the CSV's folder is refused, naming the row, as '../x' is."
    import os
    from attnmed.data import DataError
    from attnmed.readers import CSV
    from attnmed.testing import write_sample_csv
    f = write_sample_csv(tmp_path / "listing", n=40, masks=True); outside = tmp_path / "secret.png"
    outside.write_bytes((f.parent / "images" / "0000.png").read_bytes())
    (f.parent / "images" / "0003.png").unlink(); os.symlink(outside, f.parent / "images" / "0003.png")
    spec = dict(name="c", format="csv", path=str(f), label_column="diagnosis", patient_column="patient", cache=str(tmp_path / "c"))
    with pytest.raises(DataError, match=r"labels.csv, line 5, column 'path': 'images/0003.png' is outside .* \(it is a link that leads there\)"): CSV().load(DatasetSpec.of(spec), 16)
    os.unlink(f.parent / "images" / "0003.png"); (f.parent / "images" / "0003.png").write_bytes(outside.read_bytes())
    (f.parent / "masks" / "0005.png").unlink(); os.symlink(outside, f.parent / "masks" / "0005.png")
    with pytest.raises(DataError, match=r"line 7, column 'mask': 'masks/0005.png' is outside"): CSV().load(DatasetSpec.of({**spec, "mask_column": "mask"}), 16)
