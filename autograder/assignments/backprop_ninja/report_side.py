"""backprop_ninja, the student's side of the visual report: train with the student's `train` and sample
names from the trained model, as the lecture's last cells did. Runs in the student's process: it imports
only the standard library (no truth, tolerance or hint lives here)."""
from __future__ import annotations


def drive_train_and_sample(module, inputs: dict) -> dict:
    """The student's `train` on the case's data, then `batchnorm_stats` and `sample` (the template's given
    code, as the student's file has it) on the trained parameters."""
    params = inputs["params"]
    losses = module.train(params, inputs["X"], inputs["Y"], inputs["steps"], inputs["lr"],
                          batch_size=inputs["batch_size"], seed=inputs["seed"])
    out = {"losses": [float(x) for x in losses] if isinstance(losses, (list, tuple)) else losses}
    try:
        bnmean, bnvar = module.batchnorm_stats(params, inputs["X"])
        names = module.sample(params, bnmean, bnvar, count=inputs["count"])
        out["names"] = [str(name)[:40] for name in list(names)[:inputs["count"]]]
    except Exception as exc:  # the curve is still worth drawing
        out["names_error"] = f"{type(exc).__name__}: {exc}"[:300]
    return out
