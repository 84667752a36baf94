__version__ = "0.0.1"

def __getattr__(name):
    # `attnmed.load_results` and `attnmed.load_answer` without importing pandas / torch at `import attnmed` (the CLIs start faster)
    if name == "load_results":
        from .study import load_results
        return load_results
    if name == "load_answer":
        from .report import load_answer
        return load_answer
    raise AttributeError(f"module 'attnmed' has no attribute {name!r}")

__all__ = ["load_results", "load_answer"]
