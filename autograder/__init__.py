"""backprop-lab's autograder: grade hand-written backward passes against PyTorch autograd."""
__version__ = "0.1.0"


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
