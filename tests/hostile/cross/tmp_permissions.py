# Make the scratch's parent (bwrap: the /tmp tmpfs root, owned by the sandbox uid; user mode: the runner's
# scratch directory) and every shared temporary place unusable for whoever comes next.
import os as _os
import stat as _stat

_here = _os.getcwd()
for _place in (_os.path.dirname(_here), "/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue", _os.environ.get("HOME", "/")):
    for _mode in (0o555, 0o000):
        try:
            _os.chmod(_place, _mode)
        except BaseException:
            pass
try:  # the case's own scratch too, with a file inside: unwipeable for a careless wipe
    with open(_os.path.join(_here, f"keep-{TAG}"), "w") as _f:
        _f.write(TAG)
    _os.chmod(_here, 0o000)
except BaseException:
    pass
print("ATTACK-RAN tmp_permissions")


def _leak(inputs):
    pass
