"""A tiny cell's fixed cost, broken down, side by side with the import floor in one run.

Runs a 2-cell grid of tiny cells (resnet10t, none vs se, 64 synthetic images at 16 px, 1 epoch) through
`attnmed-grid`, and reads each cell's executed notebook for the seconds papermill spent in each part (imports,
data, training, evaluation, saliency, writing). Beside it: the import floor (a bare
`python -c "import torch, timm, fastai.learner"`, the median of runs timed before and after the grid), a trivial notebook through attnmed's runner (kernel start,
parameters, write), and `attnmed-grid --help`.

The grid runs twice: with its default `--jobs` (on 2 cores, both cells at once) for the 2-cell wall time, and with `--jobs 1` for the
per-cell breakdown, so that each cell is compared with a floor that was also timed alone (two cells sharing two cores each take longer).

Targets (issue 23): a tiny cell at most 3 s above the import floor; two tiny cells in <= 25 s (set where the floor was 8-9 s: the
wall is also printed as a multiple of the floor measured in the same run); `--help` <= 1.5 s.

    python bench/cell.py [--repeats 1]
"""
import argparse, json, subprocess, sys, tempfile, time
from pathlib import Path

STUDY = """name: tiny
datasets:
  - {{name: synth-derm, format: synthetic, path: {data}, n_train: 64, n_val: 32, n_test: 32}}
archs: [resnet10t]
attentions: [none, se]
seeds: [0]
epochs: 1
image_size: 16
batch_size: 32
device: cpu
"""
PARTS = {"c001": "imports", "c003": "data (load, loaders, model)", "c005": "data view (table, samples)", "c007": "training",
         "c009": "evaluation", "c011": "saliency figure", "t002": "top losses", "c013": "writing results"}

def seconds(cmd, **kw):
    t = time.perf_counter(); subprocess.run(cmd, check=True, capture_output=True, **kw); return time.perf_counter() - t

def trivial_notebook():
    import nbformat
    from attnmed.execute import execute_notebook
    with tempfile.TemporaryDirectory() as d:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell("y = x + 1")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
        f = Path(d) / "trivial.ipynb"; nbformat.write(nb, f)
        t = time.perf_counter(); execute_notebook(f, Path(d) / "out.ipynb", {"x": 2}); return time.perf_counter() - t

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=1)
    a = p.parse_args(argv)
    bin_ = Path(sys.executable).parent
    floor_cmd = [sys.executable, "-c", "import torch, timm, fastai.learner"]
    floors = [seconds(floor_cmd) for _ in range(2)]   # and once more after the grid: the machine's speed drifts, the median compares like with like
    help_s = min(seconds([str(bin_ / "attnmed-grid"), "--help"]) for _ in range(3))
    kernel = min(trivial_notebook() for _ in range(2))
    for r in range(a.repeats):
        with tempfile.TemporaryDirectory() as d:
            f = Path(d) / "tiny.yaml"; f.write_text(STUDY.format(data=Path(d) / "data"))
            wall = seconds([str(bin_ / "attnmed-grid"), str(f), "--out", str(Path(d) / "out")])   # the default --jobs
            seconds([str(bin_ / "attnmed-grid"), str(f), "--out", str(Path(d) / "one"), "--jobs", "1"])   # one cell at a time: each compares with the floor
            cells = sorted((Path(d) / "one" / "tiny").glob("*/*/*/*/seed0/experiment.ipynb"))
            rows = []
            for nb in cells:
                j = json.loads(nb.read_text())
                parts = {PARTS.get(c.get("id"), "other"): c["metadata"].get("papermill", {}).get("duration") or 0 for c in j["cells"] if c["cell_type"] == "code"}
                total = j["metadata"]["papermill"]["duration"]
                rows.append((nb.parts[-4], total, parts))
        floors.append(seconds(floor_cmd)); floor = sorted(floors)[len(floors) // 2]
        print(f"import floor (python -c 'import torch, timm, fastai.learner', median of {len(floors)} timed before and after the grid: {', '.join(f'{f:.1f}' for f in floors)}): {floor:.1f} s; attnmed-grid --help: {help_s:.2f} s (target <= 1.5 s); "
              f"a trivial notebook through attnmed's runner: {kernel:.1f} s")
        print(f"2-cell tiny grid (default --jobs): {wall:.1f} s wall = {wall / floor:.2f} x the floor (target <= 25 s, set where the floor was 8-9 s: about 2.9 x); per cell, one at a time (--jobs 1):")
        for att, total, parts in rows:
            print(f"  cell {att}: {total:.1f} s in papermill = floor + {total - floor:+.1f} s (target <= +3 s): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in parts.items() if v >= 0.01))

if __name__ == "__main__": main()
