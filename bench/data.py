"""Data throughput, measured side by side in one run:

1. the synthetic generator: images/s at 224 px (target: 10 000 synth-derm images in under a minute on 2 cores);
2. disk -> batch at 224 px for a folder of JPEGs of realistic size (ISIC-like, 1024 x 768): *cold* (decode, resize and
   cache once, then one epoch), *cached* (the next run: read the cache, one epoch), and, for reference, a loader that
   decodes and resizes every JPEG in every epoch (what a plain torchvision ImageFolder pipeline does).

    python bench/data.py [--n-synth 10000] [--n-jpeg 400] [--size 224]
"""
import argparse, shutil, tempfile, time, warnings
warnings.filterwarnings("ignore", category=FutureWarning)
from pathlib import Path
import numpy as np, torch
from PIL import Image
from functools import partial
from attnmed.synthetic import generate
from attnmed.datasets import load_dataset
from attnmed.loaders import make_dataloaders

def epoch(dls):
    n = 0
    for xb, yb in dls.train: n += len(xb)
    return n

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-synth", type=int, default=10000); p.add_argument("--n-jpeg", type=int, default=400)
    p.add_argument("--size", type=int, default=224); p.add_argument("--threads", type=int, default=torch.get_num_threads())
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = []
    for name, gen in [(k, partial(generate, k)) for k in ("synth-derm", "synth-mammo")]:
        t = time.perf_counter(); gen(image_size=a.size, n_train=a.n_synth, n_val=2, n_test=2); dt = time.perf_counter() - t
        rows.append((f"generate {name} ({a.n_synth} at {a.size} px)", a.n_synth / dt, dt))
    tmp = Path(tempfile.mkdtemp(prefix="attnmed-bench-"))
    try:
        root = tmp / "jpegs"; rng = np.random.default_rng(0)
        for i in range(a.n_jpeg):   # ISIC-like JPEGs: 1024 x 768, smooth content plus noise
            c = i % 2; d = root / "train" / f"class{c}"; d.mkdir(parents=True, exist_ok=True)
            small = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
            img = np.asarray(Image.fromarray(small).resize((1024, 768), Image.BICUBIC)).astype(np.int16) + rng.integers(-8, 8, (768, 1024, 3))
            Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(d / f"{i:05d}.jpg", quality=90)
        for s in ("valid", "test"): shutil.copytree(root / "train", root / s)
        spec = dict(name="bench", format="folder", path=str(root), cache=str(tmp / "cache"))
        total = 3 * a.n_jpeg   # train + valid + test are decoded together
        t = time.perf_counter(); ds = load_dataset(spec, a.size); cold = time.perf_counter() - t
        t = time.perf_counter(); ds = load_dataset(spec, a.size); cached = time.perf_counter() - t
        dls, _ = make_dataloaders(ds, batch_size=64); epoch(dls)
        t = time.perf_counter(); n = epoch(dls); in_memory = time.perf_counter() - t
        # reference: decode + resize every JPEG of the training split, in every epoch
        files = sorted((root / "train").rglob("*.jpg"))
        t = time.perf_counter(); batch = []
        for f in files:
            batch.append(torch.from_numpy(np.array(Image.open(f).convert("RGB").resize((a.size, a.size), Image.BILINEAR))).permute(2, 0, 1))
            if len(batch) == 64: torch.stack(batch).float(); batch = []
        per_epoch_decode = time.perf_counter() - t
        rows += [(f"first run: decode + resize + write cache ({total} JPEGs)", total / cold, cold),
                 (f"later runs: read the cache ({total} images)", total / cached, cached),
                 (f"one training epoch from memory ({n} images to batches)", n / in_memory, in_memory),
                 (f"reference: decode + resize in every epoch ({len(files)} JPEGs)", len(files) / per_epoch_decode, per_epoch_decode)]
    finally: shutil.rmtree(tmp, ignore_errors=True)
    w = max(len(r[0]) for r in rows)
    print(f"{'what':{w}s}  {'images/s':>10s}  {'seconds':>8s}")
    for what, ips, sec in rows: print(f"{what:{w}s}  {ips:10.0f}  {sec:8.2f}")
    ref = rows[-1][1]
    print(f"\nratios to the decode-every-epoch reference: first run {rows[-4][1] / ref:.1f}x, cache read {rows[-3][1] / ref:.1f}x, "
          f"epoch from memory {rows[-2][1] / ref:.1f}x")
    print(f"synth-derm: {a.n_synth} images at {a.size} px in {rows[0][2]:.1f} s (target: 10 000 in < 60 s)")

if __name__ == "__main__": main()
