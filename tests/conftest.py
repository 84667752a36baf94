import os, subprocess, sys
from pathlib import Path
import pytest, yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

def tiny_study(tmp: Path, name="tiny", **over) -> Path:
    "Write a small, fast study YAML into `tmp` and return its path."
    raw = dict(name=name, datasets=[dict(name="synth-derm", format="synthetic", path="data", n_train=64, n_val=32, n_test=32)],
               archs=["resnet10t"], attentions=["none", "se"], augment=[False], seeds=[0],
               epochs=1, image_size=32, batch_size=32, lr=0.003, device="cpu")
    raw.update(over)
    f = tmp / f"{name}.yaml"
    f.write_text(yaml.safe_dump(raw, sort_keys=False))
    return f

def run(cmd, **kw):
    "Run an attnmed command line; returns the CompletedProcess (text)."
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    exe = BIN / cmd[0]
    return subprocess.run([str(exe), *cmd[1:]], capture_output=True, text=True, env=env, cwd=kw.pop("cwd", ROOT), timeout=600, **kw)

@pytest.fixture
def tmp(tmp_path): return tmp_path
