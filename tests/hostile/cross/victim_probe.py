# What this process can see of the machine's shared places, its limits and its peers: printed on every
# public case (module level: each child imports it), compared by the test with the same submission graded
# alone. Only what is not root's is listed (the machine's own files are the same for both runs).
import json as _json
import os as _os
import resource as _resource
import socket as _socket


def _probe():
    here = _os.getcwd()
    me = _os.getuid()
    seen = {}
    for key, place in (("/tmp", "/tmp"), ("/var/tmp", "/var/tmp"), ("/dev/shm", "/dev/shm"),
                       ("/dev/mqueue", "/dev/mqueue"), ("its scratch's parent", _os.path.dirname(here))):
        try:
            st = _os.lstat(place)
            names = []
            for name in sorted(_os.listdir(place)):
                path = _os.path.join(place, name)
                if path == here:
                    continue
                try:
                    owner = _os.lstat(path).st_uid
                except FileNotFoundError:  # in user mode /tmp is the machine's: others' files come and go
                    continue
                if owner == me:
                    names.append(name)
                    try:
                        with open(path) as f:
                            names.append(f.read(2000))
                    except OSError:
                        pass
            seen[key] = [oct(st.st_mode & 0o7777) if st.st_uid == me else "not-mine", names]
        except OSError as exc:
            seen[key] = f"error {exc.errno}"
    seen["here"] = sorted(_os.listdir(here))
    limits = {}
    # Each limit named outright: the grader's integrity policy refuses an attribute name computed at run time.
    for _rlimit, _which in {
            "RLIMIT_AS": _resource.RLIMIT_AS,
            "RLIMIT_CORE": _resource.RLIMIT_CORE,
            "RLIMIT_CPU": _resource.RLIMIT_CPU,
            "RLIMIT_DATA": _resource.RLIMIT_DATA,
            "RLIMIT_FSIZE": _resource.RLIMIT_FSIZE,
            "RLIMIT_MEMLOCK": _resource.RLIMIT_MEMLOCK,
            "RLIMIT_MSGQUEUE": _resource.RLIMIT_MSGQUEUE,
            "RLIMIT_NICE": _resource.RLIMIT_NICE,
            "RLIMIT_NOFILE": _resource.RLIMIT_NOFILE,
            "RLIMIT_NPROC": _resource.RLIMIT_NPROC,
            "RLIMIT_RSS": _resource.RLIMIT_RSS,
            "RLIMIT_RTPRIO": _resource.RLIMIT_RTPRIO,
            "RLIMIT_RTTIME": _resource.RLIMIT_RTTIME,
            "RLIMIT_SIGPENDING": _resource.RLIMIT_SIGPENDING,
            "RLIMIT_STACK": _resource.RLIMIT_STACK,
    }.items():
        soft, hard = _resource.getrlimit(_which)
        limits[_rlimit] = hard if _rlimit == "RLIMIT_CPU" else [soft, hard]  # the soft CPU limit follows CPU used
    seen["limits"] = limits
    seen["nice"] = _os.getpriority(_os.PRIO_PROCESS, 0)
    seen["affinity"] = sorted(_os.sched_getaffinity(0))
    peers = 0
    for p in _os.listdir("/proc"):
        try:
            if p.isdigit() and int(p) != _os.getpid() and _os.stat(f"/proc/{p}").st_uid == me:
                peers += 1
        except OSError:  # the machine's other processes come and go
            pass
    seen["peers"] = peers  # its own server only
    seen["fds"] = sorted(int(fd) for fd in _os.listdir("/proc/self/fd"))
    try:
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        s.settimeout(0.5)
        s.connect("\0backprop-leak")
        seen["socket"] = s.recv(4000).decode(errors="replace")
    except OSError as exc:
        seen["socket"] = f"error {exc.errno}"
    ipc = []
    for kind in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                ipc += [line for line in f.read().splitlines()[1:] if str(me) in line.split()]
        except OSError:
            pass
    seen["sysvipc"] = ipc
    try:
        with open("/proc/keys") as f:
            seen["keys"] = [line for line in f.read().splitlines() if "backprop" in line]
    except OSError:
        seen["keys"] = "unreadable"
    return seen


print("PROBE " + _json.dumps(_probe(), sort_keys=True))
