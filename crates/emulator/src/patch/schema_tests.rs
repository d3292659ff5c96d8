use super::*;

fn lookup<'a>(s: &'a MergeSchema, path: &[&str]) -> &'a Node {
    let mut n: &Node = &s.root;
    for p in path {
        n = match n {
            Node::List(l) if *p == "[]" => &l.elem,
            _ => n.field(p).0,
        };
    }
    n
}

#[test]
fn builtin_deployment_containers_are_a_list_map_by_name() {
    let s = MergeSchema::builtin("apps", "v1", "Deployment");
    let n = lookup(&s, &["spec", "template", "spec", "containers"]);
    let l = n.list().expect("containers is associative");
    assert_eq!(l.ssa, ListType::Map(vec!["name".into()]));
    assert_eq!(l.smp, SmpList::Merge(Some("name".into())));
    let env = lookup(&s, &["spec", "template", "spec", "containers", "[]", "env"]);
    assert!(env.list().is_some());
    assert!(lookup(&s, &["spec", "selector"]).atomic_map());
    assert!(s.has_status_subresource());
    // tolerations: +listType=atomic, no patch strategy
    let t = lookup(&s, &["spec", "template", "spec", "tolerations"]);
    assert!(t.list().is_none());
    assert_eq!(t.smp_list().0, &SmpList::Replace);
}

#[test]
fn unknown_kind_uses_object_meta_and_deduced() {
    let s = MergeSchema::builtin("example.com", "v1", "Widget");
    assert!(lookup(&s, &["metadata", "finalizers"]).list().is_some());
    let (spec, declared) = s.root.field("spec");
    assert!(!declared);
    assert!(matches!(spec, Node::Deduced));
    assert!(spec.field("items").0.list().is_none());
    assert!(!s.has_status_subresource());
}

#[test]
fn from_openapi_v3_honours_list_and_map_types() {
    let schema = json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "steps": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name", "kind"],
                        "items": {"type": "object", "properties": {
                            "name": {"type": "string"},
                            "kind": {"type": "string", "default": "Action"},
                            "args": {"type": "array", "items": {"type": "string"}}
                        }}
                    },
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "plain": {"type": "array", "items": {"type": "string"}},
                    "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                                 "additionalProperties": {"type": "string"}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "blob": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "port": {"x-kubernetes-int-or-string": true}
                }
            },
            "metadata": {"type": "object"}
        }
    });
    let s = MergeSchema::from_openapi_v3(&schema).with_status_subresource(true);
    let steps = lookup(&s, &["spec", "steps"]).list().expect("map list");
    assert_eq!(steps.ssa, ListType::Map(vec!["name".into(), "kind".into()]));
    assert_eq!(
        steps.key_defaults,
        vec![("kind".to_string(), json!("Action"))]
    );
    assert!(lookup(&s, &["spec", "steps", "[]", "args"])
        .list()
        .is_none());
    assert_eq!(
        lookup(&s, &["spec", "tags"]).list().map(|l| l.ssa.clone()),
        Some(ListType::Set)
    );
    assert!(lookup(&s, &["spec", "plain"]).list().is_none());
    assert!(lookup(&s, &["spec", "selector"]).atomic_map());
    let (_, declared) = lookup(&s, &["spec", "labels"]).field("x");
    assert!(!declared, "additionalProperties keys are map entries");
    assert!(matches!(lookup(&s, &["spec", "blob"]), Node::Deduced));
    assert!(lookup(&s, &["spec", "port"]).is_scalar());
    // metadata always ObjectMeta
    assert!(lookup(&s, &["metadata", "finalizers"]).list().is_some());
    assert!(s.has_status_subresource());
}
