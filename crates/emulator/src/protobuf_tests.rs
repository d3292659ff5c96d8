use super::*;
use prost::Message;
use std::collections::HashMap;

fn msg(name: &str) -> DynamicMessage {
    let desc = pool()
        .expect("pool")
        .get_message_by_name(name)
        .unwrap_or_else(|| panic!("no message {name}"));
    DynamicMessage::new(desc)
}

fn with(name: &str, fields: &[(&str, Pb)]) -> DynamicMessage {
    let mut m = msg(name);
    for (f, v) in fields {
        m.try_set_field_by_name(f, v.clone())
            .unwrap_or_else(|e| panic!("{name}.{f}: {e:?}"));
    }
    m
}

fn s(v: &str) -> Pb {
    Pb::String(v.into())
}

fn m(v: DynamicMessage) -> Pb {
    Pb::Message(v)
}

fn smap(kv: &[(&str, Pb)]) -> Pb {
    Pb::Map(
        kv.iter()
            .map(|(k, v)| (MapKey::String((*k).into()), v.clone()))
            .collect::<HashMap<_, _>>(),
    )
}

/// Wrap a typed message the way client-go does: magic + runtime.Unknown.
fn envelope(api_version: &str, kind: &str, obj: &DynamicMessage) -> Vec<u8> {
    envelope_raw(api_version, kind, obj.encode_to_vec(), "")
}

fn envelope_raw(api_version: &str, kind: &str, raw: Vec<u8>, content_type: &str) -> Vec<u8> {
    let tm = with(
        "apimachinery.pkg.runtime.TypeMeta",
        &[("apiVersion", s(api_version)), ("kind", s(kind))],
    );
    let unknown = with(
        "apimachinery.pkg.runtime.Unknown",
        &[
            ("typeMeta", m(tm)),
            ("raw", Pb::Bytes(raw.into())),
            ("contentEncoding", s("")),
            ("contentType", s(content_type)),
        ],
    );
    let mut out = MAGIC.to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

/// ObjectMeta as Go writes it: every non-pointer field present, zero or not.
fn meta(name: &str, labels: &[(&str, &str)]) -> DynamicMessage {
    let labels: Vec<(&str, Pb)> = labels.iter().map(|(k, v)| (*k, s(v))).collect();
    with(
        "apimachinery.pkg.apis.meta.v1.ObjectMeta",
        &[
            ("name", s(name)),
            ("generateName", s("")),
            ("namespace", s("")),
            ("selfLink", s("")),
            ("uid", s("")),
            ("resourceVersion", s("")),
            ("generation", Pb::I64(0)),
            (
                "creationTimestamp",
                m(msg("apimachinery.pkg.apis.meta.v1.Time")),
            ),
            ("labels", smap(&labels)),
        ],
    )
}

#[test]
fn deployment_round_trip_drops_go_zero_values_keeps_pointer_zeros() {
    let container = with(
        "api.core.v1.Container",
        &[
            ("name", s("nginx")),
            ("image", s("nginx:1.27")),
            ("workingDir", s("")),
            ("imagePullPolicy", s("")),
            ("stdin", Pb::Bool(false)),
            ("tty", Pb::Bool(false)),
            ("resources", m(msg("api.core.v1.ResourceRequirements"))),
            (
                "ports",
                Pb::List(vec![m(with(
                    "api.core.v1.ContainerPort",
                    &[
                        ("containerPort", Pb::I32(80)),
                        ("hostPort", Pb::I32(0)),
                        ("protocol", s("")),
                    ],
                ))]),
            ),
        ],
    );
    let sc = with(
        "api.core.v1.PodSecurityContext",
        &[("runAsUser", Pb::I64(0))],
    );
    let pod_spec = with(
        "api.core.v1.PodSpec",
        &[
            ("containers", Pb::List(vec![m(container)])),
            ("restartPolicy", s("")),
            ("hostNetwork", Pb::Bool(false)),
            ("securityContext", m(sc)),
        ],
    );
    let template = with(
        "api.core.v1.PodTemplateSpec",
        &[
            ("metadata", m(meta("", &[("app", "web")]))),
            ("spec", m(pod_spec)),
        ],
    );
    let selector = with(
        "apimachinery.pkg.apis.meta.v1.LabelSelector",
        &[("matchLabels", smap(&[("app", s("web"))]))],
    );
    let max_unavailable = with(
        "apimachinery.pkg.util.intstr.IntOrString",
        &[
            ("type", Pb::I64(0)),
            ("intVal", Pb::I32(0)),
            ("strVal", s("")),
        ],
    );
    let max_surge = with(
        "apimachinery.pkg.util.intstr.IntOrString",
        &[
            ("type", Pb::I64(1)),
            ("intVal", Pb::I32(0)),
            ("strVal", s("25%")),
        ],
    );
    let strategy = with(
        "api.apps.v1.DeploymentStrategy",
        &[
            ("type", s("RollingUpdate")),
            (
                "rollingUpdate",
                m(with(
                    "api.apps.v1.RollingUpdateDeployment",
                    &[
                        ("maxUnavailable", m(max_unavailable)),
                        ("maxSurge", m(max_surge)),
                    ],
                )),
            ),
        ],
    );
    let spec = with(
        "api.apps.v1.DeploymentSpec",
        &[
            ("replicas", Pb::I32(0)),
            ("selector", m(selector)),
            ("template", m(template)),
            ("strategy", m(strategy)),
            ("minReadySeconds", Pb::I32(0)),
            ("paused", Pb::Bool(false)),
        ],
    );
    let dep = with(
        "api.apps.v1.Deployment",
        &[
            ("metadata", m(meta("web", &[("app", "web"), ("empty", "")]))),
            ("spec", m(spec)),
            ("status", m(msg("api.apps.v1.DeploymentStatus"))),
        ],
    );
    let got = decode(&envelope("apps/v1", "Deployment", &dep)).expect("decode");
    assert_eq!(
        got,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "empty": ""}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "nginx",
                            "image": "nginx:1.27",
                            "ports": [{"containerPort": 80}],
                            "resources": {}
                        }],
                        "securityContext": {"runAsUser": 0}
                    }
                },
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}
                }
            },
            "status": {}
        })
    );
}

#[test]
fn secret_bytes_become_base64_and_configmap_keeps_empty_values() {
    let secret = with(
        "api.core.v1.Secret",
        &[
            ("metadata", m(meta("creds", &[]))),
            (
                "data",
                smap(&[
                    ("password", Pb::Bytes(b"s3cr\xffet".to_vec().into())),
                    ("empty", Pb::Bytes(Vec::new().into())),
                ]),
            ),
            ("type", s("Opaque")),
            ("immutable", Pb::Bool(false)),
        ],
    );
    let got = decode(&envelope("v1", "Secret", &secret)).expect("decode");
    assert_eq!(
        got["data"],
        json!({"password": "czNjcv9ldA==", "empty": ""})
    );
    assert_eq!(got["type"], "Opaque");
    assert_eq!(got["immutable"], false, "a pointer bool keeps false");

    let cm = with(
        "api.core.v1.ConfigMap",
        &[
            ("metadata", m(meta("c", &[]))),
            ("data", smap(&[("a", s("b")), ("blank", s(""))])),
        ],
    );
    let got = decode(&envelope("v1", "ConfigMap", &cm)).expect("decode");
    assert_eq!(got["data"], json!({"a": "b", "blank": ""}));
    assert!(got.get("immutable").is_none());
}

#[test]
fn times_durations_quantities_and_extra_values() {
    let t = with(
        "apimachinery.pkg.apis.meta.v1.Time",
        &[("seconds", Pb::I64(1_700_000_000)), ("nanos", Pb::I32(0))],
    );
    let pod_meta = with(
        "apimachinery.pkg.apis.meta.v1.ObjectMeta",
        &[("name", s("p")), ("deletionTimestamp", m(t))],
    );
    let resources = with(
        "api.core.v1.ResourceRequirements",
        &[(
            "limits",
            smap(&[(
                "cpu",
                m(with(
                    "apimachinery.pkg.api.resource.Quantity",
                    &[("string", s("250m"))],
                )),
            )]),
        )],
    );
    let c = with(
        "api.core.v1.Container",
        &[("name", s("a")), ("resources", m(resources))],
    );
    let pod = with(
        "api.core.v1.Pod",
        &[
            ("metadata", m(pod_meta)),
            (
                "spec",
                m(with(
                    "api.core.v1.PodSpec",
                    &[("containers", Pb::List(vec![m(c)]))],
                )),
            ),
        ],
    );
    let got = decode(&envelope("v1", "Pod", &pod)).expect("decode");
    assert_eq!(got["metadata"]["deletionTimestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(
        got["spec"]["containers"][0]["resources"]["limits"]["cpu"],
        "250m"
    );

    let micro = with(
        "apimachinery.pkg.apis.meta.v1.MicroTime",
        &[
            ("seconds", Pb::I64(1_700_000_000)),
            ("nanos", Pb::I32(123_456_789)),
        ],
    );
    let ev = with(
        "api.events.v1.Event",
        &[
            ("metadata", m(meta("e", &[]))),
            ("eventTime", m(micro)),
            ("reason", s("Started")),
        ],
    );
    let got = decode(&envelope("events.k8s.io/v1", "Event", &ev)).expect("decode");
    assert_eq!(got["eventTime"], "2023-11-14T22:13:20.123456Z");

    let extra = with(
        "api.authorization.v1.ExtraValue",
        &[("items", Pb::List(vec![s("x"), s("y")]))],
    );
    let sar = with(
        "api.authorization.v1.SubjectAccessReviewSpec",
        &[
            ("user", s("alice")),
            ("extra", smap(&[("scopes", m(extra))])),
        ],
    );
    let review = with(
        "api.authorization.v1.SubjectAccessReview",
        &[("metadata", m(meta("", &[]))), ("spec", m(sar))],
    );
    let got = decode(&envelope(
        "authorization.k8s.io/v1",
        "SubjectAccessReview",
        &review,
    ))
    .expect("decode");
    assert_eq!(
        got["spec"],
        json!({"user": "alice", "extra": {"scopes": ["x", "y"]}})
    );
}

#[test]
fn go_durations() {
    for (ns, want) in [
        (0, "0s"),
        (999, "999ns"),
        (1_500, "1.5µs"),
        (2_000_000, "2ms"),
        (1_500_000_000, "1.5s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (-3_723_000_000_000, "-1h2m3s"),
    ] {
        assert_eq!(go_duration(ns), want, "{ns}");
    }
}

#[test]
fn kinds_outside_the_descriptors_are_415_naming_the_kind() {
    let cm = with("api.core.v1.ConfigMap", &[("metadata", m(meta("c", &[])))]);
    for (api_version, kind) in [
        ("example.com/v1", "Widget"),
        ("apps.example.com/v1", "Deployment"),
        ("v1", "NoSuchKind"),
    ] {
        let err = decode(&envelope(api_version, kind, &cm)).expect_err("unknown kind");
        assert!(matches!(err, ProtoError::UnknownKind { .. }), "{err}");
        let api: ApiError = err.into();
        assert_eq!(api.code, 415);
        assert!(
            api.message.contains(kind) && api.message.contains("JSON"),
            "{}",
            api.message
        );
    }
}

#[test]
fn bad_bodies_are_400() {
    let err = decode(b"{\"kind\":\"ConfigMap\"}").expect_err("no magic");
    assert!(matches!(err, ProtoError::Magic));
    assert_eq!(ApiError::from(err).code, 400);
    let err = decode(b"k8s\0\xff\xff\xff").expect_err("garbage");
    assert!(matches!(err, ProtoError::Envelope(_)), "{err}");
    // A typed message cut short: the envelope is fine, the ConfigMap is not.
    let cm = with(
        "api.core.v1.ConfigMap",
        &[
            ("metadata", m(meta("c", &[]))),
            ("data", smap(&[("a", s("b"))])),
        ],
    );
    let mut raw = cm.encode_to_vec();
    raw.truncate(raw.len() - 1);
    let err = decode(&envelope_raw("v1", "ConfigMap", raw, "")).expect_err("cut short");
    assert!(matches!(err, ProtoError::Decode { .. }), "{err}");
    assert_eq!(ApiError::from(err).code, 400);
    // JSON wrapped in the envelope is not decoded as protobuf.
    let err = decode(&envelope_raw(
        "v1",
        "ConfigMap",
        b"{}".to_vec(),
        "application/json",
    ))
    .expect_err("json inside");
    assert!(matches!(err, ProtoError::Encoding { .. }), "{err}");
    assert_eq!(ApiError::from(err).code, 415);
}

#[test]
fn group_packages() {
    assert_eq!(package("v1").as_deref(), Some("api.core.v1"));
    assert_eq!(package("apps/v1").as_deref(), Some("api.apps.v1"));
    assert_eq!(
        package("rbac.authorization.k8s.io/v1").as_deref(),
        Some("api.rbac.v1")
    );
    assert_eq!(
        package("autoscaling/v2").as_deref(),
        Some("api.autoscaling.v2")
    );
    assert_eq!(package("stable.example.com/v1"), None);
    for (api_version, kind) in [
        ("v1", "Namespace"),
        ("v1", "ServiceAccount"),
        ("v1", "Service"),
        ("v1", "Event"),
        ("apps/v1", "ReplicaSet"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("batch/v1", "Job"),
        ("batch/v1", "CronJob"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("autoscaling/v1", "HorizontalPodAutoscaler"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("policy/v1", "Eviction"),
        ("v1", "DeleteOptions"),
        ("apps/v1", "DeleteOptions"),
    ] {
        assert!(
            message_for(pool().expect("pool"), api_version, kind).is_some(),
            "{api_version} {kind}"
        );
    }
}

#[test]
fn every_keep_zero_entry_names_a_real_field() {
    let pool = pool().expect("pool");
    let missing: Vec<&str> = KEEP_ZERO
        .iter()
        .copied()
        .filter(|entry| {
            let (message, field) = entry.split_once('.').expect("message.field");
            !pool
                .all_messages()
                .any(|m| m.name() == message && m.get_field_by_name(field).is_some())
        })
        .collect();
    assert!(missing.is_empty(), "no such message fields: {missing:?}");
}

/// Bodies captured from kubectl v1.36.2 (`-v=9` prints them), so the
/// decoder is checked against Go's own encoder without kubectl here:
/// `kubectl -n x create deployment web --image=nginx:1.27 --replicas=0 --port=8080`,
/// `kubectl -n x create secret generic s2 --from-literal=password=hunter2 --from-literal=empty=`,
/// `kubectl -n x autoscale deployment hpa-target --min=2 --max=5 --cpu=80%`.
#[test]
fn bodies_captured_from_kubectl() {
    let deployment = decode(include_bytes!("testdata/kubectl-create-deployment.pb"));
    assert_eq!(
        deployment.expect("deployment"),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "x", "labels": {"app": "web"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "nginx",
                        "image": "nginx:1.27",
                        "ports": [{"containerPort": 8080}],
                        "resources": {}
                    }]}
                },
                "strategy": {}
            },
            "status": {}
        })
    );
    let secret = decode(include_bytes!("testdata/kubectl-create-secret.pb"));
    assert_eq!(
        secret.expect("secret"),
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s2", "namespace": "x"},
            "data": {"password": base64_encode(b"hunter2"), "empty": ""}
        })
    );
    let hpa = decode(include_bytes!("testdata/kubectl-autoscale-hpa.pb"));
    assert_eq!(
        hpa.expect("hpa"),
        json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "hpa-target", "namespace": "x"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hpa-target"},
                "minReplicas": 2,
                "maxReplicas": 5,
                "metrics": [{
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}
                }]
            },
            "status": {}
        })
    );
}

#[test]
fn accept_headers() {
    assert!(accepts_json(None));
    assert!(accepts_json(Some("application/json")));
    assert!(accepts_json(Some(
        "application/vnd.kubernetes.protobuf, */*"
    )));
    assert!(accepts_json(Some(
        "application/vnd.kubernetes.protobuf,application/json"
    )));
    assert!(accepts_json(Some(
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    )));
    assert!(!accepts_json(Some("application/vnd.kubernetes.protobuf")));
    assert!(!accepts_json(Some(
        "application/vnd.kubernetes.protobuf;stream=watch"
    )));
    assert!(!accepts_json(Some("application/yaml")));
}
