#!/usr/bin/env python3
"""Render a chart as `helm template` would, lint it, and check every object.

usage: render.py CHART [--values FILE]... [--set-json JSON] [--name NAME]
                 [--namespace NS] [--kube-version 1.30.0]
       render.py --confluence-values FILE [--kube-version 1.30.0]

Prints one JSON object: {"lint": helm lint's report, "objects": [every
rendered object], "invalid": ["Kind/name: why", ...], "error": null or why
rendering failed}. Exits 0 when it could say that much (the caller judges);
2 on bad arguments.

--confluence-values checks values for Atlassian's Confluence chart, which is
not stored here: it builds the pod those values add to (a stand-in Confluence
container and shared-home volume, the chart's volume for each
additionalConfigMaps file, named as its statefulset.yaml names it, then
volumes.additional and additionalContainers as given) and prints {"pod": it,
"invalid": [...], "unresolved": [mounts naming no volume], "files":
{fileName: content}}.

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


def confluence_pod(values_file: str, kube_version: str) -> dict:
    with open(values_file) as f:
        values = yaml.safe_load(f)
    files, volumes = {}, [{"name": "shared-home", "emptyDir": {}}, {"name": "local-home", "emptyDir": {}}]
    for cm in values.get("additionalConfigMaps", []):
        for key in cm["keys"]:
            name = key["fileName"].replace("_", "-").replace(".", "-")
            files[key["fileName"]] = key["content"]
            volumes.append({"name": name, "configMap": {"name": f"confluence-{cm['name']}",
                                                        "items": [{"key": key["fileName"], "path": key["fileName"]}]}})
    volumes += values.get("volumes", {}).get("additional", [])
    containers = [{"name": "confluence", "image": "atlassian/confluence:10.2.7"}]
    containers += values.get("additionalContainers", [])
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "confluence-0"},
           "spec": {"securityContext": {"fsGroup": 2002}, "containers": containers, "volumes": volumes}}
    result = {"pod": pod, "invalid": [], "unresolved": [], "files": files}
    try:
        kubernetes_validate.validate(pod, kube_version, strict=True)
    except kubernetes_validate.ValidationError as e:
        result["invalid"].append("/".join(str(p) for p in e.path) + ": " + e.message)
    names = {v["name"] for v in volumes}
    for c in containers:
        for m in c.get("volumeMounts", []):
            if m["name"] not in names:
                result["unresolved"].append(f'{c["name"]}: {m["name"]}')
    return result


def main() -> int:
    if "--confluence-values" in sys.argv:
        parser = argparse.ArgumentParser()
        parser.add_argument("--confluence-values", required=True)
        parser.add_argument("--kube-version", default="1.30.0")
        args = parser.parse_args()
        print(json.dumps(confluence_pod(args.confluence_values, args.kube_version)))
        return 0
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
