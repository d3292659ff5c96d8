#!/usr/bin/env python3
"""Check the Dockerfile with BuildKit's own parser (PyPI `dockerfile`, which
wraps moby/buildkit's Go parser), since no Docker engine runs here:

- multi-stage; the build stage makes a --locked release build of every
  [[bin]] in Cargo.toml, from sources the build context (.dockerignore) keeps;
- the runtime stage is distroless or scratch, has no RUN (no shell needed),
  runs as a non-root numeric user, uses exec-form ENTRYPOINT/CMD on a
  binary it copies, and carries the OCI labels.
"""
import fnmatch
import os
import sys
import tomllib

import dockerfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
errors = []


def check(cond, msg):
    if not cond:
        errors.append(msg)


cmds = dockerfile.parse_file(os.path.join(ROOT, "Dockerfile"))
stages, current = [], None
for c in cmds:
    if c.cmd == "FROM":
        current = {"from": c.value, "cmds": []}
        stages.append(current)
    elif current is not None:
        current["cmds"].append(c)
check(len(stages) >= 2, "not a multi-stage build")
build, runtime = stages[0], stages[-1]

with open(os.path.join(ROOT, "Cargo.toml"), "rb") as fh:
    cargo = tomllib.load(fh)
bins = [b["name"] for b in cargo.get("bin", [])]
runs = " ".join(" ".join(c.value) for c in build["cmds"] if c.cmd == "RUN")
check("cargo build" in runs and "--release" in runs, "the build stage does not run `cargo build --release`")
check("--locked" in runs, "the release build is not --locked")
check("--bins" in runs or all(f"--bin {b}" in runs for b in bins), "not every binary is built")
# The shipped image holds only the operator and the plugin: the emulator
# (behind the `demo` feature) must stay out.
check("--all-features" not in runs and "demo" not in runs, "the image build enables the demo feature (the emulator)")

# The build context: .dockerignore patterns, last match wins.
patterns = []
with open(os.path.join(ROOT, ".dockerignore")) as fh:
    for line in fh:
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line)


def in_context(path):
    keep = True
    for p in patterns:
        neg = p.startswith("!")
        pat = p[1:] if neg else p
        pat = pat.rstrip("/")
        if fnmatch.fnmatch(path, pat) or path.startswith(pat + "/"):
            keep = neg
    return keep


for c in build["cmds"]:
    if c.cmd == "COPY" and not any(f.startswith("--from") for f in c.flags):
        for src in c.value[:-1]:
            check(os.path.exists(os.path.join(ROOT, src)), f"COPY source {src} does not exist")
            check(in_context(src), f"COPY source {src} is excluded by .dockerignore")
for src in ["Cargo.toml", "Cargo.lock", "src/lib.rs"] + [b["path"] for b in cargo.get("bin", [])]:
    check(in_context(src), f"{src} is excluded from the build context")

base = runtime["from"][0]
check(base.startswith("gcr.io/distroless/") or base == "scratch", f"runtime base {base} is neither distroless nor scratch")
check(not any(c.cmd == "RUN" for c in runtime["cmds"]), "the runtime stage runs commands (needs a shell)")
users = [c.value[0] for c in runtime["cmds"] if c.cmd == "USER"]
check(users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0",
      f"the runtime user is not a numeric non-root user: {users}")
entry = [c for c in runtime["cmds"] if c.cmd == "ENTRYPOINT"]
check(entry and entry[-1].json, "ENTRYPOINT is missing or not in exec (JSON) form")
check(all(c.json for c in runtime["cmds"] if c.cmd == "CMD"), "CMD is not in exec form")
copied = []
for c in runtime["cmds"]:
    if c.cmd == "COPY":
        dest = c.value[-1]
        copied += [os.path.join(dest, os.path.basename(s)) if dest.endswith("/") else dest for s in c.value[:-1]]
for b in bins:
    check(any(p.endswith("/" + b) for p in copied), f"binary {b} is not copied into the runtime image")
if entry:
    check(entry[-1].value[0] in copied, f"ENTRYPOINT {entry[-1].value[0]} is not a copied binary")
labels = set()
for c in runtime["cmds"]:
    if c.cmd == "LABEL":
        labels.update(c.value[0::2])
for l in ["title", "description", "licenses", "version", "revision", "created"]:
    check(f"org.opencontainers.image.{l}" in labels, f"OCI label org.opencontainers.image.{l} missing")

for e in errors:
    print(f"Dockerfile: {e}", file=sys.stderr)
print(f"Dockerfile: {len(stages)} stages, runtime {base}, user {users[-1] if users else None}: "
      + ("OK" if not errors else f"{len(errors)} problem(s)"))
sys.exit(1 if errors else 0)
