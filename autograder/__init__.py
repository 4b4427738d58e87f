"""backprop-lab's autograder: grade hand-written backward passes against PyTorch autograd."""
import sys

__version__ = "0.1.0"

# nbformat validates notebooks with jsonschema, which imports rfc3987_syntax (where installed: Jupyter's own
# dependencies bring it) for an "iri" string format no notebook schema uses; that module compiles a grammar
# at import, 2.5-7 s in every process that reads a notebook. Unless something imported it already,
# jsonschema then goes without that one format checker (it treats the module as optional).
sys.modules.setdefault("rfc3987_syntax", None)


def __getattr__(name):
    """`from autograder import cmp, gradcheck`, loaded lazily so `import autograder` stays cheap.
    (The comparison primitive is `autograder.core.compare.compare`: a submodule name cannot also be a function.)"""
    if name == "cmp":
        from autograder.core.compare import cmp
        return cmp
    if name == "gradcheck":
        from autograder.core.gradcheck import gradcheck
        return gradcheck
    if name == "check":  # in a notebook: grade the notebook's own definitions
        from autograder.integrations.notebook_check import check
        return check
    raise AttributeError(name)
