#!/usr/bin/env python3
"""Checks schemas/model.schema.json and the examples of docs/format.md.

    validate.py MITHRIL            both parts below
    validate.py MITHRIL --schema   schema part only
    validate.py MITHRIL --docs     docs part only

Run from the repository root with /usr/bin/python3 (Debian's python3-yaml and
python3-jsonschema).

Schema part: every good file (samples/*.yaml, compiler/stdlib/*.yaml,
tests/check/*.yaml) must validate; every file in tests/schema/bad/ must not,
and `mithril check` must reject it too (exit 1), so the schema is never
stricter than the compiler. A bad file says why it is bad on a `# BAD: ...`
line (documentation only).

Docs part: each ```yaml or ```json block in docs/format.md must be preceded,
on the line just before its fence, by one of these markers:

    <!-- check -->              a complete model: valid under the schema, and
    <!-- check ARGS -->         `mithril check FILE ARGS` succeeds
    <!-- file PATH -->          a file that later blocks import, written to PATH
                                (relative to the examples' folder); valid under
                                the schema, not checked on its own
    <!-- error -->              a model that `mithril check` rejects: written
                                alone to model.yaml (or model.json) in a folder
                                of its own; the next fenced block must be a
                                ```text block whose first line appears verbatim
                                in what `mithril check model.yaml` prints on
                                stderr, with exit status 1
    <!-- fragment -->           part of a file, shown for illustration; ignored

`check` and `file` blocks are written, in order, into one temporary folder; a
`check` block becomes example-K.yaml (or .json), K counting from 1.
"""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA = os.path.join(ROOT, "schemas", "model.schema.json")
FORMAT_MD = os.path.join(ROOT, "docs", "format.md")


# ---- YAML as the compiler reads it -----------------------------------------
# PyYAML implements YAML 1.1 (yes/no/on/off are booleans, 1e3 is a string);
# the compiler uses the YAML 1.2 core schema and rejects duplicate keys.

class CoreLoader(yaml.SafeLoader):
    pass


CoreLoader.yaml_implicit_resolvers = {}
for tag, regexp, first in [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^[-+]?[0-9]+$", "-+0123456789"),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.inf)$", "-+0123456789."),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
]:
    CoreLoader.add_implicit_resolver(tag, re.compile(regexp), list(first))


def _bool(loader, node):
    return loader.construct_scalar(node).lower() == "true"


def _float(loader, node):
    return float(loader.construct_scalar(node).replace(".inf", "inf"))


def _mapping(loader, node, deep=False):
    loader.flatten_mapping(node)
    out = {}
    for k, v in node.value:
        key = loader.construct_object(k, deep=deep)
        if not isinstance(key, str):
            key = k.value  # the compiler takes every scalar key as its text
        if key in out:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", k.start_mark)
        out[key] = loader.construct_object(v, deep=deep)
    return out


CoreLoader.add_constructor("tag:yaml.org,2002:bool", _bool)
CoreLoader.add_constructor("tag:yaml.org,2002:float", _float)
CoreLoader.add_constructor("tag:yaml.org,2002:map", _mapping)


def load(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json"):
        return json.loads(text)
    return yaml.load(text, Loader=CoreLoader)


# ---- schema ----------------------------------------------------------------

def make_validator():
    with open(SCHEMA, encoding="utf-8") as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(validator, doc):
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]


def rel(path):
    return os.path.relpath(path, ROOT)


def check_schema_files(validator, mithril):
    failures = []
    good = sorted(glob.glob(os.path.join(ROOT, "samples", "*.yaml")) +
                  glob.glob(os.path.join(ROOT, "compiler", "stdlib", "*.yaml")) +
                  glob.glob(os.path.join(ROOT, "tests", "check", "*.yaml")))
    bad = sorted(glob.glob(os.path.join(ROOT, "tests", "schema", "bad", "*.yaml")) +
                 glob.glob(os.path.join(ROOT, "tests", "schema", "bad", "*.json")))
    if not good or not bad:
        failures.append("found no files to validate")
    for path in good:
        try:
            errs = schema_errors(validator, load(path))
        except Exception as e:  # noqa: BLE001 - a load failure is a test failure
            errs = [f"cannot load: {e}"]
        if errs:
            failures.append(f"{rel(path)}: rejected, expected valid:\n    " + "\n    ".join(errs))
        else:
            print(f"ok (valid): {rel(path)}")
    for path in bad:
        try:
            doc = load(path)
        except Exception as e:  # noqa: BLE001
            failures.append(f"{rel(path)}: cannot load ({e}); bad files must be loadable YAML")
            continue
        if validator.is_valid(doc):
            failures.append(f"{rel(path)}: accepted, expected a schema error")
            continue
        # The schema must not be stricter than the compiler: it rejects these too.
        p = subprocess.run([mithril, "check", rel(path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
        if p.returncode != 1:
            failures.append(f"{rel(path)}: `mithril check` exits {p.returncode}, expected 1:\n{p.stdout}{p.stderr}")
        else:
            print(f"ok (rejected): {rel(path)}: {schema_errors(validator, doc)[0]}")
    return failures


# ---- docs/format.md examples -----------------------------------------------

MARKER = re.compile(r"^<!--\s*(check|file|error|fragment)\b\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^```(\w*)\s*$")


def doc_blocks(path):
    """Every fenced block: (line number, language, marker, marker argument, text)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        lang, start = m.group(1), i
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        mk = MARKER.match(lines[start - 1]) if start > 0 else None
        blocks.append((start + 1, lang, mk.group(1) if mk else None, mk.group(2) if mk else "",
                       "\n".join(lines[start + 1:j]) + "\n"))
        i = j + 1
    return blocks


def check_docs(validator, mithril):
    failures = []
    blocks = doc_blocks(FORMAT_MD)
    if not any(b[2] == "check" for b in blocks):
        failures.append("docs/format.md: no <!-- check --> examples found")
    where = rel(FORMAT_MD)
    with tempfile.TemporaryDirectory(prefix="mithril-docs-") as tmp:
        count = errors = 0
        for index, (line, lang, kind, arg, text) in enumerate(blocks):
            at = f"{where}:{line}"
            if lang not in ("yaml", "json"):
                continue
            if kind is None:
                failures.append(f"{at}: a ```{lang} block without a marker (check, file, error or fragment) before it")
                continue
            if kind == "fragment":
                continue
            if kind == "error":
                errors += 1
                folder = os.path.join(tmp, f"error-{errors}")
                path = os.path.join(folder, f"model.{lang}")
            elif kind == "file":
                if not arg:
                    failures.append(f"{at}: <!-- file --> needs a path")
                    continue
                folder, path = tmp, os.path.join(tmp, arg)
            else:
                count += 1
                folder, path = tmp, os.path.join(tmp, f"example-{count}.{lang}")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            if kind in ("check", "file"):
                try:
                    errs = schema_errors(validator, load(path))
                except Exception as e:  # noqa: BLE001
                    errs = [f"cannot load: {e}"]
                if errs:
                    failures.append(f"{at}: the schema rejects this example:\n    " + "\n    ".join(errs))
            if kind == "file":
                print(f"ok (file {arg}): {at}")
                continue
            expected = None
            if kind == "error":
                following = blocks[index + 1] if index + 1 < len(blocks) else None
                if not following or following[1] != "text" or not following[4].strip():
                    failures.append(f"{at}: an <!-- error --> block must be followed by a ```text block with the message")
                    continue
                expected = following[4].strip().split("\n")[0]
            args = arg.split() if kind == "check" else []
            name = os.path.relpath(path, folder)
            p = subprocess.run([mithril, "check", name, *args], cwd=folder, capture_output=True, text=True, timeout=120)
            shown = f"$ mithril check {name} {' '.join(args)}\n{p.stdout}{p.stderr}"
            if "internal compiler error" in p.stderr:
                failures.append(f"{at}: internal compiler error:\n{shown}")
            elif kind == "check" and p.returncode != 0:
                failures.append(f"{at}: example does not check (exit {p.returncode}):\n{shown}")
            elif kind == "error" and (p.returncode != 1 or expected not in p.stderr):
                failures.append(f"{at}: expected exit 1 and this on stderr:\n    {expected}\ngot exit {p.returncode}:\n{shown}")
            else:
                print(f"ok ({kind}): {at}")
    return failures


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    flags = {a for a in sys.argv[1:] if a.startswith("--")}
    unknown = flags - {"--schema", "--docs"}
    if len(args) != 1 or unknown:
        sys.exit(__doc__)
    mithril = os.path.abspath(args[0])
    run_schema = "--docs" not in flags or "--schema" in flags
    run_docs = "--schema" not in flags or "--docs" in flags
    if not os.access(mithril, os.X_OK):
        sys.exit(f"{mithril}: not an executable")
    validator = make_validator()
    failures = []
    if run_schema:
        failures += check_schema_files(validator, mithril)
    if run_docs:
        failures += check_docs(validator, mithril)
    for f in failures:
        print("FAIL:", f)
    if failures:
        sys.exit(1)
    print("all ok")


if __name__ == "__main__":
    main()
