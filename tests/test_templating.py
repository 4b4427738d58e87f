"""The template generator (autograder/authoring/templating.py) and the committed generated files."""
from __future__ import annotations

import pytest

from autograder.authoring.templating import TemplateError, generate, strip_markers, strip_solutions, sync_tree, template_files

SOURCE = '''\
def f(x):
    y = 2 * x
    ### BEGIN SOLUTION
    return y + 1
    ### END SOLUTION


def g(x):
    ### BEGIN SOLUTION stub: dx = None  # TODO
    dx = 3 * x
    ### END SOLUTION
    return dx
'''


def test_solution_regions_become_stubs_and_the_rest_stays():
    out = strip_solutions(SOURCE)
    assert out == '''\
def f(x):
    y = 2 * x
    # YOUR CODE HERE
    raise NotImplementedError()


def g(x):
    dx = None  # TODO
    return dx
'''
    namespace = {}
    exec(out, namespace)
    with pytest.raises(NotImplementedError):
        namespace["f"](1)
    assert namespace["g"](1) is None


def test_stub_annotation_is_removed_from_the_reference_markers():
    assert "stub:" not in strip_markers(SOURCE) and strip_markers(SOURCE).count("### BEGIN SOLUTION") == 2


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "nested"),
    ("x = 1\n### END SOLUTION\n", "without"),
    ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
])
def test_malformed_regions_name_file_and_line(source, message):
    with pytest.raises(TemplateError, match=rf"ref\.py:\d+: .*{message}"):
        strip_solutions(source, "ref.py")


def test_template_files_skip_caches_and_copy_other_files(tmp_path):
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "pkg" / "m.py").write_text(SOURCE)
    (tmp_path / "pkg" / "data.txt").write_bytes(b"raw")
    files = {str(k): v for k, v in template_files(tmp_path).items()}
    assert set(files) == {"pkg/m.py", "pkg/data.txt"}
    assert "NotImplementedError" in files["pkg/m.py"] and files["pkg/data.txt"] == b"raw"


def test_sync_tree_reports_writes_and_removes_stale_files(tmp_path):
    target = tmp_path / "out"
    files = template_files_for(tmp_path)
    assert sorted(p.name for p in sync_tree(target, files, check=True)) == ["m.py"]
    assert not target.exists()  # check mode writes nothing
    sync_tree(target, files, check=False)
    assert sync_tree(target, files, check=True) == []
    (target / "old.py").write_text("x = 1\n")
    assert [p.name for p in sync_tree(target, files, check=True)] == ["old.py"]
    sync_tree(target, files, check=False)
    assert not (target / "old.py").exists()


def template_files_for(tmp_path):
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "m.py").write_text(SOURCE)
    return template_files(ref)


def test_generated_files_are_up_to_date(root):
    """`make templates` has been run and committed: nothing generated differs from its reference."""
    stale = generate(root, check=True)
    assert stale == [], "out of date (run `make templates`): " + ", ".join(str(p.relative_to(root)) for p in stale)


def test_micrograd_template_keeps_forward_code_and_stubs_every_backward(root):
    template = (root / "student_template" / "micrograd" / "engine.py").read_text()
    reference = (root / "reference" / "micrograd" / "engine.py").read_text()
    assert template.count("raise NotImplementedError()") == reference.count("### BEGIN SOLUTION") == 9
    assert "def _backward():" in template and "out = Value(self.data + other.data, (self, other), '+')" in template
    assert "+= " not in template  # no gradient accumulation left to copy
