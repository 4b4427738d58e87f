"""backprop_ninja, what the HTML report draws: per-tensor heatmaps (in units of the exercise's tolerance, with
exercise 1's scale: the size of the summands a gradient is made of), and after grading, the loss curve of the
student's `train` next to the true one (the `train` exercise's truth: autograd's gradients on the same
batches) and names sampled from the student's trained model, in the student's process
(`student_side.drive_report_train`, `drive_sample`).

The report calls the same three functions of every assignment's `pictures`: `exercise_pictures` (under an
exercise's table), `gather` (anything run after grading) and `section` (its own part of the page).
"""
from __future__ import annotations

import math
from pathlib import Path

from autograder.core.compare import as_tensor
from autograder.core.exercise import Case
from autograder.frontends.report import MAX_OUTPUT_CHARS, _e, _png, _pyplot, heatmaps
from autograder.assignments.backprop_ninja.cases import (BATCH_SIZE, LECTURE_SEED, _examples, global_scale,
                                                         init_params, train_truth)


def exercise_pictures(exercise, kept: list, tolerance) -> str:
    """Heatmaps of the first public case (none for `train`: its picture is the loss curve)."""
    if exercise.id == "backprop_ninja.train":
        return ""
    return heatmaps(exercise, kept[0], tolerance, scale_of=_summands_scale)


def _summands_scale(case, name: str, exp) -> float | None:
    """Exercise 1's scale where the case has its forward pass (as its judge uses); None: the default."""
    fwd = (case.info or {}).get("forward") if isinstance(getattr(case, "info", None), dict) else None
    return global_scale(fwd, name) if fwd is not None and name in getattr(fwd, "grads", {}) else None


def gather(submission, runner, settings, status) -> dict | None:
    """Train with the student's `train` and sample names, unless the report was asked for no training."""
    if settings.train_steps <= 0:
        return None
    status(f"training with your backward ({settings.train_steps} steps) and sampling names…")
    return train_and_sample(Path(submission), runner, settings.train_steps, settings.samples)


def section(gathered: dict) -> str:
    return training_section(gathered)


def train_and_sample(submission: Path, runner, steps: int, samples: int) -> dict:
    """The student's `train` from the lecture's initialisation, then names sampled from the trained model,
    both in the student's process, in two runs: the loss curve comes back whatever sampling does (a
    diverged model never samples the '.' that ends a name; the sampler is bounded in length and time).
    The true curve: autograd's gradients on the same batches, here: the `train` exercise's own truth."""
    X, Y = _examples()
    inputs = {"params": init_params(LECTURE_SEED), "X": X, "Y": Y, "steps": steps, "lr": 0.1,
              "batch_size": BATCH_SIZE, "seed": 0}
    if not (submission / "backprop_ninja.py").is_file():
        return {"message": "no backprop_ninja.py in the submission"}
    side = "autograder.assignments.backprop_ninja.student_side"
    run = runner.run(submission, "backprop_ninja", f"{side}:drive_report_train", inputs,
                     time_limit=max(60.0, steps * 0.1), memory_mb=2048)
    # (No autograd tripwire here: the `train` exercise's grading already refuses autograd in the
    # student's training step.)
    info: dict = {"steps": steps, "true_losses": train_truth(Case("report", False, inputs))["losses"].tolist()}
    if run.output:
        info["output"] = run.output
    if run.status != "ok" or run.autograd_calls:
        what = "uses autograd: compute the gradients by hand" if run.autograd_calls else \
            {"not_implemented": "train (or a function it calls) is not implemented yet"}.get(run.status, "")
        info["message"] = what or f"{run.status}: {run.message}" + (f" ({run.where})" if run.where else "")
        return info
    outputs = run.outputs if isinstance(run.outputs, dict) else {}
    losses = outputs.get("losses")
    if isinstance(losses, list) and all(isinstance(x, (int, float)) for x in losses):
        info["losses"] = [float(x) for x in losses]
    else:
        info["message"] = "train must return the list of the losses of every step"
    params = outputs.get("params")
    if samples > 0 and _parameters_ok(params, inputs["params"]):
        drawn = runner.run(submission, "backprop_ninja", f"{side}:drive_sample",
                           {"params": params, "X": X, "count": samples, "seconds": 5.0},
                           time_limit=20.0, memory_mb=2048)
        got = drawn.outputs if drawn.status == "ok" and isinstance(drawn.outputs, dict) else {}
        if isinstance(got.get("names"), list):
            info["names"] = [str(n)[:40] for n in got["names"][:samples]]
        if got.get("stopped"):
            info["names_message"] = str(got["stopped"])
        elif drawn.status != "ok":
            info["names_message"] = f"{drawn.status}: {drawn.message}"
    elif samples > 0:
        info["names_message"] = "train did not leave the parameters as tensors of their shapes: nothing to sample from"
    return info


def _parameters_ok(params, like: dict) -> bool:
    if not isinstance(params, dict):
        return False
    for name, value in like.items():
        t = as_tensor(params.get(name))
        if t is None or tuple(t.shape) != tuple(value.shape) or not t.is_floating_point():
            return False
    return True


def _plot_top(true_losses: list[float]) -> float:
    finite = [x for x in true_losses if math.isfinite(x)]
    return (max(finite) if finite else 5.0) * 1.5


def clip_note(losses: list[float] | None, true_losses: list[float]) -> str:
    """Where the student's curve leaves the plot (scaled to the true curve) or stops being a number."""
    if not losses:
        return ""
    top = _plot_top(true_losses)
    over = [i for i, x in enumerate(losses) if math.isfinite(x) and x > top]
    bad = [i for i, x in enumerate(losses) if not math.isfinite(x)]
    parts = []
    if over:
        parts.append(f"yours leaves the plot at step {over[0]} (▲; loss {losses[over[0]]:.3g}, "
                     f"at most {max(losses[i] for i in over):.3g})")
    if bad:
        parts.append(f"yours is {losses[bad[0]]} from step {bad[0]} (×)")
    return "; ".join(parts)


def loss_curve_png(losses: list[float] | None, true_losses: list[float]) -> str:
    """Both curves on one axis scaled to the true curve: a diverging curve of the student's is still drawn,
    clipped at the top with a mark (▲ where it leaves the plot, × where it becomes NaN or inf)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.plot(true_losses, color="#888", linewidth=1.2, label="true (autograd's gradients)")
    top = _plot_top(true_losses)
    bottom = min(0.0, min((x for x in true_losses if math.isfinite(x)), default=0.0))
    note = clip_note(losses, true_losses)
    if losses:
        colour = "#cf222e" if _diverged(losses, true_losses) else "#0969da"
        shown = [min(x, top) if math.isfinite(x) else math.nan for x in losses]
        ax.plot(shown, color=colour, linewidth=1.4, alpha=0.9, label="yours (your train)")
        over = next((i for i, x in enumerate(losses) if math.isfinite(x) and x > top), None)
        bad = next((i for i, x in enumerate(losses) if not math.isfinite(x)), None)
        if over is not None or bad is not None:
            # the clip level, drawn, a little below the frame so the clipped stretch of the curve shows
            ax.axhline(top, color=colour, linestyle=":", linewidth=0.8)
            ax.text(0.01, top, " clipped here", color=colour, fontsize=7, va="bottom",
                    transform=ax.get_yaxis_transform())
        if over is not None:
            ax.plot([over], [top], marker="^", color=colour, markersize=9, clip_on=False)
        if bad is not None:
            ax.plot([bad], [top], marker="x", color=colour, markersize=10, mew=2, clip_on=False)
    ax.set_ylim(bottom, top * 1.08)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8, loc="upper right")
    if note:
        ax.set_title(note, fontsize=8, color="#cf222e")
    ax.grid(alpha=0.3)
    return _png(fig)


def _diverged(losses, true_losses) -> bool:
    n = min(len(losses), len(true_losses))
    return n == 0 or any(not math.isfinite(a) or abs(a - b) > 1e-3 * (1 + abs(b))
                         for a, b in zip(losses[:n], true_losses[:n]))


def training_section(info: dict) -> str:
    parts = ["<section id=\"training\"><h2>Training with your backward</h2>"]
    if info.get("message"):
        parts.append(f"<p class=\"wrong\">{_e(info['message'])}</p>")
    if info.get("true_losses"):
        losses = info.get("losses")
        verdict = "your train returned no losses: only the true curve is drawn"
        if losses:
            verdict = ("your curve (blue) follows the true one" if not _diverged(losses, info["true_losses"]) else
                       "your curve (red) departs from the true one: a gradient (or the update) is off")
        clipped = clip_note(losses, info["true_losses"])
        parts.append(f"<p>{_e(info.get('steps', ''))} steps of SGD (lr 0.1, batch 32) from the lecture's "
                     f"initialisation. {_e(verdict)}</p>"
                     + (f"<p class=\"wrong clip-note\">{_e(clipped)}</p>" if clipped else "")
                     + f"<figure class=\"loss-curve\"><img alt=\"loss curve\" "
                     f"src=\"{loss_curve_png(losses, info['true_losses'])}\"></figure>")
    if info.get("names"):
        parts.append("<h3>Names sampled from your trained model</h3><p class=\"note\">at most "
                     "24 characters each (… marks a name cut there)</p><ul class=\"names\">"
                     + "".join(f"<li>{_e(n)}</li>" if n else "<li class=\"note\">(empty: '.' came first)</li>"
                               for n in info["names"]) + "</ul>")
    if info.get("names_message"):
        parts.append(f"<p class=\"wrong\">sampling: {_e(info['names_message'])}</p>")
    if info.get("output"):
        parts.append(f"<pre class=\"student-output\">{_e(info['output'][-MAX_OUTPUT_CHARS:])}</pre>")
    parts.append("</section>")
    return "".join(parts)
