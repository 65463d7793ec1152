#!/usr/bin/env python3
"""Render a chart as `helm template` would, lint it, and check every object.

usage: render.py CHART [--values FILE]... [--set-json JSON] [--name NAME]
                 [--namespace NS] [--kube-version 1.30.0]

Prints one JSON object: {"lint": helm lint's report, "objects": [every
rendered object], "invalid": ["Kind/name: why", ...], "error": null or why
rendering failed}. Exits 0 when it could say that much (the caller judges);
2 on bad arguments.

It runs in .venv-k8s (scripts/k8s-tools.sh): helm-python-sdk is Helm's own
Go SDK (v4) built as a library, so templates, values.schema.json and lint
behave as the helm CLI's; kubernetes-validate checks each object against the
Kubernetes API's JSON schema for --kube-version, strictly (an unknown field
is an error). The host test deploy_manifests.rs drives it.
"""

import argparse
import json
import sys

import helm_python as helm
import kubernetes_validate
import yaml


def merge(base: dict, extra: dict) -> dict:
    """Helm's merge of -f files: maps merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("chart")
    parser.add_argument("--values", action="append", default=[])
    parser.add_argument("--set-json", default="{}")
    parser.add_argument("--name", default="pagehook")
    parser.add_argument("--namespace", default="pagehook")
    parser.add_argument("--kube-version", default="1.30.0")
    args = parser.parse_args()

    values: dict = {}
    for path in args.values:
        with open(path) as f:
            values = merge(values, yaml.safe_load(f) or {})
    values = merge(values, json.loads(args.set_json))

    result = {"lint": None, "objects": [], "invalid": [], "error": None}
    result["lint"] = helm.lint(args.chart, values, strict=True, namespace=args.namespace,
                               kube_version=f"v{args.kube_version}")
    try:
        chart = helm.Chart.load(args.chart)
        chart.validate_schema(chart.merge_values(values))
        manifests = chart.render(values, name=args.name, namespace=args.namespace, is_install=True)
    except helm.HelmError as e:
        result["error"] = str(e)
        print(json.dumps(result))
        return 0
    for path in sorted(manifests):
        if not path.endswith((".yaml", ".yml")):
            continue
        for obj in yaml.safe_load_all(manifests[path]):
            if not obj:
                continue
            obj["__source"] = path
            result["objects"].append(obj)
    for obj in result["objects"]:
        plain = {k: v for k, v in obj.items() if k != "__source"}
        name = f'{plain.get("kind")}/{plain.get("metadata", {}).get("name")}'
        try:
            kubernetes_validate.validate(plain, args.kube_version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = "/".join(str(p) for p in e.path)
            result["invalid"].append(f"{name}: {path}: {e.message}")
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as e:
            result["invalid"].append(f"{name}: no schema to check it against: {e}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
