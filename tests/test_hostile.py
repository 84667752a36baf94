"""Hostile inputs get one line naming the file or field, exit code 2, and no traceback (in process: the command
lines' own functions, so each case takes seconds)."""
import contextlib, io, json
from pathlib import Path
import pytest, yaml
from attnmed.cli import grid_cli, report_cli

def tiny_study(folder: Path, **over) -> Path:
    raw = dict(name="tiny", datasets=[dict(name="synth-derm", format="synthetic", path=str(folder / "data"), n_train=32, n_val=16, n_test=16)],
               archs=["resnet10t"], attentions=["none"], seeds=[0], epochs=1, image_size=16, batch_size=16, device="cpu", **over)
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
