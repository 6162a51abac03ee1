"""Independent safetensors writer/parser (struct + json, no safetensors
package) for the runtime tests. Run with Debian's /usr/bin/python3.

  safetensors_ref.py write DIR    write reference files for our reader
  safetensors_ref.py check FILE   parse a file our writer produced and compare
"""
import json
import struct
import sys

import numpy as np

from reference_values import array

CODES = {"float32": "F32", "float64": "F64", "int32": "I32", "int64": "I64", "uint8": "U8",
         "bool": "BOOL", "uint16": "U16", "int8": "I8", "float16": "F16", "bfloat16": "BF16"}
METADATA = {"format": "mithril", "note": "h\u00e9llo \"q\"\n"}


def ref_tensors():
    """name -> (dtype name, shape); shapes are odd on purpose."""
    tensors = {f"t.{name}": (name, (2, 3, 4)) for name in CODES}
    tensors["scalar"] = ("float32", ())
    tensors["empty"] = ("float32", (0, 3))
    return tensors


def write_file(path, entries, pad):
    """entries: list of (name, dtype name, shape) in buffer order."""
    header, chunks, offset = {"__metadata__": METADATA}, [], 0
    for name, dtype, shape in entries:
        data = array(dtype, shape).tobytes()
        header[name] = {"dtype": CODES[dtype], "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def write(d):
    entries = [(n, dt, s) for n, (dt, s) in ref_tensors().items()]
    # Buffer order reversed from name order: readers must use the offsets.
    write_file(f"{d}/ref.safetensors", list(reversed(entries)), pad=True)
    # Unpadded header and a 1-byte tensor first: later tensors are misaligned.
    odd = [("odd.u8", "uint8", (1,))] + entries
    write_file(f"{d}/unpadded.safetensors", odd, pad=False)


def check(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    assert n % 8 == 0, f"header length {n} not 8-aligned"
    text = blob[8:8 + n].decode()
    assert text.rstrip(" ").endswith("}"), "header not padded with spaces only"
    header = json.loads(text)
    assert header.pop("__metadata__") == METADATA, "metadata differs"
    buf = blob[8 + n:]
    names = list(header)
    assert names == sorted(names), f"names not written in sorted order: {names}"
    offset = 0
    for name in names:
        e = header[name]
        begin, end = e["data_offsets"]
        assert begin == offset, f"{name}: data not in sorted name order"
        dtype = {v: k for k, v in CODES.items()}[e["dtype"]]
        want = array(dtype, tuple(e["shape"]))
        got = np.frombuffer(buf[begin:end], dtype=want.dtype).reshape(want.shape)
        np.testing.assert_array_equal(got, want, err_msg=name)
        offset = end
    assert offset == len(buf), "trailing bytes after the last tensor"
    expected = {f"w.{name}" for name in CODES} | {"scalar", "empty"}
    assert set(names) == expected, f"names {names}"


if __name__ == "__main__":
    {"write": write, "check": check}[sys.argv[1]](sys.argv[2])
    print("ok")
