#!/usr/bin/env python3
"""Writes crates/framedb-kube-sim/src/protobuf/fields.rs: for every Kubernetes message
type the simulator reads from a protobuf body, the fields that k8s-pb's type (the
message, from the protos) and k8s-openapi's type (what the simulator stores, v1_33)
have in common, so that `convert!` can carry one over into the other field by field.

Both crates name fields alike (snake case, `pod_ip`), but for Rust keywords (k8s-pb's
`r#type`, k8s-openapi's `type_`). A field k8s-pb has and k8s-openapi v1_33 does not is a
newer one a 1.33 server skips as unknown too; the reverse would be a bug in this script
and stops it.

Run it after a version change of either crate: `python3 scripts/gen-protobuf-fields.py`.
"""
import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/framedb-kube-sim/src/protobuf/fields.rs"
OPENAPI_VERSION = "v1_33"

# The kinds the simulator serves and can be sent (create, update), and the bodies of its
# other verbs that kubectl sends as protobuf.
ROOTS = [
    "api::core::v1::Namespace", "api::core::v1::Node", "api::core::v1::Service",
    "api::core::v1::Pod", "api::core::v1::PersistentVolumeClaim",
    "api::core::v1::PersistentVolume", "api::core::v1::ConfigMap", "api::core::v1::Secret",
    "api::core::v1::ServiceAccount", "api::core::v1::Event",
    "api::apps::v1::Deployment", "api::apps::v1::StatefulSet",
    "api::rbac::v1::ClusterRole", "api::rbac::v1::ClusterRoleBinding",
    "api::rbac::v1::Role", "api::rbac::v1::RoleBinding",
    "api::networking::v1::NetworkPolicy", "api::storage::v1::StorageClass",
    "api::policy::v1::Eviction", "api::policy::v1::PodDisruptionBudget",
    "api::events::v1::Event",
    "apimachinery::pkg::apis::meta::v1::DeleteOptions",
]
# Carried over by hand in protobuf.rs: their wire and JSON shapes differ.
BY_HAND = {
    "apimachinery::pkg::apis::meta::v1::Time", "apimachinery::pkg::apis::meta::v1::MicroTime",
    "apimachinery::pkg::apis::meta::v1::FieldsV1", "apimachinery::pkg::api::resource::Quantity",
    "apimachinery::pkg::util::intstr::IntOrString", "apimachinery::pkg::runtime::RawExtension",
}
KEYWORDS = {"type", "continue", "ref", "enum", "default", "self", "match", "in", "as"}


def crate_dirs():
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1"], cwd=ROOT))
    dirs = {p["name"]: pathlib.Path(p["manifest_path"]).parent for p in meta["packages"]}
    return dirs["k8s-pb"] / "src", dirs["k8s-openapi"] / "src" / OPENAPI_VERSION


def struct_fields(text, name):
    """The fields (name, type) of `pub struct name { ... }` in `text`, or None."""
    m = re.search(r"pub struct %s \{\n(.*?)\n\}" % re.escape(name), text, re.S)
    if not m:
        return None
    body = re.sub(r"^\s*(///|#\[).*$", "", m.group(1), flags=re.M)
    fields = []
    for f in re.finditer(r"pub ((?:r#)?\w+):\s*(.*?),\s*$", body, re.S | re.M):
        fields.append((f.group(1), " ".join(f.group(2).split())))
    return fields


def main():
    pb_src, oa_src = crate_dirs()
    todo, seen, out = list(ROOTS), set(), []
    while todo:
        path = todo.pop()
        if path in seen or path in BY_HAND:
            continue
        seen.add(path)
        *module, name = path.split("::")
        oa_dir = oa_src.joinpath(*module)
        oa_text = "\n".join(p.read_text() for p in sorted(oa_dir.glob("*.rs")))
        pb_text = pb_src.joinpath(*module, "mod.rs").read_text()
        # prost camel-cases message names (`IPBlock` is k8s-pb's `IpBlock`).
        pb_names_by_case = {n.lower(): n for n in re.findall(r"pub struct (\w+) \{", pb_text)}
        pb_name = pb_names_by_case.get(name.lower(), name)
        oa, pb = struct_fields(oa_text, name), struct_fields(pb_text, pb_name)
        if oa is None or pb is None:
            sys.exit(f"{path}: not a struct in both crates (k8s-openapi: {oa is not None}, k8s-pb: {pb is not None})")
        # Snake-casing acronyms differs too (`non_resource_urls`, `non_resource_ur_ls`).
        def squash(field):
            return field.removeprefix("r#").replace("_", "").lower()
        pb_names = {squash(f): f for f, _ in pb}
        # Go's embedded structs (a Volume's VolumeSource, a Probe's ProbeHandler) are flat in
        # JSON and one nested message on the wire.
        oa_names = {squash(f) for f, _ in oa}
        embedded = {}
        for f, ty in pb:
            inner = re.fullmatch(r"::core::option::Option<(\w+)>", ty)
            if squash(f) not in oa_names and inner:
                for g, _ in struct_fields(pb_text, inner.group(1)) or []:
                    embedded[squash(g)] = (f, g)
        pairs, envelope, flat = [], [], {}
        for field, ty in oa:
            for ref in re.findall(r"crate::((?:\w+::)+\w+)", ty):
                if ref.startswith(("api::", "apimachinery::")):
                    todo.append(ref)
            wire = pb_names.get(squash(field))
            if wire is None and squash(field) in embedded:
                outer, inner = embedded[squash(field)]
                flat.setdefault(outer, []).append(f"{field}: {inner}")
                continue
            if wire is None:
                # A body's own apiVersion and kind travel in the envelope, not the message.
                if field in ("api_version", "kind"):
                    envelope.append(field)
                    continue
                sys.exit(f"{path}.{field}: k8s-openapi has it, k8s-pb does not")
            pairs.append(f"{field}: {wire}")
        out.append((path, pb_name, pairs, envelope, flat))
    lines = [
        "// Generated by scripts/gen-protobuf-fields.py from k8s-pb and k8s-openapi "
        f"({OPENAPI_VERSION}); do not edit.",
        "//! The fields each message type shares with its k8s-openapi type.",
        "",
        "use super::convert;",
        "",
    ]
    for path, pb_name, pairs, envelope, flat in sorted(out):
        module, name = path.rsplit("::", 1)
        rest = f" envelope {{ {', '.join(envelope)} }}" if envelope else ""
        for outer, inner in flat.items():
            rest += f" flatten {outer} {{ {', '.join(inner)} }}"
        lines.append(f"convert!({module}, {name} = {pb_name} {{ {', '.join(pairs)} }}{rest});")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    subprocess.check_call(["cargo", "fmt", "-p", "framedb-kube-sim"], cwd=ROOT)
    print(f"{OUT.relative_to(ROOT)}: {len(out)} types")


if __name__ == "__main__":
    main()
