"""Peak memory of a grey dataset, from its cached file to batches, as a multiple of its uint8 size.

Writes a MedMNIST-layout `.npz` of grey images at 224 px (what a cache of mammograms or chest X-rays holds), then,
in a fresh process, reads it with the `medmnist` format, builds the loaders (`make_dataloaders`, which computes the
normalisation statistics) and runs one epoch of training batches. The peak resident memory above the process's
own (after imports) is divided by the dataset's uint8 size. Beside it, for reference, the same measure for the
3-channel copy attnmed used to make (`as_chw3` of every split).

The file is written uncompressed, as attnmed's decode caches are, so it is read memory-mapped (`attnmed.data.load_npz`).

Target (issue 23): <= 1.3x the uint8 size.

    python bench/memory.py [--n 16000] [--size 224]
"""
import argparse, json, subprocess, sys, tempfile
from pathlib import Path
import numpy as np

CHILD = r"""
import json, resource, sys, warnings; warnings.filterwarnings("ignore")
import numpy as np, torch
from attnmed.datasets import load_dataset, as_chw3
from attnmed.loaders import make_dataloaders
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
path, size, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
base = rss()
data = load_dataset(dict(name="grey", format="medmnist", path=path), size)
nbytes = sum(a.nbytes for a in data.images.values())
mapped = all(isinstance(a, np.memmap) for a in data.images.values())   # an uncompressed cache is memory-mapped: its pages are file-backed and reclaimable
if mode == "attnmed":
    dls, test_dl = make_dataloaders(data, batch_size=64)
    ready = rss() - base
    for xb, yb in dls.train: pass
else:
    copies = {s: as_chw3(a) for s, a in data.images.items()}
    ready = rss() - base
print(json.dumps(dict(nbytes=nbytes, ready=ready, peak=rss() - base, mapped=mapped)))
"""

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=16000); p.add_argument("--size", type=int, default=224)
    a = p.parse_args(argv)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "grey.npz"
        arrays = {}
        for s, k in (("train", a.n), ("val", a.n // 8), ("test", a.n // 8)):
            arrays[f"{s}_images"] = rng.integers(0, 256, (k, a.size, a.size), dtype=np.uint8)
            arrays[f"{s}_labels"] = rng.integers(0, 2, (k, 1))
        np.savez(f, **arrays); del arrays
        out = {}
        for mode in ("attnmed", "3-channel copy"):
            r = subprocess.run([sys.executable, "-c", CHILD, str(f), str(a.size), mode], capture_output=True, text=True, check=True)
            out[mode] = json.loads(r.stdout.strip().splitlines()[-1])
    mb = out["attnmed"]["nbytes"] / 2 ** 20
    print(f"grey dataset: {a.n + 2 * (a.n // 8)} images at {a.size} px = {mb:.0f} MB as uint8; read memory-mapped: {out['attnmed']['mapped']} "
          "(resident pages of a mapped file are the page cache: the system drops them under memory pressure, so a cache larger than memory still trains)")
    for mode, o in out.items():
        print(f"  {mode:15s} peak above the process's own, data and loaders ready: {o['ready'] / 2 ** 20:7.0f} MB = {o['ready'] / o['nbytes']:.2f}x the uint8 size"
              + (f"; after an epoch of batches (batch_size 64: a batch's float copies add a constant): {o['peak'] / 2 ** 20:.0f} MB = {o['peak'] / o['nbytes']:.2f}x (target <= 1.3x)" if mode == "attnmed" else ""))

if __name__ == "__main__": main()
