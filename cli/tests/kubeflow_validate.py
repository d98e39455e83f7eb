"""Strict validation of Kubeflow training jobs (kubeflow.org/v1 TFJob, PyTorchJob, MPIJob).

The training operator's CRD files are not published on any package registry this project can
reach; its Python SDK (`kubeflow-training`) is, and its models are generated from the
operator's OpenAPI definitions: every object's fields (`attribute_map`), their types
(`openapi_types`) and the ones required (the setters that refuse `None`), down to the
Kubernetes client's models for pod templates. This walks a manifest against them and rejects
unknown fields, wrong types and missing required fields, like `kubernetes-validate --strict`
does for the built-in kinds.

Usage: python kubeflow_validate.py FILE.json...   (prints one line per problem; exit 1 if any)
"""

import functools
import inspect
import json
import re
import sys

import kubeflow.training.models as kf
import kubernetes.client.models as k8s

ROOTS = {
    "TFJob": "KubeflowOrgV1TFJob",
    "PyTorchJob": "KubeflowOrgV1PyTorchJob",
    "MPIJob": "KubeflowOrgV1MPIJob",
}
# The SDK names the autoscaling metric by its Go package; the client by its version.
ALIASES = {"K8sIoApiAutoscalingV2MetricSpec": "V2MetricSpec"}
# Enumerations the SDK's models keep as strings, as the operator's API defines them.
ENUMS = {
    ("KubeflowOrgV1ReplicaSpec", "restart_policy"): {"Always", "OnFailure", "Never", "ExitCode"},
    ("KubeflowOrgV1RunPolicy", "clean_pod_policy"): {"All", "Running", "None"},
    ("KubeflowOrgV1MPIJobSpec", "clean_pod_policy"): {"All", "Running", "None"},
}
ROLES = {
    "tfReplicaSpecs": {"Chief", "PS", "Worker", "Evaluator"},
    "pytorchReplicaSpecs": {"Master", "Worker"},
    "mpiReplicaSpecs": {"Launcher", "Worker"},
}


@functools.lru_cache(maxsize=None)
def required(cls):
    """The fields a model's generated setters refuse to leave empty."""
    return set(re.findall(r"Invalid value for `(\w+)`, must not be `None`", inspect.getsource(cls)))


def model(name):
    name = ALIASES.get(name, name)
    c = getattr(kf, name, None) or getattr(k8s, name, None)
    if c is None:
        raise KeyError(f"no model {name} in the SDK or the Kubernetes client")
    return c


def check(value, typ, path, problems, owner=None, attr=None):
    if value is None:
        return
    m = re.fullmatch(r"list\[(.*)\]", typ)
    if m:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, v in enumerate(value):
            check(v, m.group(1), f"{path}[{i}]", problems)
        return
    m = re.fullmatch(r"dict\((\w+), (.*)\)", typ)
    if m:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        for k, v in value.items():
            check(v, m.group(2), f"{path}.{k}", problems)
        return
    if typ == "str":
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {value!r}")
        elif (owner, attr) in ENUMS and value not in ENUMS[(owner, attr)]:
            problems.append(f"{path}: `{value}` is not one of {sorted(ENUMS[(owner, attr)])}")
        return
    if typ == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{path}: expected an integer, got {value!r}")
        return
    if typ == "bool":
        if not isinstance(value, bool):
            problems.append(f"{path}: expected a boolean, got {value!r}")
        return
    if typ == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{path}: expected a number, got {value!r}")
        return
    if typ in ("datetime", "date"):
        if not isinstance(value, str):
            problems.append(f"{path}: expected a time, got {value!r}")
        return
    if typ == "object":
        return
    if typ == "Quantity":
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            problems.append(f"{path}: expected a quantity, got {value!r}")
        return
    cls = model(typ)
    if not isinstance(value, dict):
        problems.append(f"{path}: expected an object ({typ}), got {value!r}")
        return
    by_json = {j: a for a, j in cls.attribute_map.items()}
    for a in sorted(required(cls)):
        if value.get(cls.attribute_map[a]) is None:
            problems.append(f"{path}: `{cls.attribute_map[a]}` is required ({typ})")
    for key, v in value.items():
        if key not in by_json:
            problems.append(f"{path}: unknown field `{key}` ({typ} has {sorted(by_json)})")
            continue
        a = by_json[key]
        check(v, cls.openapi_types[a], f"{path}.{key}", problems, typ, a)


def validate(obj):
    problems = []
    kind = obj.get("kind")
    if kind not in ROOTS:
        return [f"kind `{kind}` is not a Kubeflow training job"]
    if obj.get("apiVersion") != "kubeflow.org/v1":
        problems.append(f"apiVersion `{obj.get('apiVersion')}` is not kubeflow.org/v1")
    check(obj, ROOTS[kind], kind, problems)
    spec = obj.get("spec") or {}
    for key, roles in ROLES.items():
        for role in (spec.get(key) or {}):
            if role not in roles:
                problems.append(f"{kind}.spec.{key}: unknown role `{role}` (one of {sorted(roles)})")
    if not any(spec.get(k) for k in ROLES):
        problems.append(f"{kind}.spec: no replica specs")
    return problems


def main(files):
    bad = 0
    for f in files:
        with open(f) as fh:
            obj = json.load(fh)
        for p in validate(obj):
            print(f"ERROR {f}: {p}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
