"""core/config.py: every setting read once from the environment, bad values refused by name, the command
line's flags on top, and the secret never shown."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.core.config import VARIABLES, Config, ConfigError

SECRET = "s3cret-value-7f2a"

# variable -> (a value to set, the field's value it must give)
READS = {
    "AUTOGRADER_SANDBOX": ("bwrap", "bwrap"),
    "AUTOGRADER_SANDBOX_USER": ("grader-kid", "grader-kid"),
    "AUTOGRADER_SANDBOX_UIDS": ("2000000000-2000000009", (2_000_000_000, 2_000_000_009)),
    "AUTOGRADER_PROTECT": (os.pathsep.join(["/srv/a", "/srv/b"]), (Path("/srv/a"), Path("/srv/b"))),
    "AUTOGRADER_SECRET": (SECRET, SECRET),
    "AUTOGRADER_TRUTH_CACHE": ("/var/cache/truths", Path("/var/cache/truths")),
    "AUTOGRADER_STARTUP_TIMEOUT": ("45", 45.0),
    "AUTOGRADER_NOTEBOOK_TIME_LIMIT": ("1.5", 1.5),
    "AUTOGRADER_DEBUG": ("1", True),
    "AUTOGRADER_ROOT": ("/tmp/gs-root", Path("/tmp/gs-root")),
    "AUTOGRADER_ASSIGNMENTS": ("graphs, micrograd", "graphs, micrograd"),
    "NBGRADER_EXECUTION": ("autograde", True),
}


def test_every_variable_is_read_into_its_field():
    assert set(READS) == set(VARIABLES), "a variable without a test (or a test without a variable)"
    default = Config.from_env({})
    for variable, (raw, expected) in READS.items():
        field = VARIABLES[variable]
        config = Config.from_env({variable: raw})
        assert getattr(config, field) == expected, variable
        assert getattr(default, field) != expected, f"{variable}: the test value is the default"


def test_defaults():
    config = Config.from_env({})
    assert (config.sandbox, config.sandbox_user, config.secret, config.debug) == ("auto", "backprop-student", "", False)
    assert config.startup_timeout == 120.0 and config.notebook_time_limit is None
    assert config.truth_cache == Path(os.path.expanduser("~")) / ".cache" / "backprop-lab" / "truths"
    assert Config.from_env({"XDG_CACHE_HOME": "/x"}).truth_cache == Path("/x/backprop-lab/truths")
    for off in ("off", "OFF", "0", "no"):
        assert Config.from_env({"AUTOGRADER_TRUTH_CACHE": off}).truth_cache is None
    assert Config.from_env({"NBGRADER_EXECUTION": "feedback"}).nbgrader_autograding is False


@pytest.mark.parametrize("variable, value", [
    ("AUTOGRADER_SANDBOX", "bwarp"),
    ("AUTOGRADER_SANDBOX_UIDS", "lots"),
    ("AUTOGRADER_SANDBOX_UIDS", "50-10"),
    ("AUTOGRADER_STARTUP_TIMEOUT", "soon"),
    ("AUTOGRADER_STARTUP_TIMEOUT", "-3"),
    ("AUTOGRADER_NOTEBOOK_TIME_LIMIT", "nan"),
    ("AUTOGRADER_NOTEBOOK_TIME_LIMIT", "0"),
])
def test_a_bad_value_is_refused_naming_the_variable_and_the_value(variable, value):
    with pytest.raises(ConfigError) as caught:
        Config.from_env({variable: value})
    assert variable in str(caught.value) and repr(value) in str(caught.value)


def test_flags_override_the_environment():
    env = {"AUTOGRADER_SANDBOX": "none", "AUTOGRADER_NOTEBOOK_TIME_LIMIT": "9", "AUTOGRADER_SECRET": SECRET}
    config = Config.from_env(env, sandbox="bwrap", unsandboxed=True, public_only=True, time_limit=3.0)
    assert (config.sandbox, config.unsandboxed, config.public_only, config.time_limit) == ("bwrap", True, True, 3.0)
    assert config.notebook_time_limit == 9.0 and config.secret == SECRET   # not overridden: the environment's
    # None means "flag not given": the environment's value stays
    assert Config.from_env(env, sandbox=None).sandbox == "none"
    assert Config.from_env(env).with_flags(unsandboxed=True, time_limit=None).unsandboxed is True
    with pytest.raises(ConfigError, match="sandbox='nothing'"):
        Config.from_env(env, sandbox="nothing")
    with pytest.raises(ConfigError, match="time_limit=-1"):
        Config.from_env(env).with_flags(time_limit=-1)
    with pytest.raises(TypeError, match="no setting"):
        Config.from_env(env, sandbox_mode="bwrap")


def test_the_environment_is_read_once():
    """A later change of the environment does not change a configuration already read."""
    env = {"AUTOGRADER_SANDBOX": "none"}
    config = Config.from_env(env)
    env["AUTOGRADER_SANDBOX"] = "bwrap"
    assert config.sandbox == "none"
    with pytest.raises(Exception):
        config.sandbox = "bwrap"  # frozen


def test_the_secret_never_appears_in_repr_str_or_json():
    config = Config.from_env({"AUTOGRADER_SECRET": SECRET, "AUTOGRADER_SANDBOX": "none"})
    assert config.secret == SECRET and config.has_secret
    for text in (repr(config), str(config), f"{config}", json.dumps(config.as_dict()), repr([config])):
        assert SECRET not in text
        assert "sandbox='none'" in text or '"sandbox": "none"' in text  # the rest is shown
    assert config.as_dict()["secret"] == "<hidden>"
    assert Config.from_env({}).as_dict()["secret"] == ""
    # it travels whole to a worker process (pickled), and stays hidden there too
    again = pickle.loads(pickle.dumps(config))
    assert again.secret == SECRET and SECRET not in repr(again)


def test_the_command_line_names_a_bad_setting(tmp_path):
    env = {**os.environ, "AUTOGRADER_SANDBOX": "bwarp"}
    done = subprocess.run([sys.executable, "-m", "autograder", "check", str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "AUTOGRADER_SANDBOX='bwarp'" in done.stderr and "Traceback" not in done.stderr


def test_the_table_documents_every_variable():
    """The module's table (the list the README points to) names every variable `from_env` reads."""
    import autograder.core.config as module
    for variable in VARIABLES:
        assert f"| {variable} " in module.__doc__, variable


def test_a_commands_flags_go_on_top_of_the_configuration_main_read():
    import argparse

    from autograder.core.config import for_command
    read_by_main = Config.from_env({"AUTOGRADER_SECRET": SECRET, "AUTOGRADER_SANDBOX": "none"})
    args = argparse.Namespace(config=read_by_main, unsandboxed=True, public_only=False, time_limit=2.5, path="x")
    config = for_command(args)
    assert (config.unsandboxed, config.public_only, config.time_limit) == (True, False, 2.5)
    assert (config.secret, config.sandbox) == (SECRET, "none")   # the environment main read, not read again
    bare = for_command(argparse.Namespace(config=read_by_main))  # a command without those flags
    assert bare == read_by_main
