"""NumPy side of the dataset tests (run with Debian's /usr/bin/python3).

  dataset_ref.py csv FILE OUT_PREFIX     read a (gzip) CSV with numpy/gzip -> OUT_PREFIX_x.npy, OUT_PREFIX_y.npy
  dataset_ref.py gzip DIR                gzip files (good, multi-member, truncated, bad CRC, bad header)
  dataset_ref.py npy DIR                 .npy feature/label files for load_npy_table
  dataset_ref.py perm DIR                split_rows / BatchSampler orders from an independent
                                         xoshiro256** + Fisher-Yates implementation -> DIR/perm.txt
"""
import gzip
import math
import os
import sys

import numpy as np


def read_csv(path, prefix):
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rt") as f:
        lines = [l for l in f.read().splitlines() if l.strip()]
    first = lines[0].split(",")

    def is_num(s):
        try:
            float(s)
            return True
        except ValueError:
            return False

    if not all(is_num(s) for s in first):
        lines = lines[1:]
    a = np.loadtxt(lines, delimiter=",", dtype=np.float64)
    np.save(prefix + "_x.npy", a[:, :-1].astype(np.float32))
    np.save(prefix + "_y.npy", a[:, -1].astype(np.int64))


def write_gzip(d):
    text = "a,b,label\n" + "".join(f"{i},{i * 0.5},{i % 3}\n" for i in range(1000))
    data = text.encode()
    with open(os.path.join(d, "plain.csv"), "wb") as f:
        f.write(data)
    # Named .csv on purpose: gzip is detected by its magic bytes, not the name.
    with gzip.open(os.path.join(d, "good.csv"), "wb") as f:
        f.write(data)
    half = len(data) // 2
    cut = data.rfind(b"\n", 0, half) + 1
    with open(os.path.join(d, "multi.csv.gz"), "wb") as f:
        f.write(gzip.compress(data[:cut]) + gzip.compress(data[cut:]))
    good = gzip.compress(data)
    with open(os.path.join(d, "truncated.csv.gz"), "wb") as f:
        f.write(good[: len(good) // 2])
    bad_crc = bytearray(good)
    bad_crc[-8] ^= 0xFF  # CRC32 in the trailer
    with open(os.path.join(d, "badcrc.csv.gz"), "wb") as f:
        f.write(bytes(bad_crc))
    with open(os.path.join(d, "garbage.csv.gz"), "wb") as f:
        f.write(b"\x1f\x8b" + b"this is not deflate data at all" * 4)
    print("rows", 1000, "sum_b", sum(np.float32(i * 0.5) for i in range(1000)))


def write_npy(d):
    rng = np.random.default_rng(5)
    imgs = rng.integers(0, 17, size=(20, 1, 8, 8), dtype=np.uint8)
    np.save(os.path.join(d, "img_x.npy"), imgs)
    np.save(os.path.join(d, "img_y.npy"), (np.arange(20) % 10).astype(np.int32))
    np.save(os.path.join(d, "img_y64_col.npy"), (np.arange(20) % 10).astype(np.int64).reshape(20, 1))
    np.save(os.path.join(d, "img_y19.npy"), np.zeros(19, dtype=np.int64))
    np.save(os.path.join(d, "img_yneg.npy"), np.arange(20, dtype=np.int64) - 3)
    np.save(os.path.join(d, "img_y2d.npy"), np.zeros((20, 2), dtype=np.int64))
    reg_x = rng.standard_normal((7, 3))  # float64 -> float32
    np.save(os.path.join(d, "reg_x.npy"), reg_x)
    np.save(os.path.join(d, "reg_y.npy"), np.linspace(-1, 1, 7))
    np.save(os.path.join(d, "half_x.npy"), np.array([[0.5, -2.0], [65504.0, 1e-7]], dtype=np.float16))
    np.save(os.path.join(d, "vec_x.npy"), np.arange(4, dtype=np.int64))
    np.save(os.path.join(d, "vec_y.npy"), np.array([0, 1, 1, 0], dtype=np.uint8))
    nan_x = np.ones((3, 2), dtype=np.float32)
    nan_x[2, 1] = np.nan
    np.save(os.path.join(d, "nan_x.npy"), nan_x)
    np.save(os.path.join(d, "scalar.npy"), np.float32(3))
    np.save(os.path.join(d, "empty_x.npy"), np.zeros((0, 3), dtype=np.float32))
    # A single table: 3 features then the class, as float64 (e.g. np.c_[X, y]).
    both = np.c_[rng.standard_normal((6, 3)), np.array([0, 2, 1, 1, 0, 2])]
    np.save(os.path.join(d, "both.npy"), both)
    bad = both.copy()
    bad[4, 3] = 1.5
    np.save(os.path.join(d, "both_frac.npy"), bad)
    np.save(os.path.join(d, "both_int.npy"), np.arange(12, dtype=np.int32).reshape(4, 3))
    print("ok")


# --- independent implementation of the runtime's seeded shuffles ------------
M64 = (1 << 64) - 1


def splitmix(state):
    state[0] = (state[0] + 0x9E3779B97F4A7C15) & M64
    z = state[0]
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Rng:
    def __init__(self, seed):
        st = [seed & M64]
        self.s = [splitmix(st) for _ in range(4)]

    def next(self):
        s = self.s
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.next() >> 11) * 2.0**-53

    def index(self, n):
        return min(n - 1, int(self.uniform() * n))


def shuffle(v, rng):
    for i in range(len(v), 1, -1):
        j = rng.index(i)
        v[i - 1], v[j] = v[j], v[i - 1]


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def split(rows, frac, seed):
    perm = list(range(rows))
    shuffle(perm, Rng(seed))
    nval = math.floor(rows * frac + 0.5)  # llround for non-negative values
    return sorted(perm[nval:]), sorted(perm[:nval])


def epoch_order(rows, seed, epoch):
    order = list(rows)
    shuffle(order, Rng(mix64(seed ^ mix64((epoch + 0x9E3779B97F4A7C15) & M64))))
    return order


def write_perm(d):
    lines = []
    for rows, frac, seed in [(10, 0.3, 42), (1797, 0.2, 0), (5, 0.2, 2**64 - 1)]:
        train, val = split(rows, frac, seed)
        lines.append(" ".join(map(str, train)))
        lines.append(" ".join(map(str, val)))
    rows = [3, 5, 8, 13, 21, 34, 55, 89, 144, 233]
    for epoch in (0, 1, 7):
        lines.append(" ".join(map(str, epoch_order(rows, 1234, epoch))))
    # The raw integer draws sample_windows uses: Rng(99), n = 1000.
    r = Rng(99)
    lines.append(" ".join(str(r.index(1000)) for _ in range(16)))
    with open(os.path.join(d, "perm.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("ok")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "csv":
        read_csv(sys.argv[2], sys.argv[3])
    elif mode == "gzip":
        write_gzip(sys.argv[2])
    elif mode == "npy":
        write_npy(sys.argv[2])
    elif mode == "perm":
        write_perm(sys.argv[2])
    else:
        sys.exit(f"unknown mode {mode}")
