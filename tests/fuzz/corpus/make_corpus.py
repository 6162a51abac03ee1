#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/):
small valid files and a few near-valid ones, a few KB per target. The files are
committed; rerun this (with /usr/bin/python3, which has numpy) after changing it.
fuzz_model's seeds are the files in model/ (written by hand) plus samples/*.yaml.
"""
import gzip
import io
import json
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    with open(os.path.join(HERE, target, name), "wb") as f:
        f.write(data)


def npy_bytes(a, version=None):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, version=version, allow_pickle=False)
    return buf.getvalue()


def npy_raw(header, data=b""):
    """A version 1.0 .npy with the given header dict text, padded as numpy pads it."""
    h = header.encode("latin1")
    h += b" " * (-(10 + len(h) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + data


def safetensors_bytes(entries, data, metadata=None):
    header = dict(entries)
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def npy_corpus():
    write("npy", "f4_2x3.npy", npy_bytes(np.arange(6, dtype="<f4").reshape(2, 3)))
    write("npy", "f8_scalar.npy", npy_bytes(np.array(1.5, dtype="<f8")))
    write("npy", "i8_3.npy", npy_bytes(np.array([-1, 0, 2**40], dtype="<i8")))
    write("npy", "i4_1x2x2.npy", npy_bytes(np.arange(4, dtype="<i4").reshape(1, 2, 2)))
    write("npy", "b1_4.npy", npy_bytes(np.array([True, False, True, True])))
    write("npy", "u1_empty.npy", npy_bytes(np.zeros((0,), dtype="u1")))
    write("npy", "u2_0x5.npy", npy_bytes(np.zeros((0, 5), dtype="<u2")))
    write("npy", "i1_2x2.npy", npy_bytes(np.array([[-128, 127], [0, 1]], dtype="i1")))
    write("npy", "f2_3.npy", npy_bytes(np.array([0.5, -2, np.inf], dtype="<f2")))
    write("npy", "v2_f4.npy", npy_bytes(np.ones((2,), dtype="<f4"), version=(2, 0)))
    write("npy", "v3_i4.npy", npy_bytes(np.ones((1,), dtype="<i4"), version=(3, 0)))
    # Near-valid: each is one clean error.
    write("npy", "bad_fortran.npy", npy_bytes(np.asfortranarray(np.arange(4, dtype="<f4").reshape(2, 2))))
    write("npy", "bad_big_endian.npy", npy_bytes(np.arange(2, dtype=">i4")))
    write("npy", "bad_truncated.npy", npy_bytes(np.arange(6, dtype="<f4"))[:-4])
    write("npy", "bad_trailing.npy", npy_bytes(np.arange(2, dtype="<f4")) + b"\0\0")
    write("npy", "bad_dtype.npy", npy_raw("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", b"\0" * 8))
    # Bool bytes other than 0 and 1 (read as 1; undefined behaviour before).
    write("npy", "bool_byte_2.npy", npy_raw("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", b"\x01\x02"))
    # Zero elements, but the other dims' product overflows int64 (strides must not).
    write("npy", "zero_huge_dims.npy",
          npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4611686018427387904, 4611686018427387904), }"))
    write("npy", "huge_numel.npy",
          npy_raw("{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904,), }"))


def safetensors_corpus():
    w = np.arange(6, dtype="<f4").tobytes()
    b = np.array([1, -2], dtype="<i8").tobytes()
    write("safetensors", "two.safetensors", safetensors_bytes(
        {"fc.bias": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]},
         "fc.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}},
        w + b, {"format": "pt", "step": "3"}))
    entries, data = {}, b""
    for code, size in [("BF16", 2), ("F16", 2), ("BOOL", 1), ("U8", 1), ("I8", 1), ("U16", 2), ("I32", 4), ("F64", 8)]:
        entries[code.lower()] = {"dtype": code, "shape": [2], "data_offsets": [len(data), len(data) + 2 * size]}
        data += (b"\x01" + b"\x00" * (size - 1)) * 2
    write("safetensors", "dtypes.safetensors", safetensors_bytes(entries, data))
    write("safetensors", "empty.safetensors", safetensors_bytes({}, b""))
    write("safetensors", "zero_size.safetensors", safetensors_bytes(
        {"e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]}, "s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}},
        b"\0\0\x80\x3f", {}))
    write("safetensors", "escapes.safetensors", safetensors_bytes(
        {"a\"b\\u00e9\u00e9\n": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\x07", {"k": "v\t\u2603"}))
    # Near-valid.
    write("safetensors", "bad_overlap.safetensors", safetensors_bytes(
        {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
        b"\0" * 12))
    write("safetensors", "bad_past_end.safetensors", safetensors_bytes(
        {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8))
    write("safetensors", "bad_dtype.safetensors", safetensors_bytes(
        {"a": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4))
    write("safetensors", "bad_header_len.safetensors", struct.pack("<Q", 2**63) + b"{}")
    write("safetensors", "bool_byte_5.safetensors", safetensors_bytes(
        {"m": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x05"))
    write("safetensors", "zero_huge_dims.safetensors", safetensors_bytes(
        {"z": {"dtype": "F32", "shape": [0, 2**62, 2**62], "data_offsets": [0, 0]}}, b""))


def dataset_corpus():
    # CSV read with the default options: the whole file is the CSV.
    write("dataset", "header.csv", b"a,b,label\n1,2,0\n3.5,-4e2,1\n0,0,2\n5,6,1\n")
    write("dataset", "no_header.csv", b"1,2,0\n3,4,1\n5,6,0\n7,8,1\n")
    write("dataset", "sklearn.csv", b"4,2,setosa,versicolor\n5.1,3.5,0\n4.9,3.0,1\n4.7,3.2,0\n4.6,3.1,1\n")
    write("dataset", "quoted_crlf_bom.csv", b'\xef\xbb\xbf"x","y ""q""",label\r\n"1", 2 ,0\r\n\r\n3,"4",1\r\n')
    write("dataset", "gzip.csv.gz", gzip.compress(b"a,b,c\n1,2,0\n3,4,1\n5,6,2\n", mtime=0))
    # A mode letter first (see fuzz_dataset.cpp), then the file.
    write("dataset", "f_float_labels.csv", b"fa,b,y\n1,2,0.5\n3,4,-1.25\n")
    write("dataset", "h_header_yes.csv", b"h0,1,2\n1,2,0\n3,4,1\n")
    write("dataset", "x_header_no.csv", b"x1,2,0\n3,4,1\n")
    write("dataset", "s_semicolon.csv", b"sa;b;label\n1;2;0\n3;4;1\n")
    write("dataset", "w_spaces.csv", b"w  1  2 0\n 3 4   1\n")
    write("dataset", "l_label_by_name.csv", b"llabel,a,b\n0,1,2\n1,3,4\n")
    write("dataset", "n_int_table.npy", b"n" + npy_bytes(np.array([[1, 2, 0], [3, 4, 1], [5, 6, 2]], dtype="<i8")))
    write("dataset", "N_float_table.npy", b"N" + npy_bytes(np.array([[0.5, 1.5], [2.5, -3.5]], dtype="<f4")))
    write("dataset", "n_bool_table.npy", b"n" + npy_bytes(np.array([[True, False], [False, True]])))
    write("dataset", "u_tokens.bin", b"u" + bytes(range(0, 40, 3)))
    write("dataset", "t_tokens.bin", b"t" + np.array([1, 299, 300, 65535, 7, 8, 9], dtype="<u2").tobytes())
    write("dataset", "T_tokens.bin", b"T" + np.array([0, -1, 5, 2**31 - 1, 4, 4], dtype="<i4").tobytes())
    # Near-valid.
    write("dataset", "bad_ragged.csv", b"a,b,label\n1,2,0\n3,1\n")
    write("dataset", "bad_number.csv", b"a,b,label\n1,x,0\n")
    write("dataset", "bad_label.csv", b"1,2,-1\n")
    write("dataset", "bad_quote.csv", b'a,"b,label\n1,2,0\n')
    write("dataset", "bad_gzip.csv.gz", gzip.compress(b"a,b\n1,0\n" * 20, mtime=0)[:-12])


if __name__ == "__main__":
    npy_corpus()
    safetensors_corpus()
    dataset_corpus()
