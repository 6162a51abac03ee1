"""NumPy side of the .npy tests (run with Debian's /usr/bin/python3).

  npy_ref.py write DIR   write reference files with numpy for our reader
  npy_ref.py check DIR   load the files our writer produced and compare
"""
import os
import sys

import numpy as np

from reference_values import DTYPES, array

SHAPES = {"": (2, 3, 4), "_0d": (), "_empty": (0, 3)}


def write(d):
    for name in DTYPES:
        for suffix, shape in SHAPES.items():
            np.save(os.path.join(d, f"{name}{suffix}.npy"), array(name, shape))
        for major in (2, 3):
            with open(os.path.join(d, f"{name}_v{major}.npy"), "wb") as f:
                np.lib.format.write_array(f, array(name, (2, 3, 4)), version=(major, 0))
    np.save(os.path.join(d, "fortran.npy"), np.asfortranarray(array("float32", (2, 3))))
    np.save(os.path.join(d, "bigendian.npy"), array("float32", (2, 3)).astype(">f4"))
    np.save(os.path.join(d, "complex.npy"), np.zeros((2,), dtype=np.complex64))
    np.save(os.path.join(d, "structured.npy"), np.zeros((2,), dtype=[("a", "<f4"), ("b", "<i4")]))
    np.save(os.path.join(d, "image_f64.npy"), np.zeros((1, 3, 32, 32), dtype=np.float64))


def check(d):
    for name in DTYPES:
        for suffix, shape in SHAPES.items():
            path = os.path.join(d, f"ours_{name}{suffix}.npy")
            got = np.load(path, allow_pickle=False)
            want = array(name, shape)
            assert got.dtype == want.dtype, f"{path}: dtype {got.dtype} != {want.dtype}"
            assert got.shape == want.shape, f"{path}: shape {got.shape} != {want.shape}"
            np.testing.assert_array_equal(got, want, err_msg=path)
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                assert version == (1, 0), f"{path}: version {version}"
                np.lib.format.read_array_header_1_0(f)  # strict header check
                assert f.tell() % 64 == 0, f"{path}: data not 64-byte aligned"
    transposed = np.load(os.path.join(d, "ours_transposed.npy"))
    np.testing.assert_array_equal(transposed, array("float32", (3, 4)).T)


if __name__ == "__main__":
    {"write": write, "check": check}[sys.argv[1]](sys.argv[2])
    print("ok")
