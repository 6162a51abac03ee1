#!/usr/bin/env python3
"""Hostile model files, as an attacker or a broken exporter would write them.

Makes about 150 files (names that try to escape into the generated code, sizes
that overflow, expansions that explode, files that are not files) in a
temporary folder and runs `mithril check` and `mithril compile` on each. Every
file must give exit 0 or one clean error (exit 1, one `error:` line, never an
internal compiler error or a signal) within 30 seconds, and nothing a file says
may run: the commands the payloads try to run would create PWNED files.

    hostile_corpus.py MITHRIL [--keep DIR]    (--keep writes the corpus to DIR and keeps it)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

# Strings that try to end a C++ string literal, a comment or a line, or to be a macro or keyword.
PAYLOADS = {
    "quote": 'x"); std::system("touch PWNED_quote"); ("',
    "ternary": 'x"[0] == 0 ? "" : std::system("touch PWNED_ternary") ? "z" : "',
    "backslash_end": "tail\\",
    "backslash_quote": 'a\\"; int pwned = std::system("touch PWNED_bsq"); //',
    "comment_end": "*/ int x = std::system(\"touch PWNED_comment\"); /*",
    "trigraph": "a??/",
    "trigraph_quote": '??/" ); std::system("touch PWNED_tri"); //',
    "include": '#include "/etc/passwd"',
    "raw_string": ')"; std::system("touch PWNED_raw"); R"(',
    "utf8": "caf\u00e9 \u4e2d\u6587 \U0001f600",
    "keyword_and": "and",
    "keyword_int": "int",
    "macro_eof": "EOF",
    "macro_errno": "errno",
    "macro_linux": "linux",
    "reserved": "__LINE__",
    "main": "main",
    "percent": "%s%n%x{}{0}",
    "long": "n" * 5000,
}
# Bytes that are refused in names (control characters, invalid UTF-8).
REFUSED = {"newline": "a\nstd::system(\"touch PWNED_nl\");//", "cr": "a\rb", "tab": "a\tb", "nul": "a\x00b", "esc": "a\x1b[31mred"}


def q(s):
    return json.dumps(s)  # a JSON string is a YAML double-quoted scalar


def model(layer_name="fc", input_name="input", output_name=None, param=None, model_name="m", sub=None, dim="N"):
    lines = [f"name: {q(model_name)}", "inputs:", f"  {q(input_name)}: {{shape: [{q(dim)}, 4]}}"]
    if output_name is not None:
        lines.append(f"outputs: [{q(output_name)}]")
    if param is not None:
        lines += ["params:", f"  {q(param)}: {{shape: [3], init: {{kind: ones}}}}"]
    if sub is not None:
        lines += ["models:", f"  {q(sub)}:", "    layers:", "      - {op: Relu}"]
    lines.append("layers:")
    first = f"input: {q(input_name)}, " if input_name != "input" else ""
    lines.append(f"  - {{op: Linear, name: {q(layer_name)}, {first}args: {{dimension: 3}}}}")
    if param is not None:
        lines.append(f"  - {{op: Add, right: {q(param)}}}")
    if sub is not None:
        lines.append(f"  - {{op: {q(sub)}}}")
    out = f", output: {q(output_name)}" if output_name is not None else ""
    lines.append(f"  - {{op: Relu, name: r{out}}}")
    return "\n".join(lines) + "\n"


def corpus():
    """(file name, bytes, expected: None for exit 0 or 1, else a substring of the error)."""
    files = []
    places = {
        "layer": lambda s: model(layer_name=s),
        "input": lambda s: model(input_name=s),
        "output": lambda s: model(output_name=s),
        "param": lambda s: model(param=s),
        "model": lambda s: model(model_name=s),
        "composite": lambda s: model(sub=s),
    }
    for place, make in places.items():
        for name, payload in PAYLOADS.items():
            files.append((f"name_{place}_{name}.yaml", make(payload).encode(), None))
        for name, payload in REFUSED.items():
            files.append((f"refused_{place}_{name}.yaml", make(payload).encode(), "control character"))
        files.append((f"refused_{place}_latin1.yaml", make("PLACEHOLDER").replace("PLACEHOLDER", "caf\xe9").encode("latin-1"), "UTF-8"))
    for name in ["and", "int", "EOF", "errno", "linux", "main", "NULL", "I"]:
        files.append((f"dim_{name}.yaml", model(dim=name).encode(), None))
    files.append(("dim_quote.yaml", model(dim='N"x').encode(), "plain name"))
    files.append(("init_kind_injection.yaml",
                  b'name: m\ninputs:\n  input: {shape: [3]}\nparams:\n  w: {shape: [3], init: {kind: "x\\"); system(\\"touch PWNED_init\\"); //"}}\n'
                  b"layers:\n  - {op: Add, right: w}\n", "unknown initializer"))
    files.append(("init_std_inf.yaml",
                  b"name: m\ninputs:\n  input: {shape: [3]}\nparams:\n  w: {shape: [3], init: {kind: normal, std: .inf}}\n"
                  b"layers:\n  - {op: Add, right: w}\n", None))
    files.append(("float_arg_inf.yaml", b"name: m\ninputs:\n  input: {shape: [N, 4]}\nlayers:\n  - {op: LeakyRelu, args: {negative_slope: .inf}}\n", None))
    files.append(("float_arg_nan.yaml", b"name: m\ninputs:\n  input: {shape: [N, 4]}\nlayers:\n  - {op: Elu, args: {alpha: .nan}}\n", None))

    # Sizes.
    def seq(layers, shape="[N, 4]", extra=""):
        return f"name: s\ninputs:\n  input: {{shape: {shape}}}\n{extra}layers:\n{layers}".encode()

    big = {
        "linear_2p62": ("  - {op: Linear, args: {dimension: 4611686018427387904}}\n", "elements"),
        "linear_2p63": ("  - {op: Linear, args: {dimension: 9223372036854775808}}\n", "error"),
        "linear_1e300": ("  - {op: Linear, args: {dimension: 1.0e300}}\n", "dimension"),
        "linear_negative": ("  - {op: Linear, args: {dimension: -5}}\n", "error"),
        "linear_huge_digits": ("  - {op: Linear, args: {dimension: 99999999999999999999999999999}}\n", "error"),
        "conv_kernel_huge": ("  - {op: Conv2d, args: {out_channels: 4, kernel_size: 4611686018427387904}}\n", "error"),
        "conv_stride_zero": ("  - {op: Conv2d, args: {out_channels: 4, kernel_size: 3, stride: 0}}\n", "error"),
        "conv_dilation_huge": ("  - {op: Conv2d, args: {out_channels: 4, kernel_size: 3, dilation: 4611686018427387904}}\n", "error"),
        "embedding_huge": ("  - {op: Embedding, args: {num_embeddings: 4611686018427387904, dimension: 4}}\n", "error"),
        "reshape_huge": ("  - {op: Reshape, args: {shape: [4611686018427387904, 4611686018427387904]}}\n", "error"),
        "reshape_minus": ("  - {op: Reshape, args: {shape: [-1, -1]}}\n", "error"),
        "repeat_huge": ("  - {op: Relu, repeat: 1000000000000000}\n", "limit"),
        "repeat_2p63": ("  - {op: Relu, repeat: 9223372036854775807}\n", "limit"),
        "repeat_zero": ("  - {op: Relu, repeat: 0}\n", "repeat"),
        "repeat_expr_overflow": ("  - {op: Relu, repeat: \"$9223372036854775807 + 1\"}\n", "does not fit"),
    }
    for name, (layers, want) in big.items():
        shape = "[N, 3, 8, 8]" if "conv" in name else "[N, 4]"
        if "embedding" in name:
            files.append((f"size_{name}.yaml", seq(layers, "[N, 4]").replace(b"shape: [N, 4]}", b"shape: [N, 4], dtype: int64}"), want))
        else:
            files.append((f"size_{name}.yaml", seq(layers, shape), want))
    files.append(("size_input_huge.yaml", seq("  - Relu\n", "[9223372036854775807, 9223372036854775807]"), "elements"))
    files.append(("size_input_zero_huge.yaml", seq("  - Relu\n", "[0, 9223372036854775807, 9223372036854775807]"), None))
    files.append(("size_flatten_overflow.yaml", seq("  - Flatten\n", "[4, 4611686018427387904, 4]"), "does not fit"))
    files.append(("size_concat_overflow.yaml",
                  b"name: c\ninputs:\n  a: {shape: [4611686018427387904]}\n  b: {shape: [4611686018427387904]}\nlayers:\n"
                  b"  - {op: Concat, input: [a, b], args: {axis: 0}}\n", "error"))
    exprs = {
        "mul_overflow": ("$k * k", {"k": 4294967296}, "does not fit"),
        "min_div": ("$m // -1", {"m": -9223372036854775808}, "does not fit"),
        "min_mod": ("$m % -1 + 3", {"m": -9223372036854775808}, None),
        "min_neg": ("$-m", {"m": -9223372036854775808}, "does not fit"),
        "div_zero": ("$k // 0", {"k": 4}, "division by zero"),
        "deep_parens": ("$" + "(" * 5000 + "1" + ")" * 5000, {"k": 1}, "nested more than"),
        "deep_minus": ("$" + "-" * 20000 + "1", {"k": 1}, "nested more than"),
        "deep_not": ("$" + "not " * 3000 + "true", {"k": 1}, "nested more than"),
        "unclosed": ("$(((k", {"k": 1}, "missing ')'"),
        "garbage": ("$k $$ k", {"k": 1}, "unexpected"),
    }
    for name, (expr, args, want) in exprs.items():
        arg_text = ", ".join(f"{k}: {v}" for k, v in args.items())
        text = (f"name: e\nargs: {{{arg_text}}}\ninputs:\n  input: {{shape: [N, 4]}}\nlayers:\n"
                f"  - {{op: Linear, args: {{dimension: {q(expr)}}}}}\n")
        files.append((f"expr_{name}.yaml", text.encode(), want))

    # Expansion.
    exp = "models:\n  M0:\n    layers: [Relu]\n" + "".join(f"  M{i}:\n    layers: [M{i-1}, M{i-1}]\n" for i in range(1, 61))
    files.append(("expand_exponential.yaml", b"name: x\ninputs:\n  input: {shape: [N, 4]}\n" + exp.encode() + b"layers: [M60]\n", "limit"))
    nested = "models:\n  A:\n    layers:\n      - {op: Relu, repeat: 1000}\n  B:\n    layers:\n      - {op: A, repeat: 1000}\n"
    files.append(("expand_nested_repeat.yaml", b"name: x\ninputs:\n  input: {shape: [N, 4]}\n" + nested.encode() + b"layers:\n  - {op: B, repeat: 1000}\n", "limit"))
    empty = "models:\n  E0:\n    layers:\n      - {op: Relu, if: false}\n      - Identity\n" + "".join(
        f"  E{i}:\n    layers: [E{i-1}, E{i-1}]\n" for i in range(1, 61))
    files.append(("expand_exponential_empty.yaml", b"name: x\ninputs:\n  input: {shape: [N, 4]}\n" + empty.encode() + b"layers: [E60]\n", "limit"))
    chain = "models:\n  C0:\n    layers: [Relu]\n" + "".join(f"  C{i}:\n    layers: [C{i-1}]\n" for i in range(1, 100))
    files.append(("expand_deep_chain.yaml", b"name: x\ninputs:\n  input: {shape: [N, 4]}\n" + chain.encode() + b"layers: [C99]\n", "composites deep"))
    files.append(("expand_self.yaml", b"name: x\ninputs:\n  input: {shape: [N, 4]}\nmodels:\n  R:\n    layers: [R]\nlayers: [R]\n", "instantiates itself"))
    lol = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join(["*" + chr(96 + i)] * 10) + "]\n" for i in range(1, 9))
    files.append(("yaml_billion_laughs.yaml", lol.encode(), "aliases"))
    files.append(("yaml_laughs_in_layers.yaml",
                  ("x: &x [Relu, Relu, Relu, Relu, Relu, Relu, Relu, Relu]\n" + "".join(
                      f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1 if i > 1 else ''}"] * 8) + "]\n" for i in range(1, 8)) +
                   "name: m\ninputs:\n  input: {shape: [N, 4]}\nlayers: *x7\n").encode(), "error"))
    files.append(("yaml_deep_300.yaml", ("a: " + "[" * 300 + "]" * 300 + "\n").encode(), "nested more than"))
    files.append(("yaml_deep_100k.yaml", ("a: " + "[" * 100000 + "]" * 100000 + "\n").encode(), "error"))
    files.append(("yaml_deep_maps.yaml", ("".join("  " * i + f"k{i}:\n" for i in range(400)) + "  " * 400 + "v: 1\n").encode(), "nested more than"))
    files.append(("json_deep.json", ("[" * 100000 + "]" * 100000).encode(), "error"))
    files.append(("json_deep_objects.json", ('{"a":' * 50000 + "1" + "}" * 50000).encode(), "error"))
    files.append(("json_huge_number.json", b'{"name": "m", "inputs": {"input": {"shape": [1e400, 4]}}, "layers": ["Relu"]}', "error"))
    files.append(("json_big_int.json", b'{"name": "m", "inputs": {"input": {"shape": [18446744073709551615, 4]}}, "layers": ["Relu"]}', "too large"))
    files.append(("json_bad_utf8.json", b'{"name": "m\xff\xfe", "inputs": {"input": {"shape": [2, 4]}}, "layers": ["Relu"]}', "error"))
    files.append(("utf8_doc.yaml", b'name: m\ninputs:\n  input: {shape: [N, 4]}\nlayers: [Relu]\ndoc: "\xff\xfe"\n', "UTF-8"))
    files.append(("utf8_arg.yaml", b'name: m\ninputs:\n  input: {shape: [N, 4]}\nlayers:\n  - {op: Cast, args: {dtype: "\xff"}}\n', "UTF-8"))
    files.append(("utf8_composite_arg.yaml", b'name: m\ninputs:\n  input: {shape: [N, 4]}\nmodels:\n  C:\n    args: {s: a}\n'
                  b'    layers: [Relu]\nlayers:\n  - {op: C, args: {s: "\xc0\xaf"}}\n', "UTF-8"))
    files.append(("utf8_key.yaml", b'name: m\ninputs:\n  input: {shape: [N, 4]}\nlayers: [Relu]\n"\xed\xa0\x80": 1\n', "UTF-8"))
    files.append(("yaml_tags.yaml", b"name: !!python/object:os.system [touch PWNED_tag]\ninputs:\n  input: {shape: [N, 4]}\nlayers: [Relu]\n", None))
    files.append(("yaml_binary.yaml", b"name: !!binary aGVsbG8=\ninputs:\n  input: {shape: [N, 4]}\nlayers: [Relu]\n", None))
    files.append(("yaml_merge.yaml", b"base: &b {shape: [N, 4]}\nname: m\ninputs:\n  input: {<<: *b}\nlayers: [Relu]\n", None))
    files.append(("yaml_nul.yaml", b"name: m\x00\ninputs:\n  input: {shape: [N, 4]}\nlayers: [Relu]\n", None))
    files.append(("yaml_bom.yaml", b"\xef\xbb\xbfname: m\ninputs:\n  input: {shape: [N, 4]}\nlayers: [Relu]\n", None))
    files.append(("yaml_binary_garbage.yaml", bytes(range(256)) * 8, "error"))
    files.append(("yaml_empty.yaml", b"", "error"))
    files.append(("yaml_text.yaml", ("just some text " * 2000).encode(), "error"))
    files.append(("yaml_duplicate_keys.yaml", b"name: a\nname: b\ninputs:\n  input: {shape: [N, 4]}\nlayers: [Relu]\n", "duplicate"))
    files.append(("yaml_huge_key.yaml", ("name: m\ninputs:\n  input: {shape: [N, 4]}\n" + "k" * 100000 + ": 1\nlayers: [Relu]\n").encode(), "error"))
    files.append(("yaml_many_layers.yaml", ("name: m\ninputs:\n  input: {shape: [N, 4]}\nlayers:\n" + "  - Relu\n" * 300000).encode(), "limit"))
    files.append(("yaml_too_big.yaml", b"# " + b"x" * (17 << 20) + b"\n", "limit"))
    return files


def imports(tmp):
    """Files that import special files: a device, a FIFO, a folder, a text file, a missing one, themselves."""
    fifo = os.path.join(tmp, "fifo.yaml")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    os.makedirs(os.path.join(tmp, "folder.yaml"), exist_ok=True)
    with open(os.path.join(tmp, "text.yaml"), "w") as f:
        f.write("A plain text file, not a model. " * 500)
    with open(os.path.join(tmp, "huge_import.yaml"), "wb") as f:
        f.truncate(20 << 20)
    out = []
    for name, target, want in [("dev_zero", "/dev/zero", "not a regular file"), ("dev_urandom", "/dev/urandom", "not a regular file"),
                               ("fifo", "fifo.yaml", "not a regular file"), ("folder", "folder.yaml", "directory"),
                               ("text", "text.yaml", "must be a mapping"), ("missing", "nope.yaml", "no such file"),
                               ("huge", "huge_import.yaml", "limit"), ("proc", "/proc/self/mem", "error"),
                               ("self", "import_self.yaml", None)]:
        text = f"name: m\nimport: [{q(target)}]\ninputs:\n  input: {{shape: [N, 4]}}\nlayers: [Relu]\n"
        out.append((f"import_{name}.yaml", text.encode(), want))
    return out


def run(mithril, args, cwd):
    start = time.monotonic()
    try:
        p = subprocess.run([mithril, *args], capture_output=True, cwd=cwd, timeout=30)
    except subprocess.TimeoutExpired:
        return None, "", time.monotonic() - start
    return p.returncode, p.stderr.decode("utf-8", "replace"), time.monotonic() - start


def main():
    mithril = os.path.abspath(sys.argv[1])
    keep = sys.argv[sys.argv.index("--keep") + 1] if "--keep" in sys.argv else None
    tmp = keep or tempfile.mkdtemp(prefix="mithril-hostile-")
    os.makedirs(tmp, exist_ok=True)
    work = os.path.join(tmp, "work")  # the commands run here: a payload that ran would leave PWNED* files
    os.makedirs(work, exist_ok=True)
    files = corpus() + imports(tmp)
    failures, failed_files = [], set()
    slowest = (0.0, "")
    for name, data, want in files:
        path = os.path.join(tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        for cmd in (["check", path, "--max", "N=4"], ["check", path, "--json", "--ir", "--max", "N=4"], ["compile", path, "-o", os.path.join(work, "out"), "--max", "N=4"]):
            rc, err, secs = run(mithril, cmd, work)
            slowest = max(slowest, (secs, f"{cmd[0]} {name}"))
            lines = [l for l in err.splitlines() if l.strip()]
            where = f"{cmd[0]} {name}"
            if rc is None:
                failures.append(f"{where}: no answer in 30 s")
            elif rc not in (0, 1):
                failures.append(f"{where}: exit status {rc}: {err[-300:]!r}")
            elif "internal compiler error" in err:
                failures.append(f"{where}: {err[-300:]!r}")
            elif rc == 1 and (len(lines) != 1 or "error: " not in lines[0]):
                failures.append(f"{where}: expected one error line, got {err[-400:]!r}")
            elif want is not None and (rc != 1 or want not in err):
                failures.append(f"{where}: expected an error with {want!r}, got exit {rc}: {err[-300:]!r}")
            if failures and failures[-1].startswith(where):
                failed_files.add(name)
            if rc == 1 or cmd[0] == "compile":
                break
        shutil.rmtree(os.path.join(work, "out"), ignore_errors=True)
    pwned = [f for f in os.listdir(work) if f.startswith("PWNED")] + [f for f in os.listdir(tmp) if f.startswith("PWNED")]
    if pwned:
        failures.append(f"a model file ran code: {pwned}")
    if not keep:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(files)} hostile files, slowest {slowest[1]} ({slowest[0]:.1f} s)")
    for f in failures:
        print("FAIL", f)
    bad = len(failed_files) + (1 if pwned else 0)
    print(f"{len(files) + 1 - bad} passed, {bad} failed")  # each file, and "nothing ran"
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
