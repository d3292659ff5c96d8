//! Merge semantics per field path: what kube-apiserver learns from Go struct
//! tags (`patchStrategy`/`patchMergeKey`, used by strategic merge patch) and
//! from the OpenAPI extensions (`x-kubernetes-list-type`, `-list-map-keys`,
//! `-map-type`, used by server-side apply through structured-merge-diff).
//!
//! The built-in tables below are transcribed from `k8s.io/api` `types.go`
//! (core/v1, apps/v1, autoscaling/v2, coordination/v1, events/v1,
//! apiextensions/v1). Fields not listed inside a built-in struct behave like
//! struct fields whose nested objects are structs and whose lists are atomic,
//! which is what the real types give for every field we do not list.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::{json, Value};

/// Server-side apply list semantics (`x-kubernetes-list-type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListType {
    /// The whole list is one value.
    Atomic,
    /// A set of scalars, merged by value.
    Set,
    /// A list of objects merged by the given key fields.
    Map(Vec<String>),
}

/// Strategic merge patch list strategy (`patchStrategy` struct tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SmpList {
    /// No `patchStrategy:"merge"`: the patch list replaces the list.
    Replace,
    /// `patchStrategy:"merge"`, with `patchMergeKey` for lists of objects.
    Merge(Option<String>),
}

/// An object node: a struct (declared `fields`) and/or a map (`elem`).
#[derive(Debug, Default)]
pub(crate) struct MapNode {
    /// Declared struct fields.
    pub fields: HashMap<String, Arc<Node>>,
    /// Type of the values of undeclared keys (a map). `None` for a plain
    /// struct: undeclared keys are then treated as struct fields ([`Node::Loose`]).
    pub elem: Option<Arc<Node>>,
    /// `x-kubernetes-map-type: atomic` / `+structType=atomic`.
    pub atomic: bool,
}

/// A list node.
#[derive(Debug)]
pub(crate) struct ListNode {
    /// Server-side apply semantics.
    pub ssa: ListType,
    /// Strategic merge patch semantics.
    pub smp: SmpList,
    /// Element type.
    pub elem: Arc<Node>,
    /// Defaults of list-map key fields (e.g. container port `protocol: TCP`),
    /// used when an item omits a key, as structured-merge-diff does.
    pub key_defaults: Vec<(String, Value)>,
}

/// Type of one position in an object.
#[derive(Debug)]
pub(crate) enum Node {
    /// A scalar (string, number, bool, int-or-string, quantity, time...).
    Scalar,
    /// An object (struct or map).
    Map(MapNode),
    /// A list.
    List(ListNode),
    /// structured-merge-diff's "deduced" type: every object is a granular
    /// map (its keys are map entries), every list is atomic.
    Deduced,
    /// Fallback inside built-in structs: objects are structs (keys are
    /// declared fields), lists are atomic.
    Loose,
    /// apiextensions `JSONSchemaProps` (recursive).
    JsonSchemaProps,
    /// A map of `JSONSchemaProps` (`properties`, `definitions`...).
    JsonSchemaPropsMap,
}

static LOOSE: Node = Node::Loose;
static DEDUCED: Node = Node::Deduced;
static JSP: Node = Node::JsonSchemaProps;
static JSP_MAP: Node = Node::JsonSchemaPropsMap;

impl Node {
    /// Type of the value at key `key` of an object of this type, and whether
    /// `key` is a declared struct field (as opposed to a map entry), which
    /// decides whether the key itself becomes a member of a field set.
    pub(crate) fn field(&self, key: &str) -> (&Node, bool) {
        match self {
            Node::Map(m) => match m.fields.get(key) {
                Some(n) => (n, true),
                None => match &m.elem {
                    Some(e) => (e, false),
                    None => (&LOOSE, true),
                },
            },
            Node::Deduced => (&DEDUCED, false),
            Node::JsonSchemaProps => match key {
                "properties" | "patternProperties" | "definitions" | "dependencies" => {
                    (&JSP_MAP, true)
                }
                "items" | "additionalProperties" | "additionalItems" | "not" => (&JSP, true),
                "default" | "example" | "enum" => (&DEDUCED, true),
                _ => (&LOOSE, true),
            },
            Node::JsonSchemaPropsMap => (&JSP, false),
            Node::Scalar | Node::List(_) | Node::Loose => (&LOOSE, true),
        }
    }

    /// List semantics, `None` for atomic lists (and non-list types).
    pub(crate) fn list(&self) -> Option<&ListNode> {
        match self {
            Node::List(l) if l.ssa != ListType::Atomic => Some(l),
            _ => None,
        }
    }

    /// Strategic merge patch semantics of a list of this type, with the
    /// element type.
    pub(crate) fn smp_list(&self) -> (&SmpList, &Node) {
        static REPLACE: SmpList = SmpList::Replace;
        match self {
            Node::List(l) => (&l.smp, &l.elem),
            Node::Deduced => (&REPLACE, &DEDUCED),
            _ => (&REPLACE, &LOOSE),
        }
    }

    /// Whether an object of this type is atomic.
    pub(crate) fn atomic_map(&self) -> bool {
        matches!(self, Node::Map(m) if m.atomic)
    }

    /// Whether a value of this type is a scalar per the schema even if the
    /// value is an object or list (e.g. `x-kubernetes-int-or-string`).
    pub(crate) fn is_scalar(&self) -> bool {
        matches!(self, Node::Scalar)
    }
}

/// What list/map semantics each path of one kind has; see [`MergeSchema::builtin`]
/// and [`MergeSchema::from_openapi_v3`].
#[derive(Clone, Debug)]
pub struct MergeSchema {
    pub(crate) root: Arc<Node>,
    /// The Go zero value of the kind as kube-apiserver serialises it (e.g.
    /// `{"spec":{"strategy":{}},"status":{}}`), which is what a create is
    /// compared against to compute the creator's managed fields.
    pub(crate) empty: Arc<Value>,
    pub(crate) status_subresource: bool,
}

impl Default for MergeSchema {
    fn default() -> Self {
        MergeSchema {
            root: Arc::new(Node::Deduced),
            empty: Arc::new(json!({})),
            status_subresource: false,
        }
    }
}

impl MergeSchema {
    /// Built-in knowledge for core/v1 Pod, Namespace, ConfigMap, Secret,
    /// ServiceAccount, Event; apps/v1 Deployment, ReplicaSet;
    /// coordination.k8s.io/v1 Lease; autoscaling/v2 HorizontalPodAutoscaler;
    /// events.k8s.io/v1 Event; apiextensions.k8s.io/v1
    /// CustomResourceDefinition; autoscaling/v1 Scale. Any other kind gets
    /// ObjectMeta for `metadata` and deduced semantics elsewhere (atomic
    /// lists, granular maps). The core group is `""` (`"core"` is accepted).
    ///
    /// [`MergeSchema::has_status_subresource`] is true for the kinds whose
    /// real API has a `/status` subresource (Pod, Namespace, Deployment,
    /// ReplicaSet, HPA, CRD).
    pub fn builtin(group: &str, version: &str, kind: &str) -> MergeSchema {
        static CACHE: OnceLock<HashMap<(String, String, String), MergeSchema>> = OnceLock::new();
        let cache = CACHE.get_or_init(build_builtins);
        let group = if group == "core" { "" } else { group };
        let key = (group.to_string(), version.to_string(), kind.to_string());
        match cache.get(&key) {
            Some(s) => s.clone(),
            None => unknown_kind(),
        }
    }

    /// Schema of a custom resource from a CRD version's `openAPIV3Schema`.
    /// Honours `x-kubernetes-list-type` (atomic|set|map),
    /// `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`
    /// (atomic|granular), `x-kubernetes-preserve-unknown-fields` and
    /// `additionalProperties`. Lists without `x-kubernetes-list-type` are
    /// atomic, as in real Kubernetes. `metadata` always uses ObjectMeta's
    /// rules. The result has no status subresource: chain
    /// [`MergeSchema::with_status_subresource`] when the CRD version declares
    /// `subresources.status`.
    pub fn from_openapi_v3(schema: &Value) -> MergeSchema {
        let root = convert_openapi(schema, 0);
        let mut fields = HashMap::new();
        let mut elem = None;
        let mut atomic = false;
        match Arc::try_unwrap(root) {
            Ok(Node::Map(m)) => {
                fields = m.fields;
                elem = m.elem;
                atomic = m.atomic;
            }
            Ok(Node::Deduced) => elem = Some(Arc::new(Node::Deduced)),
            _ => {}
        }
        fields.insert("metadata".into(), object_meta());
        fields.insert("apiVersion".into(), scalar());
        fields.insert("kind".into(), scalar());
        MergeSchema {
            root: Arc::new(Node::Map(MapNode {
                fields,
                elem,
                atomic,
            })),
            empty: Arc::new(json!({})),
            status_subresource: false,
        }
    }

    /// Declare whether the kind has a `/status` subresource. When it has one,
    /// server-side apply and update tracking on the main resource ignore
    /// `.status` (kube-apiserver resets it from the live object and does not
    /// record ownership of it), and on the `status` subresource only `.status`
    /// is taken and owned.
    pub fn with_status_subresource(mut self, has_status: bool) -> MergeSchema {
        self.status_subresource = has_status;
        self
    }

    /// Whether the kind has a `/status` subresource (see [`MergeSchema::with_status_subresource`]).
    #[cfg(test)]
    pub fn has_status_subresource(&self) -> bool {
        self.status_subresource
    }
}

fn unknown_kind() -> MergeSchema {
    MergeSchema {
        root: Arc::new(Node::Map(MapNode {
            fields: HashMap::from([
                ("metadata".to_string(), object_meta()),
                ("apiVersion".to_string(), scalar()),
                ("kind".to_string(), scalar()),
            ]),
            elem: Some(Arc::new(Node::Deduced)),
            atomic: false,
        })),
        empty: Arc::new(json!({})),
        status_subresource: false,
    }
}

fn convert_openapi(s: &Value, depth: usize) -> Arc<Node> {
    if depth > 64 {
        return Arc::new(Node::Deduced);
    }
    let preserve = s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if s.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return scalar();
    }
    match s.get("type").and_then(Value::as_str) {
        Some("object") => {
            let mut fields = HashMap::new();
            if let Some(Value::Object(props)) = s.get("properties") {
                for (k, v) in props {
                    fields.insert(k.clone(), convert_openapi(v, depth + 1));
                }
            }
            let elem = match s.get("additionalProperties") {
                Some(Value::Object(a)) if !a.is_empty() => {
                    Some(convert_openapi(&Value::Object(a.clone()), depth + 1))
                }
                Some(Value::Bool(true)) => Some(Arc::new(Node::Deduced)),
                _ if preserve => Some(Arc::new(Node::Deduced)),
                _ => None,
            };
            if fields.is_empty() && preserve && elem.is_some() {
                let atomic =
                    s.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic");
                if !atomic {
                    return Arc::new(Node::Deduced);
                }
            }
            let atomic = s.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic");
            Arc::new(Node::Map(MapNode {
                fields,
                elem,
                atomic,
            }))
        }
        Some("array") => {
            let items = s.get("items").cloned().unwrap_or(Value::Null);
            let elem = convert_openapi(&items, depth + 1);
            let ssa = match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => ListType::Set,
                Some("map") => {
                    let keys: Vec<String> = s
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|k| k.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    if keys.is_empty() {
                        ListType::Atomic
                    } else {
                        ListType::Map(keys)
                    }
                }
                _ => ListType::Atomic,
            };
            let mut key_defaults = Vec::new();
            if let ListType::Map(keys) = &ssa {
                for k in keys {
                    if let Some(d) = items
                        .get("properties")
                        .and_then(|p| p.get(k))
                        .and_then(|p| p.get("default"))
                    {
                        key_defaults.push((k.clone(), d.clone()));
                    }
                }
            }
            Arc::new(Node::List(ListNode {
                ssa,
                smp: SmpList::Replace,
                elem,
                key_defaults,
            }))
        }
        None if preserve => Arc::new(Node::Deduced),
        _ => scalar(),
    }
}

// ---------------------------------------------------------------------------
// Small constructors for the built-in tables.

fn scalar() -> Arc<Node> {
    Arc::new(Node::Scalar)
}

fn strct(fields: Vec<(&str, Arc<Node>)>) -> Arc<Node> {
    Arc::new(Node::Map(MapNode {
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        elem: None,
        atomic: false,
    }))
}

/// `+structType=atomic` / `+mapType=atomic`.
fn atomic_obj() -> Arc<Node> {
    Arc::new(Node::Map(MapNode {
        fields: HashMap::new(),
        elem: None,
        atomic: true,
    }))
}

/// A granular `map[string]T`.
fn map_of(elem: Arc<Node>) -> Arc<Node> {
    Arc::new(Node::Map(MapNode {
        fields: HashMap::new(),
        elem: Some(elem),
        atomic: false,
    }))
}

/// A list without patch strategy and with `+listType=atomic` (or none).
fn atomic_list() -> Arc<Node> {
    Arc::new(Node::List(ListNode {
        ssa: ListType::Atomic,
        smp: SmpList::Replace,
        elem: Arc::new(Node::Loose),
        key_defaults: Vec::new(),
    }))
}

/// `patchStrategy:"merge" patchMergeKey:"<smp_key>"` and `+listType=map`
/// with `+listMapKey=<keys>`.
fn merge_list(smp_key: &str, keys: &[&str], elem: Arc<Node>) -> Arc<Node> {
    Arc::new(Node::List(ListNode {
        ssa: ListType::Map(keys.iter().map(|s| s.to_string()).collect()),
        smp: SmpList::Merge(Some(smp_key.to_string())),
        elem,
        key_defaults: Vec::new(),
    }))
}

/// No patch strategy (SMP replaces) but `+listType=map`.
fn replace_map_list(keys: &[&str], elem: Arc<Node>) -> Arc<Node> {
    Arc::new(Node::List(ListNode {
        ssa: ListType::Map(keys.iter().map(|s| s.to_string()).collect()),
        smp: SmpList::Replace,
        elem,
        key_defaults: Vec::new(),
    }))
}

/// `+listType=set`, with SMP `patchStrategy:"merge"` when `smp_merge`.
fn set_list(smp_merge: bool) -> Arc<Node> {
    Arc::new(Node::List(ListNode {
        ssa: ListType::Set,
        smp: if smp_merge {
            SmpList::Merge(None)
        } else {
            SmpList::Replace
        },
        elem: scalar(),
        key_defaults: Vec::new(),
    }))
}

/// metav1.ObjectMeta (`k8s.io/apimachinery/pkg/apis/meta/v1/types.go`).
fn object_meta() -> Arc<Node> {
    static OM: OnceLock<Arc<Node>> = OnceLock::new();
    OM.get_or_init(|| {
        strct(vec![
            ("labels", map_of(scalar())),
            ("annotations", map_of(scalar())),
            // +patchStrategy=merge +listType=set
            ("finalizers", set_list(true)),
            // +patchMergeKey=uid +patchStrategy=merge +listType=map +listMapKey=uid
            (
                "ownerReferences",
                merge_list("uid", &["uid"], strct(vec![])),
            ),
            ("managedFields", atomic_list()),
        ])
    })
    .clone()
}

/// metav1.Condition / typed conditions: merge by `type`
/// (`+patchMergeKey=type +patchStrategy=merge +listType=map +listMapKey=type`).
fn conditions() -> Arc<Node> {
    merge_list("type", &["type"], strct(vec![]))
}

fn label_selector() -> Arc<Node> {
    // metav1.LabelSelector is +structType=atomic
    atomic_obj()
}

/// core/v1 Container.
fn container() -> Arc<Node> {
    let env_var = strct(vec![(
        "valueFrom",
        strct(vec![
            ("fieldRef", atomic_obj()),
            ("resourceFieldRef", atomic_obj()),
            ("configMapKeyRef", atomic_obj()),
            ("secretKeyRef", atomic_obj()),
        ]),
    )]);
    let ports = Arc::new(Node::List(ListNode {
        // +patchMergeKey=containerPort +patchStrategy=merge
        // +listType=map +listMapKey=containerPort +listMapKey=protocol
        ssa: ListType::Map(vec!["containerPort".into(), "protocol".into()]),
        smp: SmpList::Merge(Some("containerPort".into())),
        elem: strct(vec![]),
        // protocol has +default="TCP"
        key_defaults: vec![("protocol".into(), Value::String("TCP".into()))],
    }));
    strct(vec![
        ("command", atomic_list()),
        ("args", atomic_list()),
        ("ports", ports),
        ("envFrom", atomic_list()),
        ("env", merge_list("name", &["name"], env_var)),
        (
            "resources",
            strct(vec![
                ("limits", map_of(scalar())),
                ("requests", map_of(scalar())),
                ("claims", replace_map_list(&["name"], strct(vec![]))),
            ]),
        ),
        ("resizePolicy", atomic_list()),
        (
            "volumeMounts",
            merge_list("mountPath", &["mountPath"], strct(vec![])),
        ),
        (
            "volumeDevices",
            merge_list("devicePath", &["devicePath"], strct(vec![])),
        ),
    ])
}

/// core/v1 PodSpec.
fn pod_spec() -> Arc<Node> {
    let c = container();
    strct(vec![
        // +patchMergeKey=name +patchStrategy=merge,retainKeys +listType=map +listMapKey=name
        ("volumes", merge_list("name", &["name"], strct(vec![]))),
        ("initContainers", merge_list("name", &["name"], c.clone())),
        ("containers", merge_list("name", &["name"], c.clone())),
        ("ephemeralContainers", merge_list("name", &["name"], c)),
        // +mapType=atomic
        ("nodeSelector", atomic_obj()),
        (
            "imagePullSecrets",
            merge_list("name", &["name"], strct(vec![])),
        ),
        // +listType=atomic
        ("tolerations", atomic_list()),
        ("hostAliases", merge_list("ip", &["ip"], strct(vec![]))),
        ("readinessGates", atomic_list()),
        (
            "topologySpreadConstraints",
            merge_list(
                "topologyKey",
                &["topologyKey", "whenUnsatisfiable"],
                strct(vec![]),
            ),
        ),
        ("overhead", map_of(scalar())),
        (
            "schedulingGates",
            merge_list("name", &["name"], strct(vec![])),
        ),
        (
            "resourceClaims",
            merge_list("name", &["name"], strct(vec![])),
        ),
    ])
}

fn pod_template() -> Arc<Node> {
    strct(vec![("metadata", object_meta()), ("spec", pod_spec())])
}

fn pod_status() -> Arc<Node> {
    strct(vec![
        ("conditions", conditions()),
        ("podIPs", merge_list("ip", &["ip"], strct(vec![]))),
        ("hostIPs", merge_list("ip", &["ip"], strct(vec![]))),
        ("initContainerStatuses", atomic_list()),
        ("containerStatuses", atomic_list()),
        ("ephemeralContainerStatuses", atomic_list()),
        (
            "resourceClaimStatuses",
            merge_list("name", &["name"], strct(vec![])),
        ),
    ])
}

fn top(fields: Vec<(&str, Arc<Node>)>) -> Arc<Node> {
    let mut all = vec![
        ("apiVersion", scalar()),
        ("kind", scalar()),
        ("metadata", object_meta()),
    ];
    all.extend(fields);
    strct(all)
}

fn jsp() -> Arc<Node> {
    Arc::new(Node::JsonSchemaProps)
}

fn build_builtins() -> HashMap<(String, String, String), MergeSchema> {
    let mut m = HashMap::new();
    let mut add = |g: &str, v: &str, k: &str, root: Arc<Node>, empty: Value, status: bool| {
        m.insert(
            (g.to_string(), v.to_string(), k.to_string()),
            MergeSchema {
                root,
                empty: Arc::new(empty),
                status_subresource: status,
            },
        );
    };
    let meta0 = json!({"creationTimestamp": null});

    add(
        "",
        "v1",
        "Pod",
        top(vec![("spec", pod_spec()), ("status", pod_status())]),
        json!({"metadata": meta0, "spec": {"containers": null}, "status": {}}),
        true,
    );
    let workload_spec = || {
        strct(vec![
            ("selector", label_selector()),
            ("template", pod_template()),
        ])
    };
    let workload_status = || strct(vec![("conditions", conditions())]);
    add(
        "apps",
        "v1",
        "Deployment",
        top(vec![
            ("spec", workload_spec()),
            ("status", workload_status()),
        ]),
        json!({"metadata": meta0, "spec": {"selector": null, "template": {"metadata": meta0, "spec": {"containers": null}}, "strategy": {}}, "status": {}}),
        true,
    );
    add(
        "apps",
        "v1",
        "ReplicaSet",
        top(vec![
            ("spec", workload_spec()),
            ("status", workload_status()),
        ]),
        json!({"metadata": meta0, "spec": {"selector": null, "template": {"metadata": meta0, "spec": {"containers": null}}}, "status": {"replicas": 0}}),
        true,
    );
    add(
        "",
        "v1",
        "Namespace",
        top(vec![
            ("spec", strct(vec![("finalizers", atomic_list())])),
            ("status", strct(vec![("conditions", conditions())])),
        ]),
        json!({"metadata": meta0, "spec": {}, "status": {}}),
        true,
    );
    add(
        "",
        "v1",
        "ConfigMap",
        top(vec![
            ("data", map_of(scalar())),
            ("binaryData", map_of(scalar())),
        ]),
        json!({"metadata": meta0}),
        false,
    );
    add(
        "",
        "v1",
        "Secret",
        top(vec![
            ("data", map_of(scalar())),
            ("stringData", map_of(scalar())),
        ]),
        json!({"metadata": meta0}),
        false,
    );
    add(
        "",
        "v1",
        "ServiceAccount",
        top(vec![
            // +patchMergeKey=name +patchStrategy=merge +listType=map +listMapKey=name
            ("secrets", merge_list("name", &["name"], strct(vec![]))),
            ("imagePullSecrets", atomic_list()),
        ]),
        json!({"metadata": meta0}),
        false,
    );
    add(
        "",
        "v1",
        "Event",
        top(vec![
            ("involvedObject", atomic_obj()),
            ("related", atomic_obj()),
        ]),
        json!({"metadata": meta0, "involvedObject": {}, "source": {}, "firstTimestamp": null, "lastTimestamp": null, "eventTime": null, "reportingComponent": "", "reportingInstance": ""}),
        false,
    );
    add(
        "events.k8s.io",
        "v1",
        "Event",
        top(vec![("regarding", atomic_obj()), ("related", atomic_obj())]),
        json!({"metadata": meta0, "eventTime": null}),
        false,
    );
    add(
        "coordination.k8s.io",
        "v1",
        "Lease",
        top(vec![("spec", strct(vec![]))]),
        json!({"metadata": meta0, "spec": {}}),
        false,
    );
    add(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        top(vec![
            (
                "spec",
                strct(vec![
                    ("metrics", atomic_list()),
                    (
                        "behavior",
                        strct(vec![
                            ("scaleUp", strct(vec![("policies", atomic_list())])),
                            ("scaleDown", strct(vec![("policies", atomic_list())])),
                        ]),
                    ),
                ]),
            ),
            (
                "status",
                strct(vec![
                    ("conditions", conditions()),
                    ("currentMetrics", atomic_list()),
                ]),
            ),
        ]),
        json!({"metadata": meta0, "spec": {"scaleTargetRef": {"kind": "", "name": ""}, "maxReplicas": 0}, "status": {"desiredReplicas": 0}}),
        true,
    );
    add(
        "autoscaling",
        "v1",
        "Scale",
        top(vec![("spec", strct(vec![])), ("status", strct(vec![]))]),
        json!({"metadata": meta0, "spec": {}, "status": {"replicas": 0}}),
        false,
    );
    let crd_version = strct(vec![("schema", strct(vec![("openAPIV3Schema", jsp())]))]);
    add(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        top(vec![
            (
                "spec",
                strct(vec![(
                    "versions",
                    Arc::new(Node::List(ListNode {
                        ssa: ListType::Atomic,
                        smp: SmpList::Replace,
                        elem: crd_version,
                        key_defaults: Vec::new(),
                    })),
                )]),
            ),
            (
                "status",
                strct(vec![
                    ("conditions", conditions()),
                    ("storedVersions", atomic_list()),
                ]),
            ),
        ]),
        json!({"metadata": meta0, "spec": {"group": "", "names": {"plural": "", "kind": ""}, "scope": "", "versions": null}, "status": {"acceptedNames": {"plural": "", "kind": ""}, "storedVersions": null}}),
        true,
    );
    m
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
