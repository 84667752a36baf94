"""Every arch x attention at 64 px on the CPU: builds, trains a step, starts as the backbone, exposes its maps."""
import os, subprocess, sys
import pytest, timm, torch
from attnmed.models import (ARCHS, ATTENTIONS, GatedResidual, MLDAMHead, ModelError, attention_maps, compatible,
                            copy_backbone_weights, create_model, splitter)

PAIRS = [(a, t) for a in ARCHS for t in ATTENTIONS if compatible(a, t)]
INSERTED = [t for t, v in ATTENTIONS.items() if v.make is not None]
n_params = lambda m: sum(p.numel() for p in m.parameters())

@pytest.mark.parametrize("arch,attention", PAIRS, ids=[f"{a}-{t}" for a, t in PAIRS])
def test_forward_backward_and_gradients(arch, attention):
    torch.manual_seed(0)
    m = create_model(arch, attention, n_out=3, img_size=64).train()
    for mod in m.modules():   # open the zero-initialised gates so every new parameter is on the gradient path
        if isinstance(mod, GatedResidual): mod.gamma.data.fill_(0.5)
        if isinstance(mod, MLDAMHead) and mod.mode == "principled": mod.gamma_pam.data.fill_(0.5); mod.gamma_cam.data.fill_(0.5)
    x = torch.randn(2, 3, 64, 64)
    out = m(x)
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    out.square().sum().backward()
    backbone, new = splitter(m)
    assert len(backbone) > 0
    if attention != "none":
        assert new, "the variant adds parameters"
        dead = [i for i, p in enumerate(new) if p.grad is None or p.grad.abs().sum() == 0]
        assert not dead, f"{len(dead)} of {len(new)} new parameter tensors got no gradient"

@pytest.mark.parametrize("arch", list(ARCHS))
def test_none_is_exactly_the_library_model(arch):
    from attnmed.models import _timm_kwargs
    spec = ARCHS[arch]
    assert n_params(create_model(arch, img_size=64)) == n_params(timm.create_model(spec.timm_name, num_classes=2, **_timm_kwargs(spec, 64)))

CNN_INSERTED = [(a, t) for a in ARCHS if ARCHS[a].is_cnn for t in INSERTED]
@pytest.mark.parametrize("arch,attention", CNN_INSERTED, ids=[f"{a}-{t}" for a, t in CNN_INSERTED])
def test_identity_at_init(arch, attention):
    torch.manual_seed(1)
    base = create_model(arch, img_size=64).eval()
    m = copy_backbone_weights(base, create_model(arch, attention, img_size=64)).eval()
    x = torch.randn(2, 3, 64, 64)
    rel = lambda a, b: float((a - b).norm() / b.norm())
    with torch.no_grad(): assert rel(m(x), base(x)) < 1e-4
    # and the insertion does change the computation once its gate opens
    for mod in m.modules():
        if isinstance(mod, GatedResidual): mod.gamma.data.fill_(1.0)
    with torch.no_grad(): assert rel(m(x), base(x)) > 1e-3

@pytest.mark.parametrize("arch,attention,expected", [
    ("resnet18", "cbam", {"layer1.1": (32, 16), "layer2.1": (16, 8), "layer3.1": (8, 4), "layer4.1": (4, 2)}),
    ("resnet18", "nonlocal", {"layer3.1": (8, 4), "layer3.1.attn": (8, 4)}),
    ("vgg16", "se", {"features.15.1": (32, 16), "features.22.1": (16, 8), "features.29.1": (8, 4)}),
    ("densenet121", "mhsa", {"features.norm5.1": (4, 2), "features.norm5.1.attn": (4, 2)}),
    ("resnet50", "mldam", {"head.pam": (4, 2)}),
    ("vgg16", "mldam-seed", {"head.pam": (4, 2)}),
    ("resnet50", "botnet", {"layer4.0.conv2.0": (8, 4), "layer4.1.conv2": (4, 2), "layer4.2.conv2": (4, 2)}),
    ("resnet18", "ga", {"layer3.1": (8, 4), "layer3.1.attn": (8, 4), "layer4.1": (4, 2), "layer4.1.attn": (4, 2)}),
    ("efficientnet_b0", "la", {"blocks.4.1": (8, 4), "blocks.4.1.attn": (8, 4), "blocks.6.1": (4, 2), "blocks.6.1.attn": (4, 2)}),
    ("resnet18", "ela", {"layer4.0.conv2": (4, 2), "layer4.1.conv2": (4, 2)}),
    ("efficientnet_b0", "ela", {"blocks.6.0.conv_dw": (4, 2)}),
])
@pytest.mark.parametrize("size_index,size", [(0, 128), (1, 64)])
def test_attention_map_shapes(arch, attention, expected, size_index, size):
    m = create_model(arch, attention, img_size=size).eval()
    maps = attention_maps(m, torch.randn(2, 3, size, size))
    assert {k: tuple(v.shape) for k, v in maps.items()} == {k: (2, hw[size_index], hw[size_index]) for k, hw in expected.items()}

def test_bad_names_list_the_valid_ones():
    with pytest.raises(ModelError, match="valid archs: resnet10t, resnet18, resnet50, vgg16, densenet121"): create_model("resnet101")
    with pytest.raises(ModelError, match="valid attentions: none, se, cbam, eca, nonlocal, mhsa, botnet, ga, la, ela, mldam, mldam-seed, mlphead"): create_model("resnet18", "danet")
    with pytest.raises(ModelError, match="transformer baseline"): create_model("swin_tiny", "cbam")

def test_pretrained_offline_is_a_clear_error(tmp_path):
    "With no weights in the (empty) caches and no network, asking for pretrained weights is an error that says what to do."
    code = ("from attnmed.models import create_model, ModelError\n"
            "try: create_model('resnet10t', pretrained=True, img_size=64)\n"
            "except ModelError as e: print('ERROR', e)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert "ERROR pretrained ImageNet weights for 'resnet10t'" in r.stdout, r.stdout + r.stderr[-2000:]
    assert "not in the local cache" in r.stdout and "pretrained: false" in r.stdout

def test_pretrained_from_a_weights_file(tmp_path):
    src = timm.create_model("resnet10t", num_classes=1000)
    f = tmp_path / "resnet10t.pth"; torch.save(src.state_dict(), f)
    m = create_model("resnet10t", "se", pretrained=str(f), img_size=64)
    torch.testing.assert_close(m.conv1[0].weight, src.conv1[0].weight)
    with pytest.raises(ModelError, match="not found"): create_model("resnet10t", pretrained=str(tmp_path / "nope.pth"))

def test_botnet_replaces_the_last_stage_convolutions():
    from attnmed.models import SelfAttention2d
    m = create_model("resnet50", "botnet", img_size=64)
    assert all(isinstance(b.conv2, SelfAttention2d) or isinstance(b.conv2[0], SelfAttention2d) for b in m.layer4)
    assert not any(isinstance(mod, torch.nn.Conv2d) and mod.kernel_size == (3, 3) for mod in m.layer4.modules())
    assert all(isinstance(b.conv2, torch.nn.Conv2d) for b in m.layer3)   # earlier stages untouched

@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_b0"])
@pytest.mark.parametrize("attention", ["ga", "la", "ela"])
def test_seed000_variants_train_a_step_and_expose_maps(arch, attention):
    torch.manual_seed(0)
    m = create_model(arch, attention, img_size=64).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    loss = torch.nn.functional.cross_entropy(m(torch.randn(4, 3, 64, 64)), torch.tensor([0, 1, 0, 1]))
    loss.backward(); opt.step()
    maps = attention_maps(m.eval(), torch.randn(2, 3, 64, 64))
    assert maps and all(v.shape[0] == 2 and v.ndim == 3 and torch.isfinite(v).all() for v in maps.values())

def test_ela_embeds_local_attention_in_the_last_stage():
    from attnmed.models import LocalSelfAttention2d
    r = create_model("resnet18", "ela", img_size=64)
    assert all(isinstance(b.conv2, LocalSelfAttention2d) for b in r.layer4) and all(isinstance(b.conv2, torch.nn.Conv2d) for b in r.layer3)
    e = create_model("efficientnet_b0", "ela", img_size=64)
    assert all(isinstance(b.conv_dw, LocalSelfAttention2d) for b in e.blocks[6]) and isinstance(e.blocks[5][0].conv_dw, torch.nn.Conv2d)
    with pytest.raises(ModelError, match="needs a ResNet or an EfficientNet"): create_model("vgg16", "ela")

def test_mldam_runs_the_backbone_once():
    m = create_model("resnet50", "mldam", img_size=64)
    calls = []
    m.backbone.conv1.register_forward_hook(lambda *a: calls.append(1))
    m(torch.randn(1, 3, 64, 64))
    assert len(calls) == 1
