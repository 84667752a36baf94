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
