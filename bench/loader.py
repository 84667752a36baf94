"""The training loader's hand-over rate, measured side by side in one run: uint8 batches per second from
`make_dataloaders`' train loader with its batch transforms taken off (what the CPU does before the device converts
and augments them), against a plain batch gather `x[perm[i:i+bs]]` from the same in-memory tensor, and against
fastai's item-by-item `TfmdDL` (the loader attnmed used before `GatherDL`). The gather is timed two ways:
`x[j]` (plain indexing, the reference of issue 23) and `x.index_select(0, j)` (torch's fastest gather, which
`GatherDL` itself uses): the second ratio is the loader's own overhead over a bare gather.

Target (issue 23): attnmed / x[j] >= 0.9 at 28 and 64 px, and no slower than item-by-item at 224 px.

    python bench/loader.py [--sizes 28,64,224] [--batch 128] [--channels 1,3] [--repeats 5]
"""
import argparse, random, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, torch
from fastai.data.core import TfmdDL
from fastai.torch_core import TensorImage, TensorCategory
from attnmed.data import ImageSplits, SPLITS
from attnmed.datasets import as_chw3
from attnmed.loaders import make_dataloaders

def fake_data(n, size, channels, seed=0):
    rng = np.random.default_rng(seed)
    shape = lambda k: (k, size, size) if channels == 1 else (k, size, size, 3)
    imgs = {s: rng.integers(0, 255, shape(n if s == "train" else 16), dtype=np.uint8) for s in SPLITS}
    labels = {s: rng.integers(0, 2, len(imgs[s])) for s in SPLITS}
    return ImageSplits("bench", imgs, labels, {s: np.arange(len(imgs[s])).astype(str) for s in SPLITS}, ["a", "b"])

def epoch_rate(batches, n_images):
    "One epoch: images per second."
    t = time.perf_counter(); seen = 0
    for xb, yb in batches(): seen += len(xb)
    assert seen >= n_images - 512, (seen, n_images)
    return seen / (time.perf_counter() - t)

def rates(loaders, n_images, repeats):
    "Best of `repeats` epochs of each loader, the loaders interleaved (so that a slow spell of the machine hits them alike): images per second."
    best = [0.0] * len(loaders)
    for _ in range(repeats):
        for k, batches in enumerate(loaders): best[k] = max(best[k], epoch_rate(batches, n_images))
    return best

def attnmed_loader(data, bs):
    dls, _ = make_dataloaders(data, batch_size=bs)
    dl = dls.train
    dl.after_batch = lambda b: b   # uint8 hand-over: the device-side transforms taken off
    return lambda: iter(dl)

def gather(data, bs, index_select=False):
    "A batch gather from the in-memory N x C x H x W tensor: `x[j]` (plain indexing), or `x.index_select(0, j)` (the fastest gather torch has)."
    x = torch.from_numpy(data.images["train"])
    x = x[:, None].contiguous() if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(data.labels["train"])
    def it():
        perm = torch.randperm(len(x))
        for i in range(0, len(x) - len(x) % bs, bs):
            j = perm[i:i + bs]
            yield (x.index_select(0, j), y.index_select(0, j)) if index_select else (x[j], y[j])
    return it

def item_by_item(data, bs):
    class Items:
        def __init__(self, im, lb): self.x, self.y = TensorImage(as_chw3(im)), TensorCategory(torch.from_numpy(lb))
        def __len__(self): return len(self.y)
        def __getitem__(self, i): return self.x[i], self.y[i]
    dl = TfmdDL(Items(data.images["train"], data.labels["train"]), bs=bs, shuffle=True, drop_last=True)
    return lambda: iter(dl)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="28,64,224"); p.add_argument("--channels", default="1,3")
    p.add_argument("--batch", type=int, default=128); p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads); random.seed(0); torch.manual_seed(0)
    n_of = {28: 20000, 64: 8000, 224: 1500}
    print(f"uint8 batches of {a.batch} handed over per second ({a.threads} torch thread(s); best of {a.repeats} epochs)")
    print(f"{'px':>4} {'ch':>3} {'x[j] img/s':>13} {'index_select':>13} {'attnmed img/s':>14} {'item-by-item':>13} {'attnmed/x[j]':>15} {'attnmed/i_sel':>15} {'attnmed/item':>13}")
    for size in map(int, a.sizes.split(",")):
        for ch in map(int, a.channels.split(",")):
            n = n_of.get(size, 2000)
            data = fake_data(n, size, ch)
            g, s, m = rates([gather(data, a.batch), gather(data, a.batch, index_select=True), attnmed_loader(data, a.batch)], n, a.repeats)
            i = rates([item_by_item(data, a.batch)], n, 1)[0]
            print(f"{size:4d} {ch:3d} {g:13,.0f} {s:13,.0f} {m:14,.0f} {i:13,.0f} {m / g:15.2f} {m / s:15.2f} {m / i:13.1f}", flush=True)

if __name__ == "__main__": main()
