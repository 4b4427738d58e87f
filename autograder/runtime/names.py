"""The names of what differentiates for you: one list, read by the static policy in the grader
(`autograder/integrity/scan.py`, the verdict) and by the guard in the student's process (`guard.py`, a
second line). It lives in the runtime because the runtime is all of the grader a student's process holds."""

# Libraries that differentiate for you (not `micrograd`: the student writes that one). Refused wherever
# autograd is (a scalar engine's `sympy.diff`
# is autograd by another name); importing one is itself recorded as the route.
AUTODIFF_LIBRARIES = ("sympy", "mpmath", "functorch", "jax", "jaxlib", "autograd", "tensorflow", "tf_keras",
                      "keras", "numdifftools", "casadi", "theano", "pytensor", "aesara", "tangent", "mxnet",
                      "paddle", "chainer", "mygrad", "tinygrad", "findiff", "symengine")
# torch.func's transforms and forward-mode AD's entry points: wired by the guard, flagged by
# the static policy.
FUNC_TRANSFORMS = ("grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "linearize")
FORWARD_AD = ("make_dual", "enter_dual_level", "dual_level")
