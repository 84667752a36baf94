"""JupyterLab settings for this project, used by `make lab`: a notebook under nbs/ is saved as the repository keeps it.

nbs/ holds the library's source; its notebooks are committed without outputs, execution counts, or the kernel and
language metadata JupyterLab adds, so opening, running and saving one in Lab leaves `git status` clean unless its
code or prose changed. Run results belong in a study folder (outputs/), not in nbs/. Notebooks elsewhere are saved
as Lab saves them.

The hook is registered by the contents manager itself (`register_pre_save_hook`), not set through the
`pre_save_hook` setting: Jupyter applies a config file more than once, and every time after the first the setting
warns that it overrides the hook (with itself)."""
from pathlib import PurePosixPath
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

def attnmed_pre_save(model, path, **kwargs):
    "Clean a notebook under nbs/ before it is written: nbdev's clean (metadata, kernelspec, ids), then no outputs."
    if model.get("type") != "notebook" or model.get("content", {}).get("nbformat") != 4: return
    if PurePosixPath(path.lstrip("/")).parts[:1] != ("nbs",): return
    from nbdev.clean import clean_nb
    nb = model["content"]
    clean_nb(nb, allowed_cell_metadata_keys=["tags"], clean_ids=True)      # the project's [tool.nbdev] settings
    for cell in nb["cells"]:
        if cell["cell_type"] != "code": continue
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        if not src.lstrip().startswith("#| echo: false"): cell["outputs"] = []    # index.ipynb's README tables keep theirs
        cell["execution_count"] = None

class AttnmedContentsManager(AsyncLargeFileManager):
    "JupyterLab's default contents manager, with `attnmed_pre_save` registered once."
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.register_pre_save_hook(attnmed_pre_save)

c = get_config()  # noqa: F821 (provided by Jupyter when it loads this file)
c.ServerApp.contents_manager_class = AttnmedContentsManager
c.ServerApp.open_browser = True
