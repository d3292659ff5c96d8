#!/usr/bin/env python3
"""Render charts/kube-incident offline with Helm's own Go SDK.

helm-python-sdk (PyPI) bundles libhelm_c, a C ABI over the official Helm v4
Go SDK: the same template engine, Sprig functions, values merging and
values.schema.json validation as `helm template`, installed with pip (no
helm binary download needed).

Prints every rendered template as multi-document YAML (`# Source:` comments
as `helm template` does). Exit status 3: helm-python-sdk is not installed.

Usage: render-chart.py [--values FILE]... [--namespace NS] [--name RELEASE] [--set-json JSON]
       render-chart.py --lint [--values FILE]...
"""
import argparse
import json
import os
import sys

CHART = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "charts", "kube-incident")


def merge(base, extra):
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v
    return base


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--values", action="append", default=[])
    p.add_argument("--set-json", default=None, help="values as a JSON object, merged last")
    p.add_argument("--namespace", default="kube-incident-system")
    p.add_argument("--name", default="kube-incident")
    p.add_argument("--lint", action="store_true")
    a = p.parse_args()
    try:
        import helm_python as helm
    except ImportError:
        print("helm-python-sdk is not installed: python3 -m pip install helm-python-sdk", file=sys.stderr)
        return 3
    values = {}
    for f in a.values:
        with open(f) as fh:
            merge(values, helm.values_from_yaml(fh.read()) or {})
    if a.set_json:
        merge(values, json.loads(a.set_json))
    if a.lint:
        report = helm.lint(CHART, values, strict=True, namespace=a.namespace, kube_version="v1.30.0")
        bad = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
        for m in report.get("messages", []):
            print(f"lint: severity {m.get('severity')}: {m.get('path')}: {m.get('error')}", file=sys.stderr)
        for e in report.get("errors", []) or []:
            print(f"lint error: {e}", file=sys.stderr)
        return 1 if bad or report.get("errors") else 0
    with helm.Chart.load(CHART) as chart:
        try:
            chart.validate_schema(values)
            out = chart.render(values, name=a.name, namespace=a.namespace, is_install=True)
        except Exception as e:  # HelmValuesError, HelmRenderError
            print(f"render failed: {e}", file=sys.stderr)
            return 1
    for path in sorted(out):
        text = out[path]
        if path.endswith("NOTES.txt") or not text.strip():
            continue
        sys.stdout.write(f"---\n# Source: {path}\n{text.strip()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
