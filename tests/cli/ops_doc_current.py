#!/usr/bin/env python3
"""docs/ops.md must be exactly what `mithril ops --markdown` prints (regenerate with
`build/mithril ops --markdown > docs/ops.md`)."""
import subprocess
import sys

mithril, doc = sys.argv[1], sys.argv[2]
generated = subprocess.run([mithril, "ops", "--markdown"], capture_output=True, text=True, check=True).stdout
with open(doc, encoding="utf-8") as f:
    if f.read() != generated:
        sys.exit(f"{doc} is stale: run `{mithril} ops --markdown > {doc}`")
print("docs/ops.md is current")
