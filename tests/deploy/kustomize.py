"""Render a kustomization without kustomize, for the manifests' tests (no cluster, no binary).

Only the subset deploy/k8s uses is understood, and anything else is refused (never rendered
differently from kustomize):

- ``resources``: YAML files (one or more documents) and directories holding a
  ``kustomization.yaml``, relative to the kustomization, inside its folder tree;
- ``namespace``: set on every namespaced object;
- ``images``: ``name`` with ``newName`` and/or ``newTag``, applied to containers and init
  containers of pod templates;
- ``secretGenerator``: ``name``, ``files`` (``path`` or ``key=path``, inside the kustomization's
  folder) and ``type``; generated names carry no hash, so ``generatorOptions`` must say
  ``disableNameSuffixHash: true`` (kustomize's hash is not reproduced here);
- ``patches``: ``path`` to a JSON patch (RFC 6902: ``add``, ``replace``, ``remove``) with a
  ``target`` of ``kind`` and ``name``.

Order as kustomize applies it: resources (each base rendered whole), generators, patches, then
the namespace and image transformers.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]

KNOWN = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "images",
    "generatorOptions",
    "secretGenerator",
    "patches",
}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "CustomResourceDefinition",
}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class Unsupported(ValueError):
    """A kustomization uses something this renderer does not implement."""


def load_documents(path: Path) -> list[Object]:
    with path.open(encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def render(directory: Path) -> list[Object]:
    """The objects ``kubectl kustomize directory`` would print (for the subset above)."""
    directory = directory.resolve()
    (kustomization,) = load_documents(directory / "kustomization.yaml")
    unknown = set(kustomization) - KNOWN
    if unknown:
        raise Unsupported(f"{directory}: kustomization fields not supported: {sorted(unknown)}")
    if kustomization.get("kind", "Kustomization") != "Kustomization":
        raise Unsupported(f"{directory}: only kind Kustomization")
    objects: list[Object] = []
    for entry in kustomization.get("resources", []):
        path = _resolve(directory, entry)
        if path.is_dir():  # another kustomization (a base): anywhere
            objects.extend(render(path))
        else:  # a file: inside this kustomization's folder, as kustomize restricts it
            objects.extend(load_documents(_inside(directory, entry)))
    objects.extend(_secrets(directory, kustomization))
    for patch in kustomization.get("patches", []):
        _patch(directory, objects, patch)
    if "namespace" in kustomization:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    for image in kustomization.get("images", []):
        _image(objects, image)
    return objects


def _resolve(directory: Path, relative: str) -> Path:
    if "://" in relative or relative.startswith(("github.com", "git@")):
        raise Unsupported(f"remote resource {relative!r}")
    return (directory / relative).resolve()


def _inside(directory: Path, relative: str) -> Path:
    path = _resolve(directory, relative)
    if not path.is_relative_to(directory):
        raise Unsupported(f"{relative!r}: a file must be inside {directory}")
    return path


def _secrets(directory: Path, kustomization: Object) -> list[Object]:
    generators = kustomization.get("secretGenerator", [])
    if not generators:
        return []
    options = kustomization.get("generatorOptions", {})
    if set(options) != {"disableNameSuffixHash"} or options["disableNameSuffixHash"] is not True:
        raise Unsupported("secretGenerator needs generatorOptions: {disableNameSuffixHash: true}")
    secrets = []
    for generator in generators:
        unknown = set(generator) - {"name", "files", "type"}
        if unknown:
            raise Unsupported(f"secretGenerator fields not supported: {sorted(unknown)}")
        data = {}
        for entry in generator.get("files", []):
            key, _, relative = entry.rpartition("=")
            path = _inside(directory, relative)
            data[key or path.name] = base64.b64encode(path.read_bytes()).decode("ascii")
        secrets.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": generator["name"]},
                "type": generator.get("type", "Opaque"),
                "data": data,
            }
        )
    return secrets


def _patch(directory: Path, objects: list[Object], patch: Object) -> None:
    if set(patch) != {"path", "target"} or set(patch["target"]) != {"kind", "name"}:
        raise Unsupported(f"a patch needs exactly a path and a target of kind and name: {patch}")
    operations = load_documents(_inside(directory, patch["path"]))
    if len(operations) != 1 or not isinstance(operations[0], list):
        raise Unsupported(f"{patch['path']}: only JSON patches (a list of operations)")
    target = patch["target"]
    matched = [
        o
        for o in objects
        if o["kind"] == target["kind"] and o["metadata"]["name"] == target["name"]
    ]
    if len(matched) != 1:
        raise Unsupported(f"patch target {target} matches {len(matched)} objects")
    for operation in operations[0]:
        _apply(matched[0], operation)


def _apply(obj: Object, operation: Object) -> None:
    op, pointer = operation["op"], operation["path"]
    if op not in ("add", "replace", "remove"):
        raise Unsupported(f"JSON patch operation {op!r}")
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op == "add":
            node.insert(index, copy.deepcopy(operation["value"]))
        elif op == "replace":
            node[index] = copy.deepcopy(operation["value"])
        else:
            del node[index]
        return
    if op != "add" and last not in node:
        raise Unsupported(f"JSON patch {op} of a missing member {pointer}")
    if op == "remove":
        del node[last]
    else:
        node[last] = copy.deepcopy(operation["value"])


def _image(objects: list[Object], image: Object) -> None:
    unknown = set(image) - {"name", "newName", "newTag"}
    if unknown:
        raise Unsupported(f"images fields not supported: {sorted(unknown)}")
    for obj in objects:
        if obj["kind"] not in POD_TEMPLATE_KINDS:
            continue
        pod = obj["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            name, tag = _split(container["image"])
            if name != image["name"]:
                continue
            name = image.get("newName", name)
            tag = image.get("newTag", tag)
            container["image"] = f"{name}:{tag}" if tag else name


def _split(reference: str) -> tuple[str, str]:
    if "@" in reference:
        raise Unsupported(f"image digests: {reference}")
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1 :]
    return reference, ""
