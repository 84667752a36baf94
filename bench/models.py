"""Training throughput (images/s) of every arch x attention, side by side with the bare backbone, in one run.

On CUDA: bf16 autocast + channels_last, 224 px, batch 64 (targets: se/cbam/eca/mldam cost <= 15 % throughput,
mhsa/nonlocal <= 35 %). Without a GPU: CPU at 64 px, batch 16 (what this machine can show, not the target setting).

    python bench/models.py [--archs resnet18,resnet50] [--attentions none,se,...] [--size 224] [--batch 64] [--steps 20]
"""
import argparse, time
import torch, pandas as pd
from attnmed.models import ATTENTIONS, compatible, create_model

def images_per_second(model, size, batch, steps, device, warmup=3):
    "Forward + backward + AdamW step on random data already on the device; median-free mean over `steps` after `warmup`."
    cuda = device.type == "cuda"
    model = model.to(device).train()
    if cuda: model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, size, size, device=device)
    if cuda: x = x.to(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,), device=device)
    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    for _ in range(warmup): step()
    if cuda: torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps): step()
    if cuda: torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t)

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cuda = torch.cuda.is_available()
    p.add_argument("--archs", default="resnet18,resnet50,vgg16,densenet121" if cuda else "resnet10t,resnet18")
    p.add_argument("--attentions", default=",".join(ATTENTIONS))
    p.add_argument("--size", type=int, default=224 if cuda else 64)
    p.add_argument("--batch", type=int, default=64 if cuda else 16)
    p.add_argument("--steps", type=int, default=20 if cuda else 5)
    a = p.parse_args()
    device = torch.device("cuda" if cuda else "cpu")
    print(f"device {torch.cuda.get_device_name() if cuda else 'cpu'}, {a.size} px, batch {a.batch}, {'bf16 + channels_last' if cuda else 'fp32'}")
    rows = []
    for arch in a.archs.split(","):
        base = None
        for att in a.attentions.split(","):
            if not compatible(arch, att): continue
            torch.manual_seed(0)
            ips = images_per_second(create_model(arch, att, image_size=a.size), a.size, a.batch, a.steps, device)
            base = ips if att == "none" else base
            rows.append(dict(arch=arch, attention=att, img_per_s=round(ips, 1), ratio_vs_none=round(ips / base, 3) if base else None,
                             cost_pct=round(100 * (1 - ips / base), 1) if base else None))
            print(rows[-1], flush=True)
    print(pd.DataFrame(rows).to_string(index=False))

if __name__ == "__main__": main()
