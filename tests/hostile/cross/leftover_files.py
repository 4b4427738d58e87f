# Leave the case's inputs (hidden ones included) everywhere it can write, made hard to remove: a directory
# without permissions, a deep tree, a FIFO, a symlink, a name with a newline, POSIX shared memory.
import os as _os


def _leak(inputs):
    text = f"{TAG} {inputs!r}"
    here = _os.getcwd()
    for place in (_os.path.dirname(here), "/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue", here,
                  _os.environ.get("HOME", "/")):
        try:
            base = _os.path.join(place, f"leak-{TAG}-{_os.getpid()}")
            _os.makedirs(base, exist_ok=True)
            with open(_os.path.join(base, "inputs.txt"), "w") as f:
                f.write(text)
            with open(_os.path.join(place, f"leak-{TAG}\nname"), "w") as f:
                f.write(text)
            try:
                _os.mkfifo(_os.path.join(place, f"fifo-{TAG}-{_os.getpid()}"))
            except BaseException:
                pass
            try:
                _os.symlink(base, _os.path.join(place, f"link-{TAG}-{_os.getpid()}"))
            except BaseException:
                pass
            deep = _os.path.join(base, "deep")
            for _ in range(300):
                _os.mkdir(deep)
                with open(_os.path.join(deep, "inputs.txt"), "w") as f:
                    f.write(text)
                deep = _os.path.join(deep, "d")
            _os.chmod(base, 0o000)
        except BaseException:
            continue
    try:
        from multiprocessing import shared_memory
        shm = shared_memory.SharedMemory(name=f"leak-{TAG}", create=True, size=4096)
        shm.buf[:len(text[:4000].encode())] = text[:4000].encode()
    except BaseException:
        pass


print("ATTACK-RAN leftover_files")
