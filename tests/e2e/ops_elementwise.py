#!/usr/bin/env python3
"""End to end: CPU code generation of the elementwise op family (unary math and
activations, binary arithmetic with NumPy broadcasting, comparisons, logical
ops, Where, Clip, Cast) against NumPy.

Usage: ops_elementwise.py MITHRIL ROOT

Three models, one generated project each (builds are the expensive part): a
float32 model (every unary op, default and non-default arguments; every binary
op over the broadcasting shapes that matter to the loop emitter; bools; Where;
Cast between all five dtypes), a float64 model and an int32/int64 model. Every
layer writes its own model output.

The references are computed here in float64 (or exactly, for integers and
bools) from the ops' definitions, never from anything Mithril produced:
  - activations as PyTorch defines them: Gelu exact 0.5 x (1 + erf(x / sqrt 2)),
    Gelu tanh 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), Elu
    alpha (e^x - 1) for x <= 0, LeakyRelu negative_slope x for x <= 0,
    Softplus log(1 + e^(beta x)) / beta, and x where beta x > threshold;
  - Sign(0) is 0; Clip takes either bound or both;
  - integer Divide truncates toward zero, as C++ `/` does (the op's documented
    semantics: "left / right (integers: truncating)"), not NumPy's floor;
  - Cast is C++ static_cast: float to integer truncates toward zero, anything
    nonzero is true, int64 to int32 wraps modulo 2^32 (C++20), float64 to
    float32 rounds to nearest -- for the values used here the same as NumPy's
    astype.
The float32 model declares a symbolic batch dim N; it is also compiled with
`mithril compile --max N=4`, built with plain CMake and -Werror (the generated
code must be warning-free with a run-time dim), and run at N=3 and N=1.
"""
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Runner, runtime_prefix_arg  # noqa: E402

# Tolerances (rtol, atol): float results are compared with float64 references
# computed from the same (exactly representable) inputs. The std:: functions
# the generated code calls are accurate to about an ulp, so the transcendental
# ops meet the same tolerance as arithmetic. Integers and bools are exact, and
# so are float outputs that only select or convert (Maximum, Clip, Where, Cast...).
TOL = {np.dtype(np.float32): (1e-5, 1e-6), np.dtype(np.float64): (1e-12, 1e-14)}
EXACT = (0.0, 0.0)

F32, F64, I32, I64, BOOL = np.float32, np.float64, np.int32, np.int64, np.bool_

erf = np.vectorize(math.erf, otypes=[np.float64])


# ---- references from the definitions (float64 in, float64 out) ---------------------
def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def gelu(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def softplus(x, beta=1.0, threshold=20.0):
    with np.errstate(over="ignore"):
        soft = np.log1p(np.exp(beta * x)) / beta
    return np.where(beta * x > threshold, x, soft)


def elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(x))


def leaky_relu(x, slope=0.01):
    return np.where(x > 0, x, slope * x)


def trunc_div(a, b):
    """Integer division truncating toward zero (C++ semantics), exactly in int64."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q)


# Unary ops applied to a general float input: (op, output suffix, args, reference, exact).
def unary_table(relu_slope=0.2):
    return [
        ("Neg", "neg", None, lambda x: -x, True),
        ("Abs", "abs", None, np.abs, True),
        ("Sign", "sign", None, np.sign, True),
        ("Floor", "floor", None, np.floor, True),
        ("Ceil", "ceil", None, np.ceil, True),
        ("Relu", "relu", None, lambda x: np.maximum(x, 0), True),
        ("LeakyRelu", "leaky", None, leaky_relu, False),
        ("LeakyRelu", "leaky_s", {"negative_slope": relu_slope}, lambda x: leaky_relu(x, relu_slope), False),
        ("Elu", "elu", None, elu, False),
        ("Elu", "elu_a", {"alpha": 0.5}, lambda x: elu(x, 0.5), False),
        ("Gelu", "gelu", None, gelu, False),
        ("Gelu", "gelu_tanh", {"approximate": "tanh"}, lambda x: gelu(x, "tanh"), False),
        ("Silu", "silu", None, lambda x: x * sigmoid(x), False),
        ("Softplus", "softplus", None, softplus, False),
        # beta 2 and 0.5 make beta * x exact in float, so the branch taken is the reference's.
        ("Softplus", "softplus_b2t5", {"beta": 2, "threshold": 5}, lambda x: softplus(x, 2.0, 5.0), False),
        ("Softplus", "softplus_b05t1", {"beta": 0.5, "threshold": 1.0}, lambda x: softplus(x, 0.5, 1.0), False),
        ("Sigmoid", "sigmoid", None, sigmoid, False),
        ("Tanh", "tanh", None, np.tanh, False),
        ("Sin", "sin", None, np.sin, False),
        ("Cos", "cos", None, np.cos, False),
        ("Exp", "exp", None, np.exp, False),
        ("Erf", "erf", None, erf, False),
        ("Clip", "clip_min", {"min": -0.5}, lambda x: np.maximum(x, -0.5), True),
        ("Clip", "clip_max", {"max": 1.25}, lambda x: np.minimum(x, 1.25), True),
        ("Clip", "clip_both", {"min": -1, "max": 0.75}, lambda x: np.clip(x, -1.0, 0.75), True),
        ("Identity", "identity", None, lambda x: x, True),
        ("StopGradient", "stopgrad", None, lambda x: x, True),
    ]


# Unary ops whose domain is x > 0 (applied to a positive input).
POSITIVE_UNARY = [
    ("Log", "log", np.log),
    ("Sqrt", "sqrt", np.sqrt),
    ("Rsqrt", "rsqrt", lambda x: 1.0 / np.sqrt(x)),
    ("Reciprocal", "recip", lambda x: 1.0 / x),
]

BINARY = {  # op -> reference on float64 (or int64) operands
    "Add": np.add, "Subtract": np.subtract, "Multiply": np.multiply, "Divide": np.divide,
    "Power": np.power, "Maximum": np.maximum, "Minimum": np.minimum,
    "Greater": np.greater, "GreaterEqual": np.greater_equal, "Less": np.less,
    "LessEqual": np.less_equal, "Equal": np.equal, "NotEqual": np.not_equal,
    "And": np.logical_and, "Or": np.logical_or,
}
COMPARISONS = ["Greater", "GreaterEqual", "Less", "LessEqual", "Equal", "NotEqual"]
SELECTING = {"Maximum", "Minimum"}


class Model:
    """Inputs, layers (JSON flow mappings) and references of one model."""

    def __init__(self, name):
        self.name = name
        self.inputs = {}    # name -> example array
        self.symbolic = {}  # name -> declared shape text, where it differs from the array's
        self.layers = []
        self.refs = {}      # output -> (expected dtype, reference array, (rtol, atol))

    def inp(self, name, a, shape=None):
        self.inputs[name] = np.asarray(a)
        if shape:
            self.symbolic[name] = shape
        return name

    def val(self, name):
        """An input as a float64 (floats) / int64 (integers) / bool array for the references."""
        a = self.inputs[name]
        return a.astype(F64) if a.dtype.kind == "f" else a.astype(I64) if a.dtype.kind == "i" else a

    def add(self, op, out, want, dtype, args=None, exact=False, **ports):
        d = {"op": op, "name": out}
        if args:
            d["args"] = args
        d.update(ports)
        d["output"] = out
        self.layers.append(json.dumps(d))
        dtype = np.dtype(dtype)
        want = np.asarray(want)
        if dtype.kind == "f":
            tol = EXACT if exact else TOL[dtype]
            want = want.astype(F64)
        else:
            tol = EXACT
            if dtype.kind == "i":
                info = np.iinfo(dtype)
                assert want.min(initial=0) >= info.min and want.max(initial=0) <= info.max, out
            want = want.astype(dtype)
        self.refs[out] = (dtype, want, tol)

    def binary(self, op, out, left, right, dtype=None):
        """A binary layer over two inputs; the reference from BINARY (integer Divide truncates)."""
        l, r = self.val(left), self.val(right)
        in_dt = self.inputs[left].dtype
        if op == "Divide" and in_dt.kind == "i":
            want = trunc_div(l, r)
        else:
            want = BINARY[op](l, r)
        if dtype is None:
            dtype = BOOL if op in COMPARISONS else in_dt
        self.add(op, out, want, dtype, exact=op in SELECTING or in_dt.kind != "f", left=left, right=right)

    def text(self):
        lines = [f"name: {self.name}", "inputs:"]
        for n, a in self.inputs.items():
            shape = self.symbolic.get(n, str(list(a.shape)))
            lines.append(f"  {n}: {{shape: {shape}, dtype: {a.dtype.name}}}")
        lines.append(f"outputs: [{', '.join(self.refs)}]")
        lines.append("layers:")
        lines += [f"  - {l}" for l in self.layers]
        return "\n".join(lines) + "\n"


def general_float(rng, shape, dt):
    """Normal * 3 with the boundary values of Sign/Relu/Floor/Ceil/Clip planted at the front."""
    x = (rng.standard_normal(shape) * 3).astype(dt)
    special = np.array([0.0, -0.0, 2.0, -2.0, 0.5, -1.5, -0.5, 1.25, 0.75, -1.0, 1e-3, -7.0], dtype=dt)
    x.flat[:special.size] = special
    return x


def nonzero(rng, shape, dt, lo=0.5, hi=2.0):
    """Values with |v| in [lo, hi] and random sign: divisors."""
    return (rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape)).astype(dt)


def float32_model(N):
    """Every unary op, binary broadcasting cases, bools, Where, Cast. N is the symbolic batch."""
    rng = np.random.default_rng(20241124)
    m = Model("ops_elementwise_f32")
    x = m.inp("x", general_float(rng, (N, 3, 5), F32), "[N, 3, 5]")
    x2 = m.inp("x2", rng.standard_normal((N, 3, 5)).astype(F32), "[N, 3, 5]")
    pos = m.inp("pos", rng.uniform(0.05, 4.0, (N, 3, 5)).astype(F32), "[N, 3, 5]")
    a = m.inp("a", rng.standard_normal((N, 1, 5)).astype(F32), "[N, 1, 5]")
    b = m.inp("b", rng.standard_normal((3, 1)).astype(F32))
    bd = m.inp("bd", nonzero(rng, (3, 1), F32))
    s = m.inp("s", np.array(1.75, dtype=F32))
    mm = m.inp("m", rng.standard_normal((4, 2)).astype(F32))
    mpos = m.inp("mpos", rng.uniform(0.1, 3.0, (4, 2)).astype(F32))
    one = m.inp("one11", np.array([[-0.625]], dtype=F32))
    c3 = m.inp("c3", rng.standard_normal((3, 1, 5)).astype(F32))
    v5 = m.inp("v5", nonzero(rng, (5,), F32))
    r1 = m.inp("r1", rng.standard_normal((2, 1)).astype(F32))
    r2 = m.inp("r2", rng.standard_normal((1, 3)).astype(F32))
    # Few distinct values, so that Equal/GreaterEqual/LessEqual meet equal operands.
    ka = m.inp("ka", (rng.integers(-2, 3, (N, 1, 5)) / 2).astype(F32), "[N, 1, 5]")
    kb = m.inp("kb", (rng.integers(-2, 3, (3, 1)) / 2).astype(F32))
    p = m.inp("p", rng.random((N, 3, 5)) < 0.5, "[N, 3, 5]")
    p2 = m.inp("p2", rng.random((N, 3, 5)) < 0.5, "[N, 3, 5]")
    q = m.inp("q", np.array([[True], [False], [True]]))

    # Unary.
    for op, suffix, args, ref, exact in unary_table():
        m.add(op, suffix, ref(m.val(x)), F32, args, exact, input=x)
    for op, suffix, ref in POSITIVE_UNARY:
        m.add(op, suffix, ref(m.val(pos)), F32, input=pos)

    # Binary: [N, 1, 5] with [3, 1] -> [N, 3, 5] (both operands broadcast), and reversed.
    for op in ("Add", "Subtract", "Multiply", "Maximum", "Minimum"):
        m.binary(op, f"{op.lower()}_ab", a, b)
    m.binary("Subtract", "subtract_ba", b, a)
    m.binary("Divide", "divide_abd", a, bd)
    m.binary("Divide", "divide_bda", bd, a)  # a is never 0 here (normal samples)
    m.binary("Power", "power_pb", pos, b)    # [N, 3, 5] ^ [3, 1]
    # A scalar [] with [4, 2], on either side.
    for op in ("Add", "Subtract", "Multiply", "Maximum", "Minimum"):
        m.binary(op, f"{op.lower()}_ms", mm, s)
        m.binary(op, f"{op.lower()}_sm", s, mm)
    m.binary("Divide", "divide_ms", mm, s)
    m.binary("Divide", "divide_sm", s, mpos)
    m.binary("Power", "power_ms", mpos, s)
    m.binary("Power", "power_sm", s, mm)
    # [1, 1] with [4, 2]: a one-element operand of another rank.
    m.binary("Multiply", "multiply_1m", one, mm)
    m.binary("Subtract", "subtract_m1", mm, one)
    # [3, 1, 5] with [5]: an output axis of size 1 that no operand indexes.
    m.binary("Add", "add_c3v", c3, v5)
    m.binary("Divide", "divide_c3v", c3, v5)
    m.binary("Multiply", "multiply_vc3", v5, c3)
    m.binary("Maximum", "maximum_vc3", v5, c3)
    # [2, 1] with [1, 3] -> [2, 3].
    m.binary("Subtract", "subtract_r12", r1, r2)
    m.binary("Power", "power_r", mpos, mpos)  # same shapes, positive base
    # Same shapes (the flat loop).
    for op in ("Add", "Subtract", "Multiply", "Maximum", "Minimum"):
        m.binary(op, f"{op.lower()}_xx", x, x2)
    m.binary("Divide", "divide_xp", x, pos)
    m.binary("Power", "power_px", pos, x2)
    # Comparisons -> bool: broadcast, same shape, with a scalar.
    for op in COMPARISONS:
        m.binary(op, f"{op.lower()}_k", ka, kb)
        m.binary(op, f"{op.lower()}_kr", kb, ka)
    for op in ("Greater", "LessEqual", "Equal", "NotEqual"):
        m.binary(op, f"{op.lower()}_xx2", x, x2)
    m.binary("Greater", "greater_ms", mm, s)
    m.binary("LessEqual", "lessequal_sm", s, mm)
    # Bools: Not, And, Or, Equal/NotEqual, broadcast and flat.
    P, P2, Q = m.val(p), m.val(p2), m.val(q)
    m.add("Not", "not_p", ~P, BOOL, input=p)
    m.add("Not", "not_q", ~Q, BOOL, input=q)
    m.add("Identity", "identity_p", P, BOOL, input=p)
    m.add("StopGradient", "stopgrad_q", Q, BOOL, input=q)
    m.binary("And", "and_pq", p, q)
    m.binary("Or", "or_qp", q, p)
    m.binary("And", "and_pp", p, p2)
    m.binary("Or", "or_pp", p, p2)
    m.binary("Equal", "equal_pq", p, q)
    m.binary("NotEqual", "notequal_pp", p, p2)
    # Chains: a comparison feeding Not, And and Where.
    K_GT = m.val(ka) > m.val(kb)
    m.add("Not", "not_gt", ~K_GT, BOOL, input="greater_k")
    m.add("And", "and_gt_p", K_GT & P, BOOL, left="greater_k", right=p)
    # Where with broadcasting: [3, 1] ? [N, 1, 5] : [] -> [N, 3, 5]; flat; comparison condition.
    m.add("Where", "where_qas", np.where(Q, m.val(a), m.val(s)), F32, exact=True, condition=q, left=a, right=s)
    m.add("Where", "where_px", np.where(P, m.val(x), m.val(x2)), F32, exact=True, condition=p, left=x, right=x2)
    m.add("Where", "where_gt", np.where(K_GT, m.val(x), m.val(b)), F32, exact=True,
          condition="greater_k", left=x, right=b)
    m.add("Where", "where_bool", np.where(Q, P, P2), BOOL, condition=q, left=p, right=p2)
    m.add("Where", "where_s", np.where(P, m.val(s), m.val(b)), F32, exact=True, condition=p, left=s, right=b)

    # Cast between all five dtypes. Values: in range for every target, with fractions of
    # both signs (truncation), zeros (bool false), and values that round or wrap.
    cf = np.array([0.0, -0.0, 0.25, -0.25, 1.5, -1.5, 2.75, -2.75, 7.0, -7.0, 100.9, -100.9,
                   1e6 + 0.5, -123456.75, 3.0e5, -2.0e9], dtype=F32).reshape(4, 4)
    cd = np.array([0.0, -0.0, 0.1, -0.1, 1.0 / 3.0, -2.5, 2.5, 1e10 + 1.0, -1e10 - 0.75, 16777217.0,
                   -7.999, 1e-30, 65504.7, -1234567.891, 2.0 ** 40 + 0.5, 42.0], dtype=F64).reshape(4, 4)
    ci = np.array([0, 1, -1, 7, -7, 16777217, -16777217, 2 ** 31 - 1, -2 ** 31, 123456789, -5, 99,
                   2 ** 24, 3, -100, 65536], dtype=I32).reshape(4, 4)
    cl = np.array([0, 1, -1, 2 ** 40 + 3, -(2 ** 33) - 7, 2 ** 53 + 1, -(2 ** 53) - 1, 2 ** 31, -(2 ** 31) - 1,
                   2 ** 62, -(2 ** 62) + 5, 12345, -67890, 2 ** 24 + 1, 2 ** 32 + 17, 9], dtype=I64).reshape(4, 4)
    cb = np.array([True, False, True, True, False, False, True, False, True, True, False, True,
                   False, True, False, False]).reshape(4, 4)
    sources = {"cf": cf, "cd": cd, "ci": ci, "cl": cl, "cb": cb}
    for n, arr in sources.items():
        m.inp(n, arr)
    for n, arr in sources.items():
        for t in (F32, F64, I32, I64, BOOL):
            t = np.dtype(t)
            if arr.dtype.kind == "f" and t.kind == "i":
                if n == "cd" and t == I32:
                    continue  # cd holds values beyond int32 (out of range float to int is undefined); see cd32
                want = np.trunc(arr.astype(F64))
                assert np.all(want >= np.iinfo(t).min) and np.all(want <= np.iinfo(t).max)
                want = want.astype(t)
            elif t == BOOL:
                want = arr != 0
            elif arr.dtype == I64 and t == I32:
                want = (arr.astype(np.uint64) & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.int32)  # mod 2^32
            else:
                want = arr.astype(t)  # floats round to nearest, integers exact, bools 0 / 1
            # Exact: the converted value (float32 rounding included) is the expectation.
            m.add("Cast", f"cast_{n}_{t.name}", want.astype(t), t, {"dtype": t.name}, exact=True, input=n)
    # A float64 cast to int32 with values in range.
    cd32 = m.inp("cd32", np.array([[0.9, -0.9, 2147483647.5, -2147483648.75], [3.5, -3.5, 1e9 + 0.25, -17.0]]))
    m.add("Cast", "cast_cd32_i32", np.trunc(m.val(cd32)).astype(I32), I32, {"dtype": "int32"}, input=cd32)
    return m


def float64_model():
    rng = np.random.default_rng(64)
    m = Model("ops_elementwise_f64")
    x = m.inp("x", general_float(rng, (2, 3, 4), F64))
    x2 = m.inp("x2", rng.standard_normal((2, 3, 4)))
    pos = m.inp("pos", rng.uniform(0.05, 4.0, (2, 3, 4)))
    a = m.inp("a", rng.standard_normal((2, 1, 4)))
    b = m.inp("b", nonzero(rng, (3, 1), F64))
    s = m.inp("s", np.array(-0.375))
    c3 = m.inp("c3", rng.standard_normal((3, 1, 4)))
    v4 = m.inp("v4", nonzero(rng, (4,), F64))
    ka = m.inp("ka", rng.integers(-2, 3, (2, 1, 4)) / 4.0)
    kb = m.inp("kb", rng.integers(-2, 3, (3, 1)) / 4.0)
    q = m.inp("q", np.array([[False], [True], [True]]))

    for op, suffix, args, ref, exact in unary_table(relu_slope=0.125):
        m.add(op, suffix, ref(m.val(x)), F64, args, exact, input=x)
    for op, suffix, ref in POSITIVE_UNARY:
        m.add(op, suffix, ref(m.val(pos)), F64, input=pos)
    for op in ("Add", "Subtract", "Multiply", "Divide", "Maximum", "Minimum"):
        m.binary(op, f"{op.lower()}_ab", a, b)        # [2, 1, 4] with [3, 1]
        m.binary(op, f"{op.lower()}_xs", x, s)        # with a scalar
        m.binary(op, f"{op.lower()}_c3v", c3, v4)     # [3, 1, 4] with [4]
        m.binary(op, f"{op.lower()}_xx", x, x2)       # same shapes
    m.binary("Subtract", "subtract_sx", s, x)
    m.binary("Divide", "divide_sb", s, b)
    m.binary("Power", "power_pb", pos, b)
    m.binary("Power", "power_px", pos, x2)
    m.binary("Power", "power_ps", pos, s)
    for op in COMPARISONS:
        m.binary(op, f"{op.lower()}_k", ka, kb)
    m.add("Where", "where_qas", np.where(m.val(q), m.val(a), m.val(s)), F64, exact=True, condition=q, left=a, right=s)
    m.add("Where", "where_gt", np.where(m.val(ka) > m.val(kb), m.val(a), m.val(b)), F64, exact=True,
          condition="greater_k", left=a, right=b)
    return m


def int_model():
    rng = np.random.default_rng(3232)
    m = Model("ops_elementwise_int")
    # int32: [2, 1, 5] with [3, 1], a scalar, same shapes. Divisors are never 0 (ia is one:
    # no zeros there), and no result leaves its type's range.
    ia0 = rng.integers(-20, 21, (2, 1, 5))
    ia = m.inp("ia", np.where(ia0 == 0, 13, ia0).astype(I32))
    ib = m.inp("ib", np.array([[3], [-4], [7]], dtype=I32))
    ic = m.inp("ic", rng.integers(-9, 10, (3, 1)).astype(I32))
    isc = m.inp("isc", np.array(-6, dtype=I32))
    ixv = rng.integers(-1000, 1001, (2, 3, 5))
    ixv.flat[:8] = [0, 1, -1, 3, -3, 4, -4, 1000]  # zeros for Sign/Relu, the Clip bounds themselves
    ix = m.inp("ix", ixv.astype(I32))
    iy = m.inp("iy", nonzero(rng, (2, 3, 5), F64, 1, 60).astype(I32))
    # int64: values beyond int32, products beyond 2^53 (where a detour through double would show).
    lav = rng.integers(-2 * 10 ** 9, 2 * 10 ** 9, (4, 3))
    lav.flat[:3] = [0, -1999999999, 1999999999]
    la = m.inp("la", lav.astype(I64))
    lb = m.inp("lb", np.array([3, -7, 1000000007], dtype=I64))
    lzv = rng.integers(-5 * 10 ** 12, 5 * 10 ** 12, (4, 3))
    lzv.flat[:5] = [0, 1, -1, 10 ** 12, -(10 ** 12)]
    lz = m.inp("lz", lzv.astype(I64))
    big = 1500000001  # (2 * big)^2 < 2^63
    lk = m.inp("lk", rng.integers(-2, 3, (4, 1)).astype(I64) * big)
    lk2 = m.inp("lk2", rng.integers(-2, 3, (1, 3)).astype(I64) * big)

    for t, n, lo, hi in ((I32, ix, -3, 4), (I64, lz, -10 ** 12, 2 * 10 ** 12)):
        v = m.val(n)
        m.add("Neg", f"neg_{n}", -v, t, input=n)
        m.add("Abs", f"abs_{n}", np.abs(v), t, input=n)
        m.add("Relu", f"relu_{n}", np.maximum(v, 0), t, input=n)
        m.add("Sign", f"sign_{n}", np.sign(v), t, input=n)
        m.add("Clip", f"clip_min_{n}", np.maximum(v, lo), t, {"min": lo}, input=n)
        m.add("Clip", f"clip_max_{n}", np.minimum(v, hi), t, {"max": hi}, input=n)
        m.add("Clip", f"clip_both_{n}", np.clip(v, lo, hi), t, {"min": lo, "max": hi}, input=n)
        m.add("Identity", f"identity_{n}", v, t, input=n)
    for out, (op, l, r) in {
        "add_ab": ("Add", ia, ib), "subtract_ab": ("Subtract", ia, ib), "subtract_ba": ("Subtract", ib, ia),
        "multiply_ab": ("Multiply", ia, ib), "divide_ab": ("Divide", ia, ib), "divide_ba": ("Divide", ib, ia),
        "maximum_ab": ("Maximum", ia, ic), "minimum_ab": ("Minimum", ic, ia),
        "add_as": ("Add", ia, isc), "divide_as": ("Divide", ia, isc), "divide_sb": ("Divide", isc, ib),
        "multiply_sa": ("Multiply", isc, ia), "subtract_sa": ("Subtract", isc, ia),
        "divide_xy": ("Divide", ix, iy), "divide_yx": ("Divide", iy, ib),
        "add_xy": ("Add", ix, iy), "multiply_xy": ("Multiply", ix, iy),
        "maximum_xy": ("Maximum", ix, iy), "minimum_xy": ("Minimum", ix, iy),
        # int64, [4, 3] with [3]; products beyond 2^53 must stay exact.
        "l_add": ("Add", la, lb), "l_subtract": ("Subtract", lb, la), "l_multiply": ("Multiply", la, lb),
        "l_divide": ("Divide", la, lb),
        "l_maximum": ("Maximum", la, lb), "l_minimum": ("Minimum", lb, la),
        "l_divide_z": ("Divide", lz, lb), "l_multiply_kk": ("Multiply", lk, lk2),
    }.items():
        m.binary(op, out, l, r)
    for op in COMPARISONS:
        m.binary(op, f"{op.lower()}_ac", ia, ic)
        m.binary(op, f"l_{op.lower()}_kk", lk, lk2)
    m.add("Where", "where_i", np.where(m.val(ia) > m.val(ic), m.val(ia), m.val(isc)), I32,
          condition="greater_ac", left=ia, right=isc)
    m.add("Where", "l_where", np.where(m.val(lk) >= m.val(lk2), m.val(la), m.val(lb)), I64,
          condition="l_greaterequal_kk", left=la, right=lb)
    return m


def compare(r, got, refs, tag=""):
    for name, (dtype, want, (rtol, atol)) in refs.items():
        what = f"{tag}{name}"
        g = None if got is None else got.get(name)
        if g is not None and g.dtype != dtype:
            r.failures.append(f"{what}: dtype {g.dtype}, expected {dtype}")
            continue
        if g is not None and dtype.kind == "f" and g.shape == want.shape:
            if (rtol, atol) == EXACT:
                if not np.array_equal(g.astype(F64), want, equal_nan=True):
                    r.failures.append(f"{what}: not exact, max abs error "
                                      f"{np.nanmax(np.abs(g.astype(F64) - want)):.3g}")
                else:
                    print(f"ok   {what} (exact)")
                continue
            err = np.abs(g.astype(F64) - want)
            worst = float(np.max(err / (atol + rtol * np.abs(want)))) if g.size else 0.0
            if float(err.max(initial=0)) >= r.max_err.get(dtype.name, (0.0, ""))[0]:
                r.max_err[dtype.name] = float(err.max(initial=0)), what
            r.max_ratio = max(r.max_ratio, (worst, what))
        r.check(what, g, want, rtol, atol)


def run_model(r, m):
    got = r.run(m.text(), m.inputs, name=m.name)
    if got is None:
        r.failures.append(f"{m.name}: no outputs")
    compare(r, got, m.refs)
    return len(m.refs)


def symbolic(r, tmp):
    """The float32 model with N left to run time: -Werror build, then N=3 and N=1."""
    m = float32_model(2)
    proj = os.path.join(tmp, "sym")
    model = os.path.join(tmp, f"{m.name}.yaml")
    with open(model, "w") as f:
        f.write(m.text())
    c = subprocess.run([r.mithril, "compile", model, "-o", proj, "--max", "N=4"], capture_output=True, text=True)
    if c.returncode != 0:
        r.failures.append(f"symbolic: mithril compile failed: {c.stderr}")
        return
    b = subprocess.run(f"cmake -S {proj} -B {proj}/b {shlex.quote(runtime_prefix_arg(r.mithril))} -DCMAKE_CXX_FLAGS=-Werror > {proj}/build.log 2>&1 && "
                       f"cmake --build {proj}/b -j 2 >> {proj}/build.log 2>&1", shell=True)
    if b.returncode != 0:
        log = open(os.path.join(proj, "build.log"), errors="replace").read()
        r.failures.append(f"symbolic: the --max N=4 project does not build with -Werror:\n{log[-3000:]}")
        return
    print("ok   symbolic: --max N=4 project builds with -Werror")
    for n in (3, 1):
        m = float32_model(n)
        got = r.run_binary(os.path.join(proj, "b", m.name), m.inputs, f"symbolic N={n}")
        if got is None:
            continue
        compare(r, got, m.refs, f"N={n} ")


def main():
    mithril, _root = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        r = Runner(mithril, tmp)
        r.max_err, r.max_ratio = {}, (0.0, "")
        count = 0
        for m in (float32_model(2), float64_model(), int_model()):
            count += run_model(r, m)
        symbolic(r, tmp)
        print(f"{count} outputs checked in three models (float32 also at N=3 and N=1 from one --max N=4 build)")
        for dt, (e, what) in sorted(r.max_err.items()):
            print(f"max abs error {dt}: {e:.3g} ({what})")
        print(f"worst |error| / (atol + rtol |ref|): {r.max_ratio[0]:.3g} ({r.max_ratio[1]})")
        return r.finish()


if __name__ == "__main__":
    sys.exit(main())
