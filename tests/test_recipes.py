"""The README's two recipes, followed literally on a copy of the project: a new attention variant (its layer in
`02a_layers`, its `ATTENTIONS.register` in `02c_attention`) and a new dataset format (its sample writer in `00b_testing`, its
reader in the readers notebook), each added as a notebook section, then `make export`, then a one-epoch grid and the
report. Nothing else is touched: if a recipe needs an unlisted step, this test fails."""
import os, shutil, subprocess
from pathlib import Path
import nbformat, pytest, yaml
from conftest import ROOT

LAYER = '''class ToyGate(nn.Module):
    "A toy channel gate: a sigmoid of each channel's mean, scaling that channel."
    def __init__(self, channels:int # input channels
                ):
        super().__init__(); self.fc = nn.Conv2d(channels, channels, 1)
    def forward(self, x): return x * torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)))'''

LAYER_TEST = '''_x = torch.randn(2, 8, 5, 5)
test_eq(ToyGate(8)(_x).shape, _x.shape)'''

VARIANT = '''ATTENTIONS.register(InsertedAttention("toygate", "a toy channel gate", lambda c: ToyGate(c), "last"))'''

VARIANT_TEST = '''test_eq(ATTENTIONS["toygate"].name, "toygate")'''

WRITER = '''def write_sample_listing(root:str|Path, # folder to write into
                         n:int=32,       # images
                         seed:int=0      # random seed
                        ) -> Path:
    "Write a small listing dataset: `images.txt` (one `file label` line per image) and the PNGs."
    root = Path(root); rng = np.random.default_rng(seed); lines = []
    for i in range(n):
        save_image(root / f"img{i:03d}.png", blob_image(rng, i % 2, 40)); lines.append(f"img{i:03d}.png {['calm', 'busy'][i % 2]}")
    (root / "images.txt").write_text("\\n".join(lines) + "\\n")
    return root'''

WRITER_TEST = '''with tempfile.TemporaryDirectory() as _d: test_eq(len((write_sample_listing(_d) / "images.txt").read_text().splitlines()), 32)'''

FORMAT = '''def listing_table(spec:dict, # a dataset entry of a study (name, format, path, options)
                  opts:dict  # the format's checked options
                 ):
    "The image table of a listing folder: `images.txt` names each image and its class."
    root = Path(spec["path"])
    rows = [line.split() for line in (root / "images.txt").read_text().splitlines() if line.strip()]
    class_names = sorted({label for _, label in rows})
    table = pd.DataFrame([dict(path=str(root / f), label=class_names.index(label), split=None, id=Path(f).stem, patient=Path(f).stem) for f, label in rows])
    return table, class_names

@FORMATS.register
class Listing(TableFormat):
    name, doc = "listing", "a folder of images named in images.txt with their classes"
    path_kind = "a folder with images.txt"
    required_files = ("images.txt",)
    def table(self, spec, opts): return listing_table(spec, opts)
    def example(self, root): return dict(format=self.name, path=str(write_sample_listing(Path(root) / "listing")))'''

FORMAT_TEST = '''with tempfile.TemporaryDirectory() as _d:
    _ds = Listing().load(dict(name="l", format="listing", **{k: v for k, v in Listing().example(_d).items() if k != "format"}, cache=f"{_d}/c"), 16)
    test_eq(_ds.class_names, ["busy", "calm"])'''

def add_section(nb_path: Path, title: str, *cells):
    "Append a section to a notebook as a user would in Lab: a heading, then (exported definition, cell that tests it) pairs."
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell(f"## {title}"))
    for code, test in cells:
        nb.cells += [nbformat.v4.new_code_cell("#| export\n" + code), nbformat.v4.new_code_cell(test)]
    nbformat.write(nb, nb_path)

def readers_notebook(nbs: Path) -> Path:
    "The notebook the README's format recipe names."
    name = next(p for p in __import__("re").findall(r"`nbs/(\w+\.ipynb)`", (ROOT / "README.md").read_text().split("## Add a dataset format")[1].split("##")[0]) if p != "00b_testing.ipynb")
    return nbs / name

@pytest.mark.slow   # make test-all: ~2 min; test_models, test_readers and test_extending cover each registered variant and format in make test
@pytest.mark.cost(150)
def test_both_recipes_work_as_written(tmp_path):
    proj = tmp_path / "attnmed"
    shutil.copytree(ROOT, proj, ignore=shutil.ignore_patterns(".venv", ".git", "outputs", "__pycache__", "*.egg-info", ".ipynb_checkpoints", ".pytest_cache"))
    os.symlink(ROOT / ".venv", proj / ".venv")
    nbs = proj / "nbs"
    add_section(nbs / "02a_layers.ipynb", "A toy gate", (LAYER, LAYER_TEST))
    add_section(nbs / "02c_attention.ipynb", "The toy variant", (VARIANT, VARIANT_TEST))
    add_section(nbs / "00b_testing.ipynb", "A listing sample", (WRITER, WRITER_TEST))
    add_section(readers_notebook(nbs), "Listing", (FORMAT, FORMAT_TEST))
    env = {**os.environ, "PYTHONPATH": str(proj), "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}   # the copy's attnmed, not the checkout's
    r = subprocess.run(["make", "export"], cwd=proj, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    readme = (proj / "README.md").read_text()
    assert "`toygate`" in readme and "**`listing`**" in readme, "make export renders the README's tables from the registries"
    r = subprocess.run([str(ROOT / ".venv/bin/nbdev-test"), "--file-re", r"^(00b_testing|02a_layers|02c_attention|" + readers_notebook(nbs).stem + r")\.ipynb$"],
                       cwd=proj, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    study = tmp_path / "toy.yaml"
    study.write_text(yaml.safe_dump(dict(name="toy", datasets=[dict(name="listed", format="listing", path=str(tmp_path / "data"))], archs=["resnet10t"],
                                         attentions=["none", "toygate"], seeds=[0], epochs=1, image_size=16, batch_size=16, device="cpu")))
    code = "import sys; from attnmed.testing import write_sample_listing; write_sample_listing(sys.argv[1], n=48)"
    subprocess.run([str(ROOT / ".venv/bin/python"), "-c", code, str(tmp_path / "data")], env=env, cwd=tmp_path, check=True)   # not cwd=ROOT: `-c` puts the working folder first on sys.path
    r = subprocess.run([str(ROOT / ".venv/bin/attnmed-grid"), str(study), "--out", str(tmp_path / "out"), "--jobs", "2"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "2 done, 0 skipped, 0 failed of 2 cells" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    r = subprocess.run([str(ROOT / ".venv/bin/attnmed-report"), str(tmp_path / "out" / "toy"), "--no-explain"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "toygate vs none on resnet10t, listed" in (tmp_path / "out" / "toy" / "report.html").read_text()
