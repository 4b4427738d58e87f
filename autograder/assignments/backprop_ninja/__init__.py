"""backprop_ninja: manual tensor backprop through a 2-layer MLP with batchnorm (makemore part 4).

Exercises (ids `backprop_ninja.<entry>`), all with autograd forbidden in the student's process:
  manual_backward         exercise 1: the 26 intermediate gradients, graded tensor by tensor, cascade-free
  cross_entropy_backward  exercise 2: dlogits in one go
  batchnorm_backward      exercise 3: dhprebn in one go (Bessel-corrected variance)
  tanh_backward, embedding_backward, forward_backward, train: exercise 4

The truth is PyTorch autograd on the grader's own forward pass (`STEPS`, the lecture's steps in order).

Layout (the process boundary): `student_side.py` runs in the student's process (drivers only); the grader
side is `cases.py` (the model: forward pass, data, rounding scales; then cases and truths), `judges.py`
(global and local verdicts), `mistakes.py` (the catalogue), `pictures.py` (what the HTML report draws:
heatmaps, the loss curve, sampled names) and this file (the exercises, each id and tolerance written once,
here).

Cascade-free grading (DESIGN.md, decision 5): for each tensor X of exercise 1 the grader also applies
the correct backward of the steps that consume X to the student's *own* gradients of those steps'
outputs (`torch.autograd.grad` on the step alone, the student's tensors as `grad_outputs`). Where the
student's answer equals that, the step is right, whatever came from upstream. Mistakes are diagnosed
against this local expectation too, so one wrong step is named once, not once per tensor after it.

Tolerances (each exercise's `tolerance`, declared below) are the dtype defaults (float32 as in the lecture on public cases, float64 on
hidden ones), with the absolute part scaled by the size of the summands a gradient is made of, not of
the gradient itself (`magnitudes`: the backward pass on absolute values). Where the summands cancel
(`dlogit_maxes` and `db1` are mathematically 0; at batch 2 batchnorm leaves hprebn almost no gradient),
autograd's answer is rounding noise and a correct answer's noise is relative to those summands. Every
catalogued mistake is >= 1e-3 relative (the smallest: a dropped epsilon on the low-variance units of
public-1, up to 12%; Bessel at n=57, 1.8%), far above float32's 1e-4; the tests check both directions.
"""
from __future__ import annotations


from functools import partial

from autograder.core.exercise import DTYPE_DEFAULT, Exercise, Mistake, Tolerance
from autograder.assignments.backprop_ninja.cases import (bn_cases, bn_truth, ce_cases, ce_truth, emb_cases, emb_truth, fb_cases, fb_truth, model_cases,
                    tanh_cases, tanh_truth, train_cases, train_truth)
from autograder.assignments.backprop_ninja.judges import judge_batchnorm, judge_forward_backward, judge_manual_backward, judge_train
from autograder.assignments.backprop_ninja.mistakes import MISTAKES_1, MISTAKES_2, MISTAKES_3, MISTAKES_EMB, MISTAKES_FB, MISTAKES_TANH
from autograder.assignments.backprop_ninja.cases import single_threaded

COURSE_POSITION = 3  # where the course takes it up: the order front ends list the assignments in


MODULE = "backprop_ninja"

# Gradients: each dtype's default (float32 as in the lecture on public cases, float64 on hidden ones), the
# absolute part scaled by the summands a gradient is made of (see above).
GRADIENTS = DTYPE_DEFAULT
# The loss curve against autograd's trajectory, tight enough that a wrong backward is never "the true
# trajectory". Measured (max relative difference over the 40 steps, public float32 and hidden float64):
#   correct, written differently (reference, loop embedding into float32 `torch.zeros(C.shape)`, softmax -
#   one_hot, 1-tanh(hpreact)**2, batchnorm by its chain):  <= 2.1e-7 (float32), <= 6.8e-11 (float64)
#   n/(n-1) dropped in batchnorm_backward (the smallest catalogued mistake):  1.98e-5 and 1.82e-5
# 2e-6 relative sits ~10x from both.
TRAINING = Tolerance(rtol=2e-6, atol=1e-7)


def _ex(entry, points, cases, driver, truth, title, tolerance=GRADIENTS, **kw) -> Exercise:
    """An exercise of this assignment. Its id is written here once: the case builder gets it from here
    (`cases(seeds, exercise_id)`), so the hidden seeds follow the id and cannot drift from it."""
    exercise_id = f"{MODULE}.{entry}"
    if "judge" in kw:
        kw["judge"] = single_threaded(kw["judge"])
    kw["mistakes"] = tuple(Mistake(m.id, m.hint, single_threaded(m.matches), m.checks) for m in kw.get("mistakes", ()))
    return Exercise(id=exercise_id, module=MODULE, entry=entry, points=points,
                    cases=single_threaded(partial(cases, exercise_id=exercise_id)),
                    driver=f"{__name__}.student_side:{driver}", truth=single_threaded(truth), title=title, forbid_autograd=True,
                    time_limit=kw.pop("time_limit", 20.0), tolerance=tolerance, **kw)


EXERCISES = [
    _ex("manual_backward", 26.0, model_cases, "drive_manual_backward",
        lambda case: dict(case.info["forward"].grads), "exercise 1: backprop through every step",
        judge=judge_manual_backward, mistakes=MISTAKES_1),
    _ex("cross_entropy_backward", 4.0, ce_cases, "drive_cross_entropy", ce_truth,
        "exercise 2: cross entropy backward in one go", mistakes=MISTAKES_2),
    _ex("batchnorm_backward", 4.0, bn_cases, "drive_batchnorm", bn_truth, "exercise 3: batchnorm backward in one go",
        judge=judge_batchnorm, mistakes=MISTAKES_3),
    _ex("tanh_backward", 2.0, tanh_cases, "drive_tanh", tanh_truth, "exercise 4: tanh backward",
        mistakes=MISTAKES_TANH),
    _ex("embedding_backward", 2.0, emb_cases, "drive_embedding", emb_truth, "exercise 4: embedding backward",
        mistakes=MISTAKES_EMB),
    _ex("forward_backward", 8.0, fb_cases, "drive_forward_backward", fb_truth,
        "exercise 4: a whole training step by hand", judge=judge_forward_backward, mistakes=MISTAKES_FB),
    _ex("train", 4.0, train_cases, "drive_train", train_truth, "exercise 4: train with your backward",
        judge=judge_train, tolerance=TRAINING, time_limit=60.0),
]
