"""Shared fixtures (the repository's paths, one grading worker per test process) and the test tiers.

Every test has exactly one tier, given here (not in the test files, which several people edit at once):
- unit: no grading process (no fork server, no sandbox), no nbgrader, Dask, browser or command-line
  subprocess. `pytest -m unit` (`make test-unit`) runs them in under a minute: the edit-test loop.
- grading: grades through the sandboxed runner (the session's `runner` fixture, or a Runner of its own),
  or computes what grading computes at full size (every truth, a training run, the 100k-node chain).
- e2e: the real thing end to end: nbgrader, Dask, the Gradescope package, a browser, the `autograder`
  command in a subprocess, the isolation mechanisms.
`make test` (and CI) runs all three. A test file missing from TIERS fails collection; a unit test that
starts a grading process or the command line fails, naming the tier it belongs to.
"""
from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
# Hidden cases need a secret (there is no default); the tests grade with this fixed one.
os.environ.setdefault("AUTOGRADER_SECRET", "backprop-lab-test-secret")
# jsonschema (under nbformat) imports rfc3987_syntax for its "iri" format checker, which nothing here uses;
# that module compiles a grammar at import: 2-9 s in every test process that reads a notebook.
sys.modules.setdefault("rfc3987_syntax", None)

UNIT, GRADING, E2E = "unit", "grading", "e2e"
TIER_NAMES = (UNIT, GRADING, E2E)

# Each test file's tier: what most of its tests do.
TIERS = {
    "test_autograd_guard.py": GRADING,
    "test_backprop_ninja.py": GRADING,
    "test_backprop_ninja_exercises.py": GRADING,
    "test_batch.py": E2E,
    "test_ci_workflow.py": E2E,
    "test_class_report.py": E2E,
    "test_classroom.py": UNIT,
    "test_config.py": UNIT,
    "test_core_compare.py": UNIT,
    "test_core_pipeline.py": GRADING,
    "test_core_runner.py": GRADING,
    "test_cross_submission.py": E2E,
    "test_cross_submission_nbgrader.py": E2E,
    "test_exec_pipeline.py": UNIT,
    "test_formats.py": GRADING,
    "test_gradcheck.py": UNIT,
    "test_gradescope.py": E2E,
    "test_guard_in_server.py": GRADING,
    "test_graphs.py": GRADING,
    "test_history.py": UNIT,
    "test_integrity_policy.py": E2E,
    "test_isolation.py": E2E,
    "test_lecture_solutions.py": GRADING,
    "test_micrograd_exercises.py": GRADING,
    "test_micrograd_grading.py": GRADING,
    "test_micrograd_reference.py": UNIT,
    "test_names_data.py": UNIT,
    "test_nbgrader_e2e.py": E2E,
    "test_notebook_check.py": GRADING,
    "test_notebooks.py": UNIT,
    "test_readme_hints.py": UNIT,
    "test_real_engines.py": GRADING,
    "test_registration.py": UNIT,
    "test_render.py": UNIT,
    "test_report.py": GRADING,
    "test_sandbox_policy.py": GRADING,
    "test_session.py": UNIT,
    "test_student_template.py": E2E,
    "test_submission.py": UNIT,
    "test_templating.py": UNIT,
    "test_tolerance.py": UNIT,
    "test_truths.py": GRADING,
    "test_watch.py": UNIT,
    "test_worked.py": GRADING,
}

# The tests whose tier differs from their file's ("file::function", all its parametrizations).
OVERRIDES = {
    "test_autograd_guard.py::test_static_scan_names_each_route": UNIT,
    "test_autograd_guard.py::test_untouched_templates_are_not_flagged": UNIT,
    "test_autograd_guard.py::test_prose_and_own_names_are_not_flagged": UNIT,
    "test_autograd_guard.py::test_module_level_code_runs_for_every_exercise": UNIT,
    "test_autograd_guard.py::test_the_scan_never_crashes_on_odd_source": UNIT,
    "test_autograd_guard.py::test_the_command_line_reports_the_route": E2E,
    "test_backprop_ninja.py::test_template_is_generated_and_stubs_each_step": UNIT,
    "test_backprop_ninja.py::test_every_step_has_a_mistake": UNIT,
    "test_backprop_ninja_exercises.py::test_every_dtype_hidden_cases_use_is_in_a_public_case": UNIT,
    "test_batch.py::test_submission_ids_and_incomplete_results": UNIT,
    "test_batch.py::test_grades_csv_builds_each_row_once_and_writes_what_a_fresh_read_would": UNIT,
    "test_batch.py::test_a_dead_grading_process_is_retried_then_left_for_the_next_run": UNIT,
    "test_batch.py::test_a_submission_replaced_since_its_grade_is_graded_again": UNIT,
    "test_batch.py::test_a_run_whose_workers_cannot_start_leaves_the_environment_as_it_was": UNIT,
    "test_batch.py::test_truths_are_computed_once_per_run_and_read_by_the_workers": GRADING,
    "test_class_report.py::test_malformed_results_are_named_not_fatal": UNIT,
    "test_class_report.py::test_examples_come_from_public_cases_only": UNIT,
    "test_config.py::test_the_command_line_names_a_bad_setting": E2E,
    "test_core_runner.py::test_wire_rejects_tensors_whose_bytes_do_not_match_their_shape": UNIT,
    "test_core_runner.py::test_wire_frames_carry_tensors_raw_and_are_validated": UNIT,
    "test_core_runner.py::test_replies_are_validated_and_plain": UNIT,
    "test_exec_pipeline.py::test_report_shows_progress_as_it_grades": GRADING,
    "test_formats.py::test_points_in_thirds_add_up_to_the_total": UNIT,
    "test_graphs.py::test_truths_reproduce_the_lecture_numbers": UNIT,
    "test_history.py::test_nothing_to_compare_for_a_failed_or_hidden_grade": E2E,
    "test_history.py::test_the_line_after_two_runs_of_check": E2E,
    "test_history.py::test_the_notebook_check_says_what_changed": GRADING,
    "test_integrity_policy.py::test_the_policy_alone_flags_every_known_route": UNIT,
    "test_integrity_policy.py::test_new_routes_score_zero_with_the_guard_switched_off": GRADING,
    "test_integrity_policy.py::test_torch_smuggled_into_the_scalar_engine_scores_zero_with_the_guard_switched_off":
        GRADING,
    "test_integrity_policy.py::test_a_refusal_costs_only_the_exercises_that_can_reach_it": UNIT,
    "test_integrity_policy.py::test_class_bodies_decorators_and_defaults_run_at_import": UNIT,
    "test_integrity_policy.py::test_non_source_files_an_import_could_load_are_refused": UNIT,
    "test_integrity_policy.py::test_honest_idioms_are_not_flagged": UNIT,
    "test_integrity_policy.py::test_the_reference_the_templates_and_the_real_engines_are_not_flagged": UNIT,
    "test_integrity_policy.py::test_a_gradescope_upload_s_folder_names_are_plain_text": UNIT,
    "test_integrity_policy.py::test_student_text_is_plain_in_every_renderer": UNIT,
    "test_integrity_policy.py::test_a_hidden_comparison_keeps_only_the_closed_vocabulary": UNIT,
    "test_lecture_solutions.py::test_float32_rounding_carried_downstream_is_judged_at_float32_with_a_note": UNIT,
    "test_lecture_solutions.py::test_hidden_seeds_follow_the_exercise_id": UNIT,
    "test_lecture_solutions.py::test_judges_never_raise_on_records_they_did_not_expect": UNIT,
    "test_micrograd_exercises.py::test_registered": UNIT,
    "test_micrograd_reference.py::test_backward_through_a_100000_node_chain": GRADING,
    "test_micrograd_exercises.py::test_gradescope_package_grades_it": E2E,
    "test_notebook_check.py::test_the_last_definition_run_wins_and_only_what_is_needed_is_kept": UNIT,
    "test_notebook_check.py::test_torch_used_only_by_a_comparison_cell_does_not_break_micrograd": UNIT,
    "test_notebook_check.py::test_deleted_names_are_not_graded": UNIT,
    "test_notebook_check.py::test_outside_ipython_without_cells_says_how_to_use_it": UNIT,
    "test_notebook_check.py::test_student_notebooks_follow_the_lecture_and_have_no_solutions": UNIT,
    "test_notebook_check.py::test_the_try_it_cell_names_the_stub_when_the_main_block_does_not": UNIT,
    "test_notebooks.py::test_notebook_grade_gives_full_points_to_the_reference": GRADING,
    "test_notebooks.py::test_notebook_grade_partial_credit_and_hint": GRADING,
    "test_notebooks.py::test_notebook_grade_is_silent_on_stderr_and_never_raises": GRADING,
    "test_notebooks.py::test_notebook_grade_never_exceeds_the_cells_points": GRADING,
    "test_notebooks.py::test_an_infinite_loop_costs_one_time_limit": GRADING,
    "test_notebooks.py::test_regrade_outside_the_kernel_grades_each_submitted_notebook_in_a_session": GRADING,
    "test_real_engines.py::test_the_classic_overwrite_scores_the_same_in_five_separate_runs": E2E,
    "test_real_engines.py::test_exercise_ids_are_written_once_and_the_cases_take_them_from_the_exercise": UNIT,
    "test_real_engines.py::test_malformed_parts_cost_the_local_verdicts_only": UNIT,
    "test_render.py::test_every_front_end_agrees_on_a_graded_submission": GRADING,
    "test_render.py::test_the_row_describes_one_case_and_names_it": GRADING,
    "test_render.py::test_exact_points_on_a_real_exercise": GRADING,
    "test_render.py::test_a_real_report_is_whole_at_80_columns": GRADING,
    "test_render.py::test_a_crash_names_its_line_and_public_output_is_shown": GRADING,
    "test_render.py::test_grade_reports_each_exercise_as_it_finishes": GRADING,
    "test_render.py::test_check_command_prints_every_exercise_and_the_total": GRADING,
    "test_render.py::test_the_command_line_skips_torchs_teardown_and_nothing_else": E2E,
    "test_render.py::test_check_names_every_file_it_did_not_find_and_totals_out_of_the_course": GRADING,
    "test_render.py::test_check_with_nothing_to_grade_names_what_it_expected": GRADING,
    "test_render.py::test_a_syntax_error_is_shown_once_with_its_caret": GRADING,
    "test_report.py::test_every_student_text_is_escaped": UNIT,
    "test_report.py::test_fallback_layout_draws_records_ops_and_red_nodes": UNIT,
    "test_report.py::test_a_drawn_curve_for_a_curve_that_turns_nan": UNIT,
    "test_report.py::test_heatmaps_are_in_units_of_the_tolerance_with_a_legend": UNIT,
    "test_report.py::test_a_leading_size_1_shape_is_a_note_everywhere_not_red": UNIT,
    "test_report.py::test_a_hint_the_message_repeats_is_shown_once": UNIT,
    "test_report.py::test_the_given_sample_never_hangs_on_a_diverged_model": UNIT,
    "test_report.py::test_a_real_browser_renders_the_page": E2E,
    "test_report.py::test_a_real_browser_shows_the_wrong_node_the_legend_and_the_curve": E2E,
    "test_session.py::test_cli_check_and_grade": GRADING,
    "test_session.py::test_grade_all_worker": GRADING,
    "test_session.py::test_report_watch_notebook_check_and_grade_cells": GRADING,
    "test_session.py::test_a_borrowed_runner_is_left_open": GRADING,
    "test_student_template.py::test_a_typo_in_the_assignment_lists_the_assignments": UNIT,
    "test_submission.py::test_notebook_keeps_every_assignment_the_graded_code_uses": GRADING,
    "test_submission.py::test_notebook_cells_run_out_of_order_or_used_before_defined_are_named": GRADING,
    "test_watch.py::test_watch_in_a_terminal_regrades_the_saved_function": E2E,
    "test_watch.py::test_bad_input_is_named_not_a_crash": E2E,
    "test_worked.py::test_every_exercise1_rule_is_the_true_gradient": UNIT,
}


def _table_problems() -> list[str]:
    """What in TIERS / OVERRIDES no longer matches the test files: read from their source, not imported."""
    problems = [f"tests/{name} is in TIERS but does not exist" for name in TIERS if not (TESTS / name).is_file()]
    defined: dict[str, set[str]] = {}
    for key, tier in OVERRIDES.items():
        name, _, function = key.partition("::")
        if tier not in TIER_NAMES:
            problems.append(f"OVERRIDES[{key!r}]: unknown tier {tier!r}")
        if name not in TIERS:
            problems.append(f"OVERRIDES[{key!r}]: tests/{name} is not in TIERS")
            continue
        if TIERS[name] == tier:
            problems.append(f"OVERRIDES[{key!r}] repeats its file's tier: remove it")
        if name not in defined and (TESTS / name).is_file():
            tree = ast.parse((TESTS / name).read_text())
            defined[name] = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        if function not in defined.get(name, ()):
            problems.append(f"OVERRIDES[{key!r}]: tests/{name} defines no {function}()")
    return problems + [f"TIERS[{name!r}]: unknown tier {tier!r}" for name, tier in TIERS.items()
                       if tier not in TIER_NAMES]


def pytest_sessionstart(session):
    problems = _table_problems()
    if problems:
        raise pytest.UsageError("tests/conftest.py's test tiers are out of date:\n  " + "\n  ".join(problems))


def _tiers_of_file(name: str) -> set[str]:
    return {TIERS[name]} | {tier for key, tier in OVERRIDES.items() if key.startswith(name + "::")}


def pytest_ignore_collect(collection_path, config):
    """Under `-m` naming tiers only (`-m unit`), a file none of whose tests can be selected is not even
    imported: the unit tier does not pay for nbgrader's, Dask's or the grading tests' imports."""
    path = Path(collection_path)
    if path.parent != TESTS or path.name not in TIERS or not config.option.markexpr:
        return None
    try:
        from _pytest.mark.expression import Expression
        expression = Expression.compile(config.option.markexpr)
        if not expression.idents() <= set(TIER_NAMES):
            return None
        if any(expression.evaluate(lambda name, /, **kw: name == tier) for tier in _tiers_of_file(path.name)):
            return None
    except Exception:  # noqa: a pytest without this API: collect everything, just slower
        return None
    return True


class _Untiered(pytest.File):
    def collect(self):
        raise self.CollectError(f"tests/{self.path.name} has no tier: add it to TIERS in tests/conftest.py")


def pytest_collect_file(file_path, parent):
    path = Path(file_path)
    if path.parent == TESTS and path.name.startswith("test_") and path.suffix == ".py" and path.name not in TIERS:
        return _Untiered.from_parent(parent, path=path)
    return None


@pytest.hookimpl(tryfirst=True)  # before pytest's own `-m` selection reads the markers
def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(item.path)
        if path.parent != TESTS or path.name not in TIERS:
            continue
        function = getattr(item, "originalname", None) or item.name.split("[")[0]
        tier = OVERRIDES.get(f"{path.name}::{function}", TIERS[path.name])
        own = {m.name for m in item.iter_markers() if m.name in TIER_NAMES}
        if own - {tier}:
            raise pytest.UsageError(f"{item.nodeid} is marked {sorted(own)} in its file but tiered {tier!r} in "
                                    "tests/conftest.py: give each test one tier, in tests/conftest.py")
        if tier == UNIT and "runner" in item.fixturenames:
            raise pytest.UsageError(f"{item.nodeid} uses the `runner` fixture (a fork server): tier it "
                                    f"{GRADING!r} in tests/conftest.py's OVERRIDES")
        item.add_marker(getattr(pytest.mark, tier))


# A unit test that starts one of these is tiered wrong: the unit tier must stay fast and process-free.
_NOT_UNIT_PROGRAMS = {"autograder": "the autograder command", "nbgrader": "nbgrader", "bwrap": "a sandbox",
                      "chromium": "a browser", "chromium-browser": "a browser", "google-chrome": "a browser"}
_NOT_UNIT_MODULES = {"autograder.runtime.worker": "a grading worker (fork server)",
                     "autograder": "the autograder command", "nbgrader": "nbgrader"}


def _not_unit(args) -> str | None:
    """What `args` (a Popen's) starts, if it is one the unit tier must not start."""
    argv = [os.fsdecode(a) for a in ([args] if isinstance(args, (str, bytes, os.PathLike)) else list(args))]
    if not argv:
        return None
    if os.path.basename(argv[0]) in _NOT_UNIT_PROGRAMS:
        return _NOT_UNIT_PROGRAMS[os.path.basename(argv[0])]
    for flag, module in zip(argv, argv[1:]):
        if flag == "-m":
            for name, what in _NOT_UNIT_MODULES.items():  # the most specific first
                if module == name or module.startswith(name + "."):
                    return what
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """While a unit test runs (its fixtures included), starting a grading process, the command line,
    nbgrader, a browser or a sandbox fails it, saying which tier it belongs to."""
    if item.get_closest_marker(UNIT) is None:
        return (yield)
    import subprocess
    original = subprocess.Popen._execute_child

    def guarded(self, args, *rest, **kwargs):
        what = _not_unit(args)
        if what:
            pytest.fail(f"{item.nodeid} is tiered unit but started {what}: tier it {GRADING!r} (it grades "
                        f"through the runner) or {E2E!r} (a command, nbgrader, a browser) in tests/conftest.py",
                        pytrace=False)
        return original(self, args, *rest, **kwargs)

    subprocess.Popen._execute_child = guarded
    try:
        return (yield)
    finally:
        subprocess.Popen._execute_child = original


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def runner():
    """One fork server for the whole session: tests grade many submissions, torch is imported once."""
    from autograder.sandbox import Runner
    with Runner() as r:
        r.start()
        yield r
