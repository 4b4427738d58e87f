def attack(gate, dout):
    """Write forged bytes on the result pipe (fd 3): garbage, a huge length, deep nesting, odd values."""
    import json
    import os
    import struct
    variant = TARGETS["variant"]
    print("ATTACK-RAN", variant)
    if variant == "garbage":
        payload = b"\xff" * 64 + struct.pack("<Q", 12) + b"not json!!!!"
    elif variant == "huge":
        payload = struct.pack("<Q", 1 << 62) + b"{"
    elif variant == "deep":
        body = ('{"status": "ok", "case": 0, "outputs": ' + '{"__list__": [' * 20000 + "1" + "]}" * 20000 + "}").encode()
        payload = struct.pack("<Q", len(body)) + body
    else:  # odd values of every kind the wire has, and some it has not
        outputs = {"__dict__": [["dx", {"__tensor__": {"dtype": "float32", "shape": [1 << 40], "data": ""}}],
                                ["dy", {"__float__": "__import__('os')"}], ["\x1b[2Jdz", {"__pickle__": "x"}]]}
        body = json.dumps({"status": "ok", "case": 0, "kind": "\x1b[31mfake", "outputs": outputs}).encode()
        payload = struct.pack("<Q", len(body)) + body
    os.write(3, payload)
    return (0.0, 0.0)  # wrong: only a forged reply could score
