"""The comparison primitive and the lecture's `cmp`: catches wrong answers, accepts right ones."""
import math

import pytest
import torch

from autograder.core.compare import APPROX, EXACT, NOT_IMPLEMENTED, NOT_IMPLEMENTED_VALUE, WRONG, cmp, compare


def test_identical_is_exact():
    t = torch.randn(4, 5)
    c = compare("t", t.clone(), t)
    assert (c.verdict, c.maxdiff, c.shape, c.expected_shape) == (EXACT, 0.0, (4, 5), (4, 5))


def test_same_math_different_order_is_approx_not_wrong():
    # The example: dhpreact as (1 - h**2) * dh against autograd's tanh backward.
    x = torch.randn(32, 64, requires_grad=True)
    h = torch.tanh(x)
    dh = torch.randn(32, 64)
    h.backward(dh)
    c = compare("hpreact", (1 - h.detach() ** 2) * dh, x.grad)
    assert c.verdict in (EXACT, APPROX)
    # A float32 sum in another order (what a one-expression batchnorm backward does).
    a = torch.randn(1000, dtype=torch.float32) * 1e-2
    c = compare("s", a.flip(0).cumsum(0)[-1:], a.cumsum(0)[-1:])
    assert c.verdict in (EXACT, APPROX)


@pytest.mark.parametrize("factor", [-1.0, 32 / 31, 1.001, 0.5])
def test_wrong_by_any_catalogued_factor(factor):
    t = torch.randn(32, 27)
    c = compare("t", t * factor, t)
    assert c.verdict == WRONG and c.maxdiff > 0


def test_one_wrong_element_is_wrong():
    t = torch.randn(32, 27)
    g = t.clone()
    g[3, 7] += 1e-3 * t.abs().max()
    assert compare("t", g, t).verdict == WRONG


def test_leading_size_one_dimensions_pass_with_a_note():
    # The lecture's `dbnmeani = (-dbndiff).sum(0)`: (64,) for a (1, 64) tensor; and `db1 = x.sum(0, keepdim=True)`.
    t = torch.randn(1, 64)
    c = compare("bnmeani", t.reshape(64), t)
    assert c.verdict == EXACT and c.shape == (64,) and c.expected_shape == (1, 64)
    assert "shape (64,) accepted for (1, 64)" in c.message and "leading size-1" in c.message
    b = torch.randn(64)
    c = compare("b1", b.reshape(1, 64), b)
    assert c.passed and "accepted" in c.message
    # Right shape, wrong values: still wrong, and the note stays.
    c = compare("bnmeani", 2 * t.reshape(64), t)
    assert c.verdict == WRONG and "accepted" in c.message


@pytest.mark.parametrize("got_shape, want_shape", [((64, 1), (1, 64)), ((32,), (32, 1)), ((1, 64), (64, 1)),
                                                   ((2, 64), (1, 64)), ((64,), (1, 1, 32))])
def test_every_other_shape_difference_is_wrong(got_shape, want_shape):
    t = torch.randn(want_shape)
    c = compare("t", torch.randn(got_shape), t)
    assert c.verdict == WRONG and "shape" in c.message
    if t.numel() == torch.Size(got_shape).numel():  # even with the right numbers in another layout
        c = compare("t", t.reshape(got_shape), t)
        assert c.verdict == WRONG and "shape" in c.message


def test_float32_answer_on_float64_case_is_judged_at_float32_precision():
    x = torch.randn(57, 64, dtype=torch.float64)
    right32 = x.to(torch.float32)  # what `torch.zeros(probs.shape)` + float64 arithmetic ends as
    c = compare("t", right32, x)
    assert c.passed and "returned torch.float32" in c.message and "float32 precision" in c.message
    c = compare("t", (x * (1 + 1e-3)).to(torch.float32), x)  # a real mistake is still wrong at float32 precision
    assert c.verdict == WRONG and "float32 precision" in c.message
    # float64 answers on float64 cases keep the tight tolerance
    assert compare("t", x * (1 + 1e-7), x).verdict == WRONG


def test_nan_is_detected():
    t = torch.randn(3, 3)
    g = t.clone()
    g[1, 1] = math.nan
    c = compare("t", g, t)
    assert c.verdict == WRONG and c.mistake == "nan" and "NaN" in c.message


def test_stub_and_non_tensor_answers():
    t = torch.randn(3)
    assert compare("t", None, t).verdict == NOT_IMPLEMENTED
    assert compare("t", NOT_IMPLEMENTED_VALUE, t).verdict == NOT_IMPLEMENTED
    c = compare("t", "a string", t)
    assert c.verdict == WRONG and "str" in c.message


def test_numbers_and_lists_compare_as_tensors():
    assert compare("x", 0.5, 0.5).verdict == EXACT
    assert compare("x", [1.0, 2.0], torch.tensor([1.0, 2.0], dtype=torch.float64)).verdict == EXACT
    assert compare("x", 0.5 + 1e-3, 0.5).verdict == WRONG


def test_scale_lets_rounding_noise_of_a_zero_gradient_pass():
    # dlogit_maxes is mathematically 0: autograd's value is float32 noise of the size of its terms (~1/n).
    truth = torch.tensor([[1e-9], [-2e-9]])
    student = torch.tensor([[-3e-9], [0.0]])
    assert compare("logit_maxes", student, truth).verdict == WRONG  # relative to itself, noise is 100%
    assert compare("logit_maxes", student, truth, scale=1 / 32).verdict == APPROX
    assert compare("logit_maxes", torch.tensor([[1e-3], [0.0]]), truth, scale=1 / 32).verdict == WRONG


def test_float64_tolerance_is_tight():
    t = torch.randn(10, dtype=torch.float64)
    assert compare("t", t * (1 + 1e-12), t).verdict == APPROX
    assert compare("t", t * (1 + 1e-6), t).verdict == WRONG


def test_cmp_prints_the_lecture_line_with_shapes(capsys):
    x = torch.randn(4, 3, requires_grad=True)
    (x * 2).sum().backward()
    cmp("x", torch.full((4, 3), 2.0), x)
    cmp("x", torch.full((3,), 2.0), x)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("x               | exact: True  | approximate: True  | maxdiff: 0.0 | shape: (4, 3) vs (4, 3)")
    assert "approximate: False" in lines[1] and "(3,) vs (4, 3)" in lines[1]


def test_plain_numbers_are_judged_exactly_as_their_tensors_would_be():
    """micrograd's values are Python floats: they skip building tensors (`_compare_numbers`), and every
    verdict, maxdiff, scale and message is the one the tensor path gives, over exact, rounded, wrong,
    NaN, inf and signed-zero answers, scalars and lists, with and without a scale or a tolerance."""
    import random
    from autograder.core.compare import Tolerance, _compare_numbers
    rng = random.Random(7)
    specials = [0.0, -0.0, math.nan, math.inf, -math.inf, 1.0, -3.5, 1e-300, 7]
    perturb = [0.0, 0.0, 1e-15, 1e-12, 1e-9, 1e-6, 1e-3, 0.5, -2.0]
    verdicts = set()
    for i in range(3000):
        n = rng.choice([None, 1, 2, 3, 5])
        size = 1 if n is None else n
        truth = [rng.choice(specials) if rng.random() < 0.2 else rng.uniform(-5, 5) * 10 ** rng.randint(-4, 4)
                 for _ in range(size)]
        got = []
        for t in truth:
            t = float(t)
            r = rng.random()
            got.append(rng.choice(specials[:5]) * 1.0 if r < 0.1 else t + t * rng.choice(perturb)
                       + rng.choice([0.0, 1e-13, 1e-8]))
        exp_value = truth[0] if n is None else truth
        got_value = got[0] if n is None else (tuple(got) if i % 2 else got)
        kw = {}
        if rng.random() < 0.3:
            kw["scale"] = rng.choice([1.0, 1e-3, 0.0, 50.0])
        if rng.random() < 0.3:
            kw["tolerance"] = Tolerance(rtol=1e-4, atol=1e-6)
        shape = () if n is None else (size,)
        as_float = [float(t) for t in truth]
        exp_tensor = torch.tensor(as_float[0] if n is None else as_float, dtype=torch.float64).reshape(shape)
        got_tensor = torch.tensor(got, dtype=torch.float64).reshape(shape)
        assert _compare_numbers("v", got_value, exp_value, kw.get("tolerance"), kw.get("scale")) is not None
        fast, slow = compare("v", got_value, exp_value, **kw), compare("v", got_tensor, exp_tensor, **kw)
        assert fast == slow, (got_value, exp_value, kw, fast, slow)
        # A truth is often a float64 tensor: the same, too.
        assert _compare_numbers("v", got_value, exp_tensor, kw.get("tolerance"), kw.get("scale")) is not None
        assert compare("v", got_value, exp_tensor, **kw) == slow
        verdicts.add(fast.verdict)
    assert verdicts == {EXACT, APPROX, WRONG}  # the grid reaches every verdict


def test_plain_numbers_the_tensor_path_still_judges():
    """Ints in an answer (a dtype note), another shape, nested lists and numpy scalars keep the tensor path."""
    from autograder.core.compare import _compare_numbers
    for got, exp in (([1, 2], [1.0, 2.0]), (1.0, [1.0]), ([1.0, 2.0], [1.0]), ([[1.0]], [[1.0]]),
                     (True, 1.0), ([], []), (torch.tensor(1.0), 1.0), (1.0, torch.tensor(1.0)),
                     ([1.0], torch.ones(1, 1, dtype=torch.float64)), (1.0, torch.tensor(1, dtype=torch.int64))):
        assert _compare_numbers("v", got, exp, None, None) is None, (got, exp)
    c = compare("v", [1, 2], [1.0, 2.0])
    assert c.verdict == EXACT and "int64" in c.message
    c = compare("v", 2.0, [2.0])
    assert c.verdict == EXACT and "leading size-1" in c.message
