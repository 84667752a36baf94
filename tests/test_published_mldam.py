"""`mldam-original` and `head: goncalves-cardoso` against Gonçalves & Cardoso's published models, written here from
their repository's facts (code/model_utilities.py, final refactor: `MultiLevelDAM`, `PAM_Module`, `CAM_Module`,
`ResNet50`, `VGG16`, `DenseNet121`) on torchvision's modules. The weights of attnmed's (timm) model are copied into
the reference; eval-mode logits must agree, and after one identical training step so must every BatchNorm's running
statistics and the logits again."""
import pytest, torch, torchvision
from torch import nn
from attnmed.models import create_model

SIZE, N_OUT = 64, 2
ARCHS = ["resnet50", "vgg16", "densenet121"]

class PublishedMLDAM(nn.Module):
    "Gonçalves & Cardoso's `MultiLevelDAM` (nr_classes outputs, logits: their final sigmoid left out)."
    def __init__(self, backbone, n_out, size):
        super().__init__()
        self.name = backbone
        if backbone == "resnet50":
            self.tv = torchvision.models.resnet50(weights=None)
            self.backbone = nn.Sequential(*list(self.tv.children())[:-2])            # `torch.nn.Sequential(*(list(self.backbone.children())[:-2]))`
            kids = list(self.backbone.children())
            self.block1, self.block2 = nn.Sequential(*kids[0:6]), nn.Sequential(*kids[0:7])   # resnetblock1 = [0:6], resnetblock2 = [0:7]
            c = 2048
        elif backbone == "vgg16":
            self.tv = torchvision.models.vgg16(weights=None)
            self.backbone = self.tv.features                                           # `torchvision.models.vgg16(pretrained=True).features`
            kids = list(self.backbone.children())
            self.block1, self.block2 = nn.Sequential(*kids[0:17]), nn.Sequential(*kids[0:24])  # vggblock1 = [0:17] (pool3), vggblock2 = [0:24] (pool4)
            c = 512
        else:
            self.tv = torchvision.models.densenet121(weights=None)
            f = self.tv.features
            stem = [f.conv0, f.norm0, nn.ReLU(), nn.MaxPool2d(kernel_size=(2, 2)), f.denseblock1,        # their denseblock2 Sequential
                    f.transition1.norm, nn.ReLU(), f.transition1.conv, nn.AvgPool2d(kernel_size=(2, 2)), f.denseblock2]
            self.block1 = nn.Sequential(*stem)
            self.block2 = nn.Sequential(*stem, f.transition2.norm, nn.ReLU(), f.transition2.conv, nn.AvgPool2d(kernel_size=(2, 2)), f.denseblock3)
            self.backbone = f                                                          # denseblock4 = self.backbone.features
            c = 1024
        hw = size // 32
        self.c, self.hw = c, hw
        self.avg_pool2d_1, self.avg_pool2d_2 = nn.AvgPool2d(kernel_size=(4, 4)), nn.AvgPool2d(kernel_size=(2, 2))
        self.batch_norm1 = nn.BatchNorm2d(c, eps=1e-6, momentum=0.1); self.batch_norm2 = nn.BatchNorm2d(c, eps=1e-6, momentum=0.1)
        self.fc1, self.fc2, self.fc3 = nn.Linear(c * hw * hw, c), nn.Linear(c, c // 2), nn.Linear(c // 2, n_out)
        self.drop1, self.drop2 = nn.Dropout(0.25), nn.Dropout(0.25)

    def pam(self, v1, q1, k1):
        B, C, n = v1.size(0), self.c, self.hw * self.hw
        v, q, k = (t.reshape(B, C, n) for t in (v1, q1, k1))
        att = torch.softmax(torch.matmul(q.transpose(2, 1), k).reshape(B, -1), dim=1).reshape(B, n, n)   # one softmax over the flattened affinity
        return torch.matmul(v, att).reshape(B, C, self.hw, self.hw) + v1

    def cam(self, v1, q1, k1):
        B, C, n = v1.size(0), self.c, self.hw * self.hw
        v, q, k = (t.reshape(B, C, n) for t in (v1, q1, k1))
        return torch.matmul(torch.matmul(q, k.transpose(2, 1)), v).reshape(B, C, self.hw, self.hw) + v1

    def forward(self, x):
        if self.name == "resnet50":
            k1 = self.avg_pool2d_2(self.block2(x)); k1 = torch.cat((k1, k1), dim=1)
            q1 = self.avg_pool2d_1(self.block1(x)); q1 = torch.cat((q1, q1, q1, q1), dim=1)
        else:
            k1 = self.avg_pool2d_2(self.block2(x))
            q1 = self.avg_pool2d_1(self.block1(x)); q1 = torch.cat((q1, q1), dim=1)
        v1 = self.backbone(x)
        back = self.backbone(x)
        pam_out = self.batch_norm1(torch.relu(self.pam(v1, q1, k1)))
        cam_out = self.batch_norm2(torch.relu(self.cam(back, back, back)))
        out = torch.reshape((pam_out + cam_out) / 2, (x.size(0), -1))
        out = self.drop1(torch.relu(self.fc1(out)))
        out = self.drop2(torch.relu(self.fc2(out)))
        return self.fc3(out)

class PublishedBaseline(nn.Module):
    "Their `ResNet50` (children()[:-1]: with the average pool), `VGG16` and `DenseNet121` (`.features`), flattened into one linear layer."
    def __init__(self, backbone, n_out, size):
        super().__init__()
        self.tv = getattr(torchvision.models, backbone)(weights=None)
        self.features = nn.Sequential(*list(self.tv.children())[:-1]) if backbone == "resnet50" else self.tv.features
        with torch.no_grad(): n = self.features(torch.zeros(1, 3, size, size)).numel()
        self.fc1 = nn.Linear(n, n_out)
    def forward(self, x): return self.fc1(torch.reshape(self.features(x), (x.size(0), -1)))

def copy_backbone(model, ref):
    "attnmed's timm backbone weights into torchvision's model (the same state-dict names for these three)."
    state = {k: v for k, v in model.backbone.state_dict().items()}
    missing, unexpected = ref.tv.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert all(k.startswith(("fc.", "classifier.")) for k in missing), missing
    assert len(state) >= 26   # VGG-16: 13 convolutions; the others hundreds of tensors

def copy_linear(dst, src): dst.weight.data.copy_(src.weight.data); dst.bias.data.copy_(src.bias.data)
def copy_bn(dst, src): dst.load_state_dict(src.state_dict())

def pair_mldam(arch):
    model = create_model(arch, "mldam-original", n_out=N_OUT, image_size=SIZE, seed=0)
    ref = PublishedMLDAM(arch, N_OUT, SIZE)
    copy_backbone(model, ref)
    h = model.head
    copy_bn(ref.batch_norm1, h.bn_pam); copy_bn(ref.batch_norm2, h.bn_cam)
    for dst, src in ((ref.fc1, h.head[1]), (ref.fc2, h.head[4]), (ref.fc3, h.head[7])): copy_linear(dst, src)
    return model, ref

def pair_baseline(arch):
    model = create_model(arch, "none", n_out=N_OUT, image_size=SIZE, seed=0, head="goncalves-cardoso")
    ref = PublishedBaseline(arch, N_OUT, SIZE)
    bb = model if arch == "resnet50" else model.backbone
    missing, unexpected = ref.tv.load_state_dict({k: v for k, v in bb.state_dict().items() if not k.startswith("fc.")}, strict=False)
    assert not unexpected and all(k.startswith(("fc.", "classifier.")) for k in missing), (missing, unexpected)
    copy_linear(ref.fc1, model.fc if arch == "resnet50" else model.head[1])
    return model, ref

def bn_stats(m):
    return [b for mod in m.modules() if isinstance(mod, nn.BatchNorm2d) for b in (mod.running_mean, mod.running_var)]

def arch_has_no_bn(model): return model.arch == "vgg16"

def check_pair(model, ref, x):
    model.eval(); ref.eval()
    with torch.no_grad(): a, b = model(x), ref(x)
    assert (a - b).abs().max() <= 1e-5 * max(1.0, b.abs().max().item()), f"eval logits differ by {(a - b).abs().max():.3g}"
    y = torch.tensor([0, 1, 1, 0])
    for m in (model, ref):   # one identical training step: same dropout draws (same seed, same order), same loss, same optimiser
        m.train(); opt = torch.optim.SGD(m.parameters(), lr=0.01)
        torch.manual_seed(1); nn.functional.cross_entropy(m(x), y).backward(); opt.step()
    assert len(bn_stats(model)) == len({id(b) for b in bn_stats(ref)}) or arch_has_no_bn(model)

def assert_backbone_and_logits_agree_after_the_step(arch, backbone, model, ref, x):
    "After `check_pair`'s step: every BatchNorm running statistic of the backbone equals torchvision's (1e-6), and the eval logits agree again (1e-5)."
    tv = {k: v for k, v in ref.tv.state_dict().items() if k.endswith(("running_mean", "running_var"))}
    for k, v in backbone.state_dict().items():
        if k.endswith(("running_mean", "running_var")):
            assert (v - tv[k]).abs().max() <= 1e-6 * max(1.0, tv[k].abs().max().item()), f"{arch}: running statistics of {k} differ after one step"
    model.eval(); ref.eval()
    with torch.no_grad(): a, b = model(x), ref(x)
    assert (a - b).abs().max() <= 1e-5 * max(1.0, b.abs().max().item()), f"{arch}: eval logits after a step differ by {(a - b).abs().max():.3g}"

@pytest.mark.parametrize("arch", ARCHS)
def test_mldam_original_is_the_published_function(arch):
    torch.manual_seed(0)
    model, ref = pair_mldam(arch)
    x = torch.randn(4, 3, SIZE, SIZE)
    check_pair(model, ref, x)
    for mine, theirs in ((model.head.bn_pam, ref.batch_norm1), (model.head.bn_cam, ref.batch_norm2)):
        assert torch.allclose(mine.running_mean, theirs.running_mean, atol=1e-6) and torch.allclose(mine.running_var, theirs.running_var, atol=1e-6, rtol=1e-6)
    assert_backbone_and_logits_agree_after_the_step(arch, model.backbone, model, ref, x)

@pytest.mark.parametrize("arch", ARCHS)
def test_published_baselines(arch):
    torch.manual_seed(0)
    model, ref = pair_baseline(arch)
    x = torch.randn(4, 3, SIZE, SIZE)
    check_pair(model, ref, x)
    assert_backbone_and_logits_agree_after_the_step(arch, model if arch == "resnet50" else model.backbone, model, ref, x)

@pytest.mark.parametrize("arch", ["vgg16", "densenet121"])
def test_single_pass_taps_are_not_the_published_function(arch):
    "The check can fail: the published arithmetic on the single-pass taps (what `mldam-original` computed before) gives other logits on VGG-16 and DenseNet-121."
    import timm
    from attnmed.attention import MLDAMNet
    torch.manual_seed(0)
    model = MLDAMNet(timm.create_model(arch, num_classes=N_OUT), N_OUT, SIZE, "published")
    ref = PublishedMLDAM(arch, N_OUT, SIZE)
    copy_backbone(model, ref); h = model.head
    copy_bn(ref.batch_norm1, h.bn_pam); copy_bn(ref.batch_norm2, h.bn_cam)
    for dst, src in ((ref.fc1, h.head[1]), (ref.fc2, h.head[4]), (ref.fc3, h.head[7])): copy_linear(dst, src)
    model.eval(); ref.eval(); x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad(): a, b = model(x), ref(x)
    assert (a - b).abs().max() > 1e-5 * max(1.0, b.abs().max().item())   # outside the tolerance the published-function tests hold to
