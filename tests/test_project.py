"""The project's own promises: README rendered from index.ipynb, two commands, CI calling the test command, library in sync."""
import re, subprocess, sys
from pathlib import Path
from conftest import ROOT
sys.path.insert(0, str(ROOT / "tools"))
from render_readme import render_readme

def test_readme_is_rendered_from_index():
    assert (ROOT / "README.md").read_text() == render_readme(), "README.md differs from nbs/index.ipynb: run `make readme`"

def test_readme_tables_are_the_registries():
    "The README's tables (settings, formats and their options, archs, attention variants) are what the registries say now."
    import nbformat
    from render_readme import INDEX, is_generated, generated_text, run_generated
    cells = [c for c in nbformat.read(INDEX, as_version=4).cells if is_generated(c)]
    assert len(cells) >= 4
    for c in cells: assert generated_text(c) == run_generated(c), f"a README table is out of date: run `make readme`\n{c.source}"

def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S).group(1)
    cmds = [l for l in first_block.splitlines() if l.strip() and not l.strip().startswith("#")]
    assert cmds == ["make study", "make test"], cmds

def test_readme_commands_run_when_pasted():
    "Every command the README shows, in a code block or inline, names a script that exists where it says: the project's commands as .venv/bin/NAME (a fresh shell has no environment active; `source .venv/bin/activate` is said once), never bare."
    text = (ROOT / "README.md").read_text()
    scripts = ["attnmed-grid", "attnmed-report", "attnmed-init", "attnmed-search", "attnmed-plan", "attnmed-run", "papermill", "nbdev-install-hooks", "jupyter"]
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S)
    inline = [c for c in re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
              if " " in c and not re.search(r"\b[A-Z][A-Z_]{2,}\b", c)]   # inline spans that are commands to paste: arguments, no PLACEHOLDER
    bare = []
    for line in [l for b in blocks for l in b.splitlines()] + inline:
        for m in re.finditer(r"(?:^|[;&|]\s*|^\s*)(\S+)", line.split("#")[0]):
            word = m.group(1)
            if word in scripts: bare.append(line.strip())
    assert not bare, f"commands shown without .venv/bin/ (they fail in a fresh shell): {bare}"
    for cmd in set(re.findall(r"\.venv/bin/([\w-]+)", text)):
        assert cmd in ("python", "pip", "tensorboard") or (ROOT / ".venv" / "bin" / cmd).exists(), f".venv/bin/{cmd} is not installed by make"
    flags = {}
    for cmd, args in re.findall(r"\.venv/bin/(attnmed-[\w-]+)([^\n`]*)", text): flags.setdefault(cmd, set()).update(re.findall(r"\s(--[a-z][\w-]*)", args))
    for cmd, used in flags.items():
        usage = subprocess.run([str(ROOT / ".venv" / "bin" / cmd), "--help"], capture_output=True, text=True).stdout
        assert not (unknown := sorted(f for f in used if f not in usage)), f"the README shows {cmd} with flags it does not have: {unknown}"

def test_ci_runs_the_readme_test_command():
    lines = [l for l in (ROOT / ".ci/run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert lines[-1] == "make test"

def test_no_settings_ini():
    assert not (ROOT / "settings.ini").exists() and not (ROOT / "setup.py").exists()

def test_library_in_sync_with_notebooks(tmp_path):
    "Exporting the notebooks into a copy reproduces attnmed/ exactly."
    import shutil
    dst = tmp_path / "proj"
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(".venv", "outputs", ".git", "__pycache__", "*.egg-info"))
    r = subprocess.run([str(Path(sys.executable).parent / "nbdev-export")], cwd=dst, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for f in (ROOT / "attnmed").glob("*.py"):
        assert (dst / "attnmed" / f.name).read_text() == f.read_text(), f"attnmed/{f.name} is out of step with nbs/: run nbdev-export"

def test_parameterised_notebooks_keep_their_parameters_cell():
    "papermill needs a cell tagged 'parameters'; nbdev-clean must not strip it (allowed_cell_metadata_keys)."
    import nbformat
    for name in ["experiment.ipynb", "explain.ipynb", "report.ipynb"]:
        nb = nbformat.read(ROOT / "nbs" / name, as_version=4)
        assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1, name

def test_layers_never_point_up():
    "No import cycle among attnmed's modules, no module takes another's private name, and no notebook imports a higher-numbered one."
    import ast
    pkg = ROOT / "attnmed"
    mods = {f.stem: f for f in pkg.glob("*.py") if f.stem not in ("__init__", "_modidx")}
    edges, private = {}, []
    for name, f in mods.items():
        deps = set()
        for n in ast.walk(ast.parse(f.read_text())):
            if isinstance(n, ast.ImportFrom) and n.module is not None and (n.level or n.module.startswith("attnmed")):
                target = n.module.split(".")[-1]
                if target in mods: deps.add(target)
                deps |= {a.name for a in n.names if a.name in mods}
                private += [f"{name} takes {target}.{a.name}" for a in n.names if a.name.startswith("_") and target in mods]
            elif isinstance(n, ast.ImportFrom) and n.level and n.module is None: deps |= {a.name for a in n.names if a.name in mods}
        edges[name] = deps - {name}
    def reach(start):
        seen, todo = set(), list(edges[start])
        while todo:
            m = todo.pop()
            if m not in seen: seen.add(m); todo += list(edges.get(m, ()))
        return seen
    assert not [m for m in mods if m in reach(m)], "import cycle"
    assert not private, private
    nb_of = {}   # module -> its notebook's number prefix
    for nb in (ROOT / "nbs").glob("*.ipynb"):
        m = re.search(r"#\|\s*default_exp\s+(\w+)", nb.read_text())
        if m: nb_of[m.group(1)] = nb.stem
    for nb in (ROOT / "nbs").glob("[0-9]*.ipynb"):
        used = set(re.findall(r"(?:from|import) attnmed\.(\w+)", nb.read_text()))
        higher = [u for u in used if u in nb_of and nb_of[u] > nb.stem]
        assert not higher, f"{nb.name} imports higher notebooks' modules {higher}"

def test_experiment_parameters_cell_matches_the_declarations():
    "The experiment notebook's parameters cell assigns exactly a cell's parameters, each setting at its declared default."
    import ast, nbformat
    from attnmed.config import PARAMS, CELL_KEYS
    nb = nbformat.read(ROOT / "nbs" / "experiment.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values = {t.id: ast.literal_eval(n.value) for n in ast.parse(cell.source).body for t in n.targets}
    assert set(CELL_KEYS) <= set(values), set(CELL_KEYS) - set(values)
    assert set(values) - set(CELL_KEYS) == {"tuned", "out_dir", "fingerprint", "data_fingerprint", "resume_dir", "executor", "n_saliency", "n_top_losses"}
    for k, p in PARAMS.items(): assert values[k] == p.default and type(values[k]) is p.type, (k, values[k], p.default)

def test_saving_a_notebook_in_jupyterlab_leaves_nbs_clean(tmp_path):
    "What `make lab` runs: a notebook of nbs/ opened, run (outputs, execution counts) and saved by the contents manager `make lab` configures, with the kernel and language metadata Lab adds, is written byte for byte as committed; and the config, applied twice as Jupyter does, warns nothing."
    import asyncio, runpy, shutil, warnings, nbformat
    from traitlets.config import Config
    cfg = Config()
    runpy.run_path(str(ROOT / "tools" / "jupyter_server_config.py"), init_globals={"get_config": lambda: cfg})
    (tmp_path / "nbs").mkdir(); (tmp_path / "outputs").mkdir()
    for name in ("experiment.ipynb", "00_config.ipynb", "index.ipynb"):
        shutil.copy(ROOT / "nbs" / name, tmp_path / "nbs" / name); shutil.copy(ROOT / "nbs" / name, tmp_path / "outputs" / name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # "Overriding existing pre_save_hook" was printed at every start
        cm = cfg.ServerApp.contents_manager_class(root_dir=str(tmp_path), config=cfg)
        cm.update_config(cfg)
    run = asyncio.run
    for name in ("experiment.ipynb", "00_config.ipynb", "index.ipynb"):
        model = run(cm.get(f"nbs/{name}"))
        nb = model["content"]
        nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
        nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
        code = [c for c in nb.cells if c.cell_type == "code" and not c.source.startswith("#| echo: false")]
        code = code or [c for c in nb.cells if c.cell_type == "code"]
        for c in code: c.execution_count = 1
        if name != "index.ipynb": code[0].outputs = [nbformat.v4.new_output("stream", text="hello\n")]
        run(cm.save(dict(type="notebook", format="json", content=nb), f"nbs/{name}"))
        assert (tmp_path / "nbs" / name).read_text() == (ROOT / "nbs" / name).read_text(), f"saving {name} from Lab changed it"
        if name == "index.ipynb": continue
        code[0].outputs = [nbformat.v4.new_output("stream", text="hello\n")]
        run(cm.save(dict(type="notebook", format="json", content=nb), f"outputs/{name}"))      # elsewhere: saved as Lab saves it
        assert "hello" in (tmp_path / "outputs" / name).read_text()

def notebook_cells():
    "Per notebook of nbs/: its code cells in order as (cell id, kind, code, definitions): kind 'export' (the library's code), 'check' (a cell that runs something: shows or tests) or 'import'; definitions are the top-level (function or class node, name) of an exported cell."
    import ast, json
    for f in sorted((ROOT / "nbs").glob("[0-9]*.ipynb")):
        out = []
        for c in json.loads(f.read_text())["cells"]:
            src = "".join(c["source"])
            if c["cell_type"] != "code" or not src.strip() or src.lstrip().startswith("#| default_exp"): continue
            code = "\n".join(l for l in src.splitlines() if not l.startswith("#|"))
            body = ast.parse(code).body
            if all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in body): out.append((c.get("id"), "import", code, [])); continue
            defs = [(n, n.name) for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
            out.append((c.get("id"), "export" if src.lstrip().startswith("#| export") else "check", code, defs))
        yield f.name, out

def test_exported_cells_hold_one_idea_each():
    "The unit a reader moves in, as good notebooks have it: one function or class per exported cell (with the constants it uses), a function at most 40 lines and a class at most 80, and a class whole in its cell: a method patched onto a notebook's own class has its own check right after it."
    big, crowded, patched = [], [], []
    for nb, cells in notebook_cells():
        own = {name for _, kind, _, defs in cells if kind == "export" for n, name in defs if n.__class__.__name__ == "ClassDef"}
        for i, (cid, kind, code, defs) in enumerate(cells):
            if kind != "export": continue
            if len(defs) > 1: crowded.append((nb, cid, [d for _, d in defs]))
            for n, name in defs:
                lines = n.end_lineno - n.lineno + 1 + len(n.decorator_list)
                if lines > (80 if n.__class__.__name__ == "ClassDef" else 40): big.append((nb, cid, name, lines))
                targets = {a.annotation.id for a in n.args.args[:1] if isinstance(a.annotation, __import__("ast").Name)} if hasattr(n, "args") else set()
                if any("patch" in __import__("ast").unparse(d) for d in getattr(n, "decorator_list", [])) and targets & own:
                    if i + 1 >= len(cells) or cells[i + 1][1] != "check": patched.append((nb, cid, name))
    assert not big, f"functions over 40 lines or classes over 80: {big}"
    assert not crowded, f"exported cells with more than one function or class: {crowded}"
    assert not patched, f"methods patched onto their notebook's own class without a check of their own right after: {patched}"

def test_every_idea_is_followed_by_its_check():
    "A check after every idea: at most 2 exported cells per check on average over the notebooks, and never more than 4 exported cells in a row without one (fastcore's notebooks: 1.4)."
    exported = checks = 0; runs = []
    for nb, cells in notebook_cells():
        run = 0
        for cid, kind, *_ in cells:
            if kind == "export":
                exported += 1; run += 1
                if run == 5: runs.append((nb, cid))
            elif kind == "check": checks += 1; run = 0
    assert exported / checks <= 2, f"{exported / checks:.2f} exported cells per check"
    assert not runs, f"runs of more than 4 exported cells without a check (notebook, fifth cell): {runs}"
