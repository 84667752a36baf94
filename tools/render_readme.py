"""Render README.md from nbs/index.ipynb (nbdev-readme needs Quarto, which this project does not use)."""
import sys
from pathlib import Path
import nbformat
from nbconvert import MarkdownExporter

ROOT = Path(__file__).resolve().parent.parent

def render_readme() -> str:
    "The README text: index.ipynb's markdown (and any code cells) as GitHub markdown, code cells tagged `hide` left out."
    nb = nbformat.read(ROOT / "nbs" / "index.ipynb", as_version=4)
    nb.cells = [c for c in nb.cells if not c.source.lstrip().startswith("#| hide") and "hide" not in c.metadata.get("tags", [])]
    md, _ = MarkdownExporter().from_notebook_node(nb)
    return md.strip() + "\n"

if __name__ == "__main__":
    text = render_readme()
    if "--check" in sys.argv:
        ok = (ROOT / "README.md").read_text() == text
        print("README.md is in sync with nbs/index.ipynb" if ok else "README.md differs from nbs/index.ipynb: run `make readme`")
        sys.exit(0 if ok else 1)
    (ROOT / "README.md").write_text(text)
    print("wrote README.md")
