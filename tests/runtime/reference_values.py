"""Reference values shared by the NumPy-based runtime tests.

Element i (flat, C order) of a test array of dtype D is values(D, n)[i]. The
C++ tests compute the same closed-form formula independently (see
test_support.cpp: expected_value), so agreement means both sides read/wrote
the same bytes.
"""
import numpy as np

# name used in file names -> numpy dtype
DTYPES = {
    "float32": np.float32, "float64": np.float64, "float16": np.float16,
    "int32": np.int32, "int64": np.int64, "uint8": np.uint8,
    "bool": np.bool_, "uint16": np.uint16, "int8": np.int8,
}


def values(name, n):
    i = np.arange(n, dtype=np.int64)
    if name in ("float32", "float64", "float16", "bfloat16"):
        v = (i - 5) * 0.25
    elif name == "int32":
        v = (i - 5) * 100003
    elif name == "int64":
        v = (i - 5) * 3000000007
    elif name == "uint8":
        v = (i * 37) % 256
    elif name == "int8":
        v = (i * 37) % 256 - 128
    elif name == "uint16":
        v = (i * 2731) % 65536
    elif name == "bool":
        v = i % 3 == 0
    else:
        raise ValueError(name)
    if name == "bfloat16":  # raw bits: top half of the float32 pattern
        return (v.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return v.astype(DTYPES[name])


def array(name, shape):
    return values(name, int(np.prod(shape, dtype=np.int64))).reshape(shape)
