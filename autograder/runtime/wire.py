"""What crosses between the grader and the student's process: JSON, with each tensor's bytes sent raw after it.

A frame is its size, then the JSON (its size first), then one buffer per tensor (each its size first); a
tensor's `data` in the JSON is its buffer's number. Raw buffers, not base64 inside the JSON: a training
case's reply carries ~700 tensors, and base64 plus JSON's scan of the text cost more than the student's
code (measured: ~40 ms each way per case).

Never pickle: the student's process is untrusted, and unpickling its bytes would run its code in the
grader. Decoding validates every tensor (dtype from a short list, byte count equal to the shape's) and the
frame's layout (every size within the frame, nothing left over).
"""
from __future__ import annotations

import json
import math
import struct
from typing import Any, BinaryIO

from .verdicts import NOT_IMPLEMENTED_VALUE, NotImplementedMarker

_DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
MAX_MESSAGE = 64 * 1024 * 1024  # bytes; a larger message is refused, not read
MAX_DEPTH = 24                  # nesting of lists/dicts in a decoded value
MAX_ITEMS = 200_000             # values in one decoded message
MAX_STRING = 100_000            # characters of one string
MAX_ELEMENTS = 16 * 1024 * 1024 # elements of one tensor


class Unsupported:
    """A returned object the wire does not carry (a function, a custom class): graded as wrong."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name}>"


def encode(value: Any, _depth: int = 0) -> Any:
    import sys
    if _depth > 20:
        return {"__unsupported__": "nesting deeper than 20"}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**62 else float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, NotImplementedMarker):
        return {"__not_implemented__": True}
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        if t.is_complex() or str(t.dtype).replace("torch.", "") not in _DTYPES:
            return {"__unsupported__": f"tensor of dtype {t.dtype}"}
        dtype = str(t.dtype).replace("torch.", "")
        raw = t.view(torch.int16).numpy().tobytes() if dtype == "bfloat16" else t.numpy().tobytes()
        return {"__tensor__": {"dtype": dtype, "shape": list(t.shape), "data": raw}}  # raw: `frame` sends it
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, (np.ndarray, np.generic)):
        if torch is not None and value.dtype != object:
            try:
                return encode(torch.as_tensor(np.asarray(value)), _depth + 1)
            except Exception:
                pass
        return {"__unsupported__": f"numpy {value.dtype}"}
    if isinstance(value, dict):
        return {"__dict__": [[encode(k, _depth + 1), encode(v, _depth + 1)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"__list__": [encode(v, _depth + 1) for v in value]}
    return {"__unsupported__": type(value).__name__}


def decode(value: Any) -> Any:
    """The value a message carries. Raises ValueError on anything the wire does not produce (unknown
    tags, bare lists, nesting deeper than MAX_DEPTH, more than MAX_ITEMS values, oversized strings or
    tensors): the other side is not trusted to have used `encode`."""
    return _decode(value, 0, [0])


def _decode(value: Any, depth: int, count: list) -> Any:
    count[0] += 1
    if count[0] > MAX_ITEMS:
        raise ValueError(f"more than {MAX_ITEMS} values")
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise ValueError(f"a string of {len(value)} characters")
        return value
    if isinstance(value, list):
        raise ValueError("bare list on the wire")
    if not isinstance(value, dict):
        raise ValueError(f"unexpected {type(value).__name__}")
    if len(value) == 1:
        (tag, body), = value.items()
        if tag == "__tensor__":
            return _decode_tensor(body)
        if tag == "__float__":
            if body not in ("inf", "-inf", "nan"):
                raise ValueError(f"bad float {str(body)[:20]!r}")
            return float(body)
        if tag == "__not_implemented__":
            return NOT_IMPLEMENTED_VALUE
        if tag == "__list__":
            if not isinstance(body, list):
                raise ValueError("bad list")
            return [_decode(v, depth + 1, count) for v in body]
        if tag == "__dict__":
            if not isinstance(body, list):
                raise ValueError("bad dict")
            out = {}
            for pair in body:
                if not isinstance(pair, list) or len(pair) != 2:
                    raise ValueError("bad dict entry")
                k = _decode(pair[0], depth + 1, count)
                if not isinstance(k, (str, int, float, bool)) and k is not None:
                    k = repr(k)[:100]
                out[k] = _decode(pair[1], depth + 1, count)
            return out
        if tag == "__unsupported__":
            return Unsupported(str(body)[:80])
    if any(str(k).startswith("__") for k in value):
        raise ValueError("unknown tag")
    return {str(k)[:100]: _decode(v, depth + 1, count) for k, v in value.items()}  # a plain JSON object


def _decode_tensor(spec: dict):
    import numpy as np
    import torch
    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data"} or \
            not isinstance(spec["data"], (bytes, memoryview)):
        raise ValueError("bad tensor")
    dtype, shape = spec["dtype"], spec["shape"]
    if dtype not in _DTYPES or not isinstance(shape, list) or len(shape) > 8 or \
            not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise ValueError(f"bad tensor header {str(dtype)[:20]!r} {str(shape)[:60]}")
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise ValueError(f"a tensor of {count} elements")
    raw = spec["data"]
    if dtype == "bfloat16":
        arr = np.frombuffer(raw, dtype=np.int16)
        if arr.size != count:
            raise ValueError("tensor byte count does not match its shape")
        return torch.from_numpy(arr.copy()).view(torch.bfloat16).reshape(shape)
    arr = np.frombuffer(raw, dtype=np.dtype(dtype))
    if arr.size != count:
        raise ValueError("tensor byte count does not match its shape")
    return torch.from_numpy(arr.copy()).reshape(shape)


def frame(message: dict) -> bytes:
    buffers: list[bytes] = []

    def buffer_number(value):  # json.dumps calls this for what JSON has no type for: a tensor's bytes
        if isinstance(value, bytes):
            buffers.append(value)
            return len(buffers) - 1
        raise TypeError(f"the wire does not carry {type(value).__name__}")

    body = json.dumps(message, default=buffer_number).encode()
    parts = [struct.pack("<Q", len(body)), body]
    for raw in buffers:
        parts += [struct.pack("<Q", len(raw)), raw]
    payload = b"".join(parts)
    return struct.pack("<Q", len(payload)) + payload


def unframe(data: bytes, limit: int = MAX_MESSAGE) -> dict:
    """The message in `data` (exactly one frame). Raises ValueError otherwise."""
    if len(data) < 8:
        raise ValueError("message cut short")
    (size,) = struct.unpack("<Q", data[:8])
    if size > limit or len(data) != 8 + size:
        raise ValueError("message size does not match its header")
    return _loads(data[8:])


def _loads(payload: bytes) -> dict:
    """A frame's payload: its JSON, with each tensor's `data` replaced by its buffer (a view into `payload`)."""
    view = memoryview(payload)
    if len(view) < 8:
        raise ValueError("message cut short")
    (size,) = struct.unpack_from("<Q", view, 0)
    if size > len(view) - 8:
        raise ValueError("message size does not match its header")
    body, at, buffers = bytes(view[8:8 + size]), 8 + size, []
    while at < len(view):
        if len(view) - at < 8:
            raise ValueError("buffer header cut short")
        (n,) = struct.unpack_from("<Q", view, at)
        at += 8
        if n > len(view) - at:
            raise ValueError("buffer longer than the message")
        buffers.append(view[at:at + n])
        at += n
        if len(buffers) > MAX_ITEMS:
            raise ValueError(f"more than {MAX_ITEMS} buffers")

    used: set[int] = set()

    def tensor_data(obj: dict) -> dict:
        # Only a tensor's header refers to a buffer; a number anywhere else stays a number. A buffer where
        # `decode` expects JSON (outside a tensor) is refused there.
        if len(obj) == 3 and "dtype" in obj and "shape" in obj and type(obj.get("data")) is int:
            if not 0 <= obj["data"] < len(buffers):
                raise ValueError("a tensor refers to a buffer the message does not have")
            used.add(obj["data"])
            obj["data"] = buffers[obj["data"]]
        return obj

    try:
        message = json.loads(body, object_hook=tensor_data)
        if len(used) != len(buffers):
            raise ValueError("a buffer no tensor refers to")
    except RecursionError:
        raise ValueError("message nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(message, dict):
        raise ValueError("message is not an object")
    return message


def send(stream: BinaryIO, message: dict) -> None:
    stream.write(frame(message))
    stream.flush()


def recv(stream: BinaryIO) -> dict | None:
    """One message, or None at end of stream. Raises ValueError on a malformed message."""
    header = _read_exactly(stream, 8)
    if header is None:
        return None
    (size,) = struct.unpack("<Q", header)
    if size > MAX_MESSAGE:
        raise ValueError(f"reply of {size} bytes is larger than the limit")
    body = _read_exactly(stream, size)
    if body is None:
        raise ValueError("reply cut short")
    return _loads(body)


def _read_exactly(stream: BinaryIO, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            return None  # end of stream (mid-message counts as cut short)
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)
