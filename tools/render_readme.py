"""Render README.md from nbs/index.ipynb (nbdev-readme needs Quarto, which this project does not use).

Markdown cells are copied; code cells marked `#| echo: false` contribute their printed output (the tables made from the
registries: settings, dataset formats and their options, backbones, attention variants); cells marked `#| hide` are left out.
`--execute` first runs index.ipynb so that those outputs are current."""
import contextlib, io, subprocess, sys
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parent.parent
INDEX = ROOT / "nbs" / "index.ipynb"

def is_generated(cell) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith("#| echo: false")

def generated_text(cell) -> str:
    "What a generated cell printed (its stored outputs)."
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream").strip()

def run_generated(cell) -> str:
    "What a generated cell prints now."
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf): exec(compile(cell.source, "index.ipynb", "exec"), {})
    return buf.getvalue().strip()

def execute_index():
    "Refresh the outputs of index.ipynb's generated cells in place."
    nb = nbformat.read(INDEX, as_version=4)
    for c in nb.cells:
        if is_generated(c):
            c.outputs = [nbformat.v4.new_output("stream", name="stdout", text=run_generated(c) + "\n")]
            c.execution_count = None
    nbformat.write(nb, INDEX)

def render_readme() -> str:
    "The README text from index.ipynb as stored."
    nb = nbformat.read(INDEX, as_version=4)
    parts = []
    for c in nb.cells:
        if c.source.lstrip().startswith("#| hide") or "hide" in c.metadata.get("tags", []): continue
        if c.cell_type == "markdown": parts.append(c.source.strip())
        elif is_generated(c): parts.append(generated_text(c))
        elif c.cell_type == "code": parts.append(f"```python\n{c.source.strip()}\n```")
    return "\n\n".join(p for p in parts if p) + "\n"

if __name__ == "__main__":
    if "--execute" in sys.argv: execute_index()
    text = render_readme()
    if "--check" in sys.argv:
        ok = (ROOT / "README.md").read_text() == text
        print("README.md is in sync with nbs/index.ipynb" if ok else "README.md differs from nbs/index.ipynb: run `make readme`")
        sys.exit(0 if ok else 1)
    (ROOT / "README.md").write_text(text)
    print("wrote README.md")
