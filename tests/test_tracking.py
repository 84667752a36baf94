"""Experiment tracking through the grid: every cell is an MLflow run of the study's experiment (two cells at once into one
SQLite store), read back with MLflow's own client; switching tracking off afterwards leaves the cells done, not changed."""
import pytest
from mlflow import MlflowClient
from conftest import run, run_here, tiny_study

@pytest.mark.cost(55)
def test_a_grid_logs_every_cell_to_mlflow_and_tracking_does_not_change_results(tmp):
    study = tiny_study(tmp, epochs=2, tracking="mlflow")
    r = run_here(["attnmed-grid", str(study), "--out", str(tmp / "out"), "--jobs", "2"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "INFO" not in r.stdout + r.stderr and "Warning" not in r.stdout + r.stderr, "quiet"
    client = MlflowClient(f"sqlite:///{tmp / 'out' / 'tiny' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert sorted(x.info.run_name for x in runs) == ["synth-derm/resnet10t/none/noaug/seed0", "synth-derm/resnet10t/se/noaug/seed0"]
    for x in runs:
        assert x.info.status == "FINISHED" and x.data.params["epochs"] == "2" and x.data.tags["attention"] in ("none", "se")
        assert [m.step for m in client.get_metric_history(x.info.run_id, "balanced_accuracy_score")] == [1, 2]
        assert 0 <= x.data.metrics["test_balanced_accuracy"] <= 1
    study.write_text(study.read_text().replace("tracking: mlflow", "tracking: none"))
    r = run_here(["attnmed-grid", str(study), "--out", str(tmp / "out"), "--dry-run"])
    assert "2 done, 0 todo" in r.stdout, r.stdout[-1500:]
