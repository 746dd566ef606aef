#!/usr/bin/env python3
"""Generate berth's ECS wire types from botocore's ECS service model.

The model (botocore/data/ecs/2014-11-13/service-2.json, shipped in the `botocore` wheel) is the
machine-readable contract every AWS SDK is generated from, so generating our serde types from
it is the surest way to be byte-compatible with aws-cli, boto3 and the Rust SDK.

Usage: tools/gen-ecs-types.py path/to/site-packages/botocore > crates/api/src/types.rs
       cargo fmt -p berth-api

Use the botocore release the Python tests pin (tests/e2e/requirements.txt): the file records it,
with every operation in its model, and berth-server's coverage test fails when either drifts
(a newer pin, or an operation berth neither implements nor refuses with a reason).

Only shapes reachable from the operations in OPERATIONS are emitted. Every structure member is
an `Option` (requests are validated by berth itself so that a missing member becomes an
InvalidParameterException rather than a serde error) and enum-typed strings stay `String`
(validated against the generated `enums` constants for the same reason).
"""
import gzip
import json
import os
import re
import sys

OPERATIONS = [
    # clusters
    "CreateCluster", "DeleteCluster", "DescribeClusters", "ListClusters", "UpdateCluster",
    "UpdateClusterSettings",
    # task definitions
    "RegisterTaskDefinition", "DescribeTaskDefinition", "ListTaskDefinitions",
    "ListTaskDefinitionFamilies", "DeregisterTaskDefinition", "DeleteTaskDefinitions",
    # container instances and attributes
    "RegisterContainerInstance", "DeregisterContainerInstance", "ListContainerInstances",
    "DescribeContainerInstances", "UpdateContainerInstancesState", "PutAttributes",
    "ListAttributes", "DeleteAttributes",
    # tasks
    "RunTask", "StartTask", "StopTask", "DescribeTasks", "ListTasks",
    # services
    "CreateService", "UpdateService", "DeleteService", "DescribeServices", "ListServices",
    # tags
    "TagResource", "UntagResource", "ListTagsForResource",
    # account settings
    "PutAccountSetting", "PutAccountSettingDefault", "ListAccountSettings",
    "DeleteAccountSetting",
    # task scale-in protection
    "UpdateTaskProtection", "GetTaskProtection",
    # capacity providers
    "CreateCapacityProvider", "DescribeCapacityProviders", "UpdateCapacityProvider",
    "DeleteCapacityProvider", "PutClusterCapacityProviders",
    # task sets (the EXTERNAL deployment controller)
    "CreateTaskSet", "DescribeTaskSets", "UpdateTaskSet", "UpdateServicePrimaryTaskSet",
    "DeleteTaskSet",
    # deployment history
    "ListServiceDeployments", "DescribeServiceDeployments", "DescribeServiceRevisions",
    "StopServiceDeployment",
    # agent-facing
    "DiscoverPollEndpoint", "SubmitTaskStateChange", "SubmitContainerStateChange",
]

RUST_KEYWORDS = {
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use",
    "where", "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final",
    "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try",
}


def snake(name):
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.lower()


def camel_of_snake(s):
    parts = s.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def load(botocore_dir):
    """The ECS model and the botocore version of an installed (or unpacked) botocore."""
    init = open(os.path.join(botocore_dir, "__init__.py")).read()
    version = re.search(r"^__version__ = ['\"]([^'\"]+)['\"]", init, re.M).group(1)
    base = os.path.join(botocore_dir, "data", "ecs", "2014-11-13", "service-2.json")
    if os.path.exists(base):
        model = json.load(open(base))
    else:
        model = json.load(gzip.open(base + ".gz"))
    return model, version


def main():
    model, version = load(sys.argv[1])
    shapes = model["shapes"]
    ops = model["operations"]
    order = []

    def walk(name):
        if name in order:
            return
        shape = shapes[name]
        if shape.get("exception"):
            return
        order.append(name)
        t = shape["type"]
        if t == "structure":
            for m in shape["members"].values():
                walk(m["shape"])
        elif t == "list":
            walk(shape["member"]["shape"])
        elif t == "map":
            walk(shape["key"]["shape"])
            walk(shape["value"]["shape"])

    for op in OPERATIONS:
        walk(ops[op]["input"]["shape"])
        walk(ops[op]["output"]["shape"])

    def rust_type(name):
        s = shapes[name]
        t = s["type"]
        if t == "structure":
            return name
        if t == "list":
            return "Vec<%s>" % rust_type(s["member"]["shape"])
        if t == "map":
            return "BTreeMap<%s, %s>" % (rust_type(s["key"]["shape"]), rust_type(s["value"]["shape"]))
        return {
            "string": "String",
            "integer": "i32",
            "long": "i64",
            "boolean": "bool",
            "double": "f64",
            "float": "f64",
            "timestamp": "f64",
        }[t]

    out = []
    w = out.append
    w("// @generated by tools/gen-ecs-types.py from botocore's ECS service model")
    w("// (apiVersion %s). Do not edit by hand: change the generator and re-run it." % model["metadata"]["apiVersion"])
    w("")
    w("use std::collections::BTreeMap;")
    w("")
    w("use serde::{Deserialize, Serialize};")
    w("")
    for name in sorted(n for n in order if shapes[n]["type"] == "structure"):
        s = shapes[name]
        req = s.get("required", [])
        if req:
            w("/// Required by the model: %s." % ", ".join("`%s`" % r for r in req))
        w("#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]")
        w('#[serde(rename_all = "camelCase")]')
        w("pub struct %s {" % name)
        for member, spec in s["members"].items():
            field = snake(member)
            attrs = ['default', 'skip_serializing_if = "Option::is_none"']
            if camel_of_snake(field) != member:
                attrs.insert(0, 'rename = "%s"' % member)
            ident = "r#" + field if field in RUST_KEYWORDS else field
            w("    #[serde(%s)]" % ", ".join(attrs))
            w("    pub %s: Option<%s>," % (ident, rust_type(spec["shape"])))
        w("}")
        w("")
    w("/// The model itself: which botocore release it came from, and all of its operations (those")
    w("/// berth implements and those it refuses), for the coverage table and its test.")
    w("pub mod model {")
    w("    /// The botocore release whose ECS model this file was generated from.")
    w('    pub const BOTOCORE_VERSION: &str = "%s";' % version)
    w("    /// Every operation in that model, sorted.")
    w("    pub const OPERATIONS: &[&str] = &[%s];" % ", ".join('"%s"' % o for o in sorted(ops)))
    w("}")
    w("")
    w("/// Allowed values of the model's enum-typed strings, for validation.")
    w("pub mod enums {")
    for name in sorted(n for n in order if "enum" in shapes[n]):
        w("    /// Values of `%s`." % name)
        w("    pub const %s: &[&str] = &[%s];" % (snake(name).upper(), ", ".join('"%s"' % v for v in shapes[name]["enum"])))
    w("}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
