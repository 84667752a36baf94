"""Every registered arch x attention variant, driven by the registries' declarations (no variant is tested by its name here):
it builds, trains a step with a gradient in every parameter, puts what it added in the group that trains while the backbone is
frozen, starts as the backbone when it is inserted, exposes its maps, and survives the randomisation test's copy."""
import functools, os, subprocess, sys
import pytest, timm, torch
from attnmed.backbones import ARCHS, ModelError, get_module
from attnmed.attention import ATTENTIONS, added_modules, compatible
from attnmed.models import attention_maps, create_model, randomised_copy, splitter
from attnmed.explain import randomisation_test

PAIRS = [(a, t, "pooled") for a in ARCHS for t in ATTENTIONS if compatible(a, t)]
PAIRS += [(a, t, "flatten") for a in ("vgg16", "resnet50", "densenet121") for t in ("none", "se", "ela", "mldam") if compatible(a, t)]   # Gonçalves & Cardoso's baselines' head
SIZE = 64

@functools.lru_cache(maxsize=2)
def bare(arch, head="pooled"):
    "The arch with attention 'none', seed 0 (shared by the pairs of one arch)."
    return create_model(arch, "none", n_out=3, image_size=SIZE, seed=0, head=head).eval()

def as_if_trained(model):
    """Move every parameter off its initial value (zero-initialised gates to 0.5, the rest by a little noise), so that no zero init
    (the gates, timm's zero-initialised last BatchNorm of each residual block) keeps a used parameter off the gradient path."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 0 and p == 0: p.fill_(0.5)
            else: p.add_(0.01 * torch.randn(p.shape, generator=g))

def _pair(a, t, h):
    "VGG-16 (134 M parameters, ~15 s a pair on 2 cores) with its baseline, SE and MLDAM in every run; its other pairs with --slow."
    slow = a == "vgg16" and t not in ("none", "se", "mldam")
    return pytest.param(a, t, h, id=f"{a}-{t}-{h}", marks=[pytest.mark.slow] if slow else [])

@pytest.mark.parametrize("arch,attention,head", [_pair(*p) for p in PAIRS])
def test_every_pair(arch, attention, head):
    variant = ATTENTIONS[attention]
    base = bare(arch, head)
    m = create_model(arch, attention, n_out=3, image_size=SIZE, seed=0, head=head)
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    # paired by seed: an inserted variant starts as the backbone (same weights, same function)
    if variant.kind == "inserted":
        with torch.no_grad(): torch.testing.assert_close(m.eval()(x), base(x), rtol=1e-4, atol=1e-5)
    # paired by seed: the variant starts from the bare model's backbone weights (its first stage, compared by value)
    base_params = [p.detach() for p in base.parameters()]
    if ARCHS[arch].is_cnn:
        core = base.backbone if hasattr(base, "backbone") else base
        for p in get_module(core, ARCHS[arch].stages[0]).parameters(): assert any(q.shape == p.shape and torch.equal(q.detach(), p.detach()) for q in m.parameters())
    # what the variant added (every parameter the bare model does not have) trains while the backbone is frozen
    frozen, trainable = splitter(m)
    trainable_ids = {id(p) for p in trainable}
    new = [n for n, p in m.named_parameters() if not any(q.shape == p.shape and torch.equal(q, p.detach()) for q in base_params)]
    assert not [n for n, p in m.named_parameters() if n in new and id(p) not in trainable_ids], "added parameters in the frozen group"
    if attention != "none": assert new and added_modules(m), "the variant adds modules and marks them"
    assert len(frozen) > 0
    # one training step: every parameter of the model receives a gradient (nothing sits unused)
    as_if_trained(m); m.train()
    torch.manual_seed(0)   # stochastic depth (Swin's DropPath) draws from the global stream: seeded, so no test order can drop a block's branch
    out = m(x)
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    out.square().sum().backward()
    dead = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead, f"parameters without a gradient: {dead[:8]}"
    # the opened insertion changes the computation
    if variant.kind == "inserted":
        with torch.no_grad(): assert (m.eval()(x) - base(x)).abs().max() > 1e-4
    # maps of the added attention modules, at the module's resolution
    maps = attention_maps(m.eval(), x)
    assert all(v.ndim == 3 and v.shape[0] == 2 and torch.isfinite(v).all() for v in maps.values())

@pytest.mark.parametrize("attention", list(ATTENTIONS))
def test_randomisation_test_works_for_every_variant(attention):
    "The sanity test's randomised copy of every registered variant runs on its own weights (and hooks) and differs everywhere."
    arch = next(a for a in ["resnet10t", *ARCHS] if compatible(a, attention))
    m = create_model(arch, attention, image_size=SIZE, seed=0).eval()
    as_if_trained(m)
    r = randomised_copy(m).eval()
    assert all(not torch.equal(a, b) for a, b in zip(m.parameters(), r.parameters()))
    res = randomisation_test(m, torch.randn(2, 3, SIZE, SIZE), "saliency")
    assert -1 <= res["spearman"] <= 1

@pytest.mark.parametrize("arch,attention,expected", [
    ("resnet18", "cbam", {"layer1.1": (32, 16), "layer2.1": (16, 8), "layer3.1": (8, 4), "layer4.1": (4, 2)}),
    ("resnet18", "nonlocal", {"layer3.1": (8, 4), "layer3.1.attn": (8, 4)}),
    ("vgg16", "se", {"features.15.1": (32, 16), "features.22.1": (16, 8), "features.29.1": (8, 4)}),
    ("densenet121", "mhsa", {"features.norm5.1": (4, 2), "features.norm5.1.attn": (4, 2)}),
    ("resnet50", "mldam", {"head": (4, 2)}),
    ("vgg16", "mldam-original", {"head": (4, 2)}),
    ("resnet50", "botnet", {"layer4.0.conv2.0": (8, 4), "layer4.1.conv2": (4, 2), "layer4.2.conv2": (4, 2)}),
    ("resnet18", "ga", {"layer3.1": (8, 4), "layer3.1.attn": (8, 4), "layer4.1": (4, 2), "layer4.1.attn": (4, 2)}),
    ("efficientnet_b0", "la", {"blocks.4.1": (8, 4), "blocks.4.1.attn": (8, 4), "blocks.6.1": (4, 2), "blocks.6.1.attn": (4, 2)}),
    ("resnet18", "ela", {"layer4.0.conv2": (4, 2), "layer4.1.conv2": (4, 2)}),
    ("efficientnet_b0", "ela", {"blocks.6.0.conv_dw": (4, 2)}),
])
@pytest.mark.parametrize("size_index,size", [(0, 128), (1, 64)])
def test_attention_map_shapes(arch, attention, expected, size_index, size):
    m = create_model(arch, attention, image_size=size).eval()
    maps = attention_maps(m, torch.randn(2, 3, size, size))
    assert {k: tuple(v.shape) for k, v in maps.items()} == {k: (2, hw[size_index], hw[size_index]) for k, hw in expected.items()}

@pytest.mark.parametrize("arch", list(ARCHS))
def test_none_is_exactly_the_library_model(arch):
    a = ARCHS[arch]
    assert sum(p.numel() for p in create_model(arch, image_size=SIZE).parameters()) == sum(
        p.numel() for p in timm.create_model(a.timm_name, num_classes=2, **a.timm_kwargs(SIZE)).parameters())

def test_bad_names_and_unsupported_pairs_say_why():
    with pytest.raises(ModelError, match="valid archs: resnet10t, resnet18, resnet50, vgg16, densenet121"): create_model("resnet101")
    with pytest.raises(ModelError, match="valid attentions: none, se, cbam, eca, nonlocal, mhsa, botnet, ga, la, ela, mldam, mldam-original, mlphead"): create_model("resnet18", "danet")
    with pytest.raises(ModelError, match="swin_tiny is a transformer baseline"): create_model("swin_tiny", "cbam")
    with pytest.raises(ModelError, match="vgg16 has no spatial convolution"): create_model("vgg16", "ela")

def test_pretrained_offline_is_a_clear_error(tmp_path):
    "With no weights in the (empty) caches and no network, asking for pretrained weights is an error that says what to do."
    code = ("from attnmed.models import create_model, ModelError\n"
            "try: create_model('resnet10t', pretrained=True, image_size=64)\n"
            "except ModelError as e: print('ERROR', e)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert "ERROR pretrained ImageNet weights for 'resnet10t'" in r.stdout, r.stdout + r.stderr[-2000:]
    assert "not in the local cache" in r.stdout and "pretrained: false" in r.stdout

def test_pretrained_from_a_weights_file(tmp_path):
    src = timm.create_model("resnet10t", num_classes=1000)
    f = tmp_path / "resnet10t.pth"; torch.save(src.state_dict(), f)
    m = create_model("resnet10t", "se", pretrained=str(f), image_size=64)
    torch.testing.assert_close(m.conv1[0].weight, src.conv1[0].weight)
    with pytest.raises(ModelError, match="not found"): create_model("resnet10t", pretrained=str(tmp_path / "nope.pth"))

def test_botnet_replaces_the_last_stage_convolutions():
    from attnmed.layers import SelfAttention2d
    m = create_model("resnet50", "botnet", image_size=64)
    assert all(isinstance(b.conv2, SelfAttention2d) or isinstance(b.conv2[0], SelfAttention2d) for b in m.layer4)
    assert not any(isinstance(mod, torch.nn.Conv2d) and mod.kernel_size == (3, 3) for mod in m.layer4.modules())
    assert all(isinstance(b.conv2, torch.nn.Conv2d) for b in m.layer3)   # earlier stages untouched

def test_ela_embeds_local_attention_in_the_last_stage():
    from attnmed.layers import LocalSelfAttention2d
    r = create_model("resnet18", "ela", image_size=64)
    assert all(isinstance(b.conv2, LocalSelfAttention2d) for b in r.layer4) and all(isinstance(b.conv2, torch.nn.Conv2d) for b in r.layer3)
    e = create_model("efficientnet_b0", "ela", image_size=64)
    assert all(isinstance(b.conv_dw, LocalSelfAttention2d) for b in e.blocks[6]) and isinstance(e.blocks[5][0].conv_dw, torch.nn.Conv2d)

def test_mldam_runs_the_backbone_once_and_mlphead_is_mldam_without_attention():
    m = create_model("resnet50", "mldam", image_size=64, seed=0)
    calls = []
    m.backbone.conv1.register_forward_hook(lambda *a: calls.append(1))
    m(torch.randn(1, 3, 64, 64))
    assert len(calls) == 1
    ctrl = create_model("resnet50", "mlphead", image_size=64, seed=0)
    assert set(m.state_dict()) - set(ctrl.state_dict()) == {"head.gamma_pam", "head.gamma_cam"}
    ctrl.load_state_dict({k: v for k, v in m.state_dict().items() if k in ctrl.state_dict()})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(): torch.testing.assert_close(m.eval()(x), ctrl.eval()(x))   # MLDAM with its attention at zero = the control
