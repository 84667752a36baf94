__version__ = "0.0.1"

def __getattr__(name):
    # `attnmed.load_results` without importing pandas / torch at `import attnmed` (the CLIs start faster)
    if name == "load_results":
        from .study import load_results
        return load_results
    raise AttributeError(f"module 'attnmed' has no attribute {name!r}")

__all__ = ["load_results"]
