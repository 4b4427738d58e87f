"""What crosses between the grader and the student's process: JSON with tensors as base64.

Never pickle: the student's process is untrusted, and unpickling its bytes would run its code in the
grader. Decoding validates every tensor (dtype from a short list, byte count equal to the shape's).
"""
from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any, BinaryIO

from .verdicts import NOT_IMPLEMENTED_VALUE, NotImplementedMarker

_DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
MAX_MESSAGE = 256 * 1024 * 1024  # bytes; a larger reply is refused, not read


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
        return {"__tensor__": {"dtype": dtype, "shape": list(t.shape),
                               "data": base64.b64encode(raw).decode("ascii")}}
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
    if not isinstance(value, dict):
        if isinstance(value, list):
            raise ValueError("bare list on the wire")
        return value
    if "__tensor__" in value:
        return _decode_tensor(value["__tensor__"])
    if "__float__" in value:
        return float(value["__float__"])
    if "__not_implemented__" in value:
        return NOT_IMPLEMENTED_VALUE
    if "__list__" in value:
        return [decode(v) for v in value["__list__"]]
    if "__dict__" in value:
        out = {}
        for k, v in value["__dict__"]:
            k = decode(k)
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                k = repr(k)
            out[k] = decode(v)
        return out
    if "__unsupported__" in value:
        return Unsupported(str(value["__unsupported__"])[:80])
    return {str(k): decode(v) for k, v in value.items()}  # a plain JSON object (messages)


def _decode_tensor(spec: dict):
    import numpy as np
    import torch
    dtype, shape = spec["dtype"], spec["shape"]
    if dtype not in _DTYPES or not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise ValueError(f"bad tensor header {dtype!r} {shape!r}")
    raw = base64.b64decode(spec["data"], validate=True)
    count = math.prod(shape)
    if dtype == "bfloat16":
        arr = np.frombuffer(raw, dtype=np.int16)
        if arr.size != count:
            raise ValueError("tensor byte count does not match its shape")
        return torch.from_numpy(arr.copy()).view(torch.bfloat16).reshape(shape)
    arr = np.frombuffer(raw, dtype=np.dtype(dtype))
    if arr.size != count:
        raise ValueError("tensor byte count does not match its shape")
    return torch.from_numpy(arr.copy()).reshape(shape)


def send(stream: BinaryIO, message: dict) -> None:
    body = json.dumps(message).encode()
    stream.write(struct.pack("<Q", len(body)) + body)
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
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError("reply is not an object")
    return message


def _read_exactly(stream: BinaryIO, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            return None  # end of stream (mid-message counts as cut short)
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)
