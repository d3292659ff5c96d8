//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`),
//! as kubectl's typed commands send them (`kubectl create deployment`,
//! `create configmap`, `run`, ...), decoded into the JSON object the
//! emulator stores. The server then handles it exactly like a JSON body.
//!
//! Wire format: the magic `k8s\0`, then a `runtime.Unknown` envelope whose
//! `typeMeta` names the kind and whose `raw` is the typed message. The typed
//! message is decoded generically with `prost-reflect` against the
//! descriptors of the stable built-in API groups (`k8s-api.binpb`, made by
//! `crates/emulator/k8s-proto-descriptors.sh` from Kubernetes' own generated.proto
//! files), then turned into Kubernetes JSON:
//!
//! - field names are the JSON names already (go-to-protobuf uses the json tags);
//! - `Time`/`MicroTime` become RFC 3339 strings, `Duration` a Go duration
//!   string, `Quantity` its string, `IntOrString` an int or a string,
//!   `RawExtension`/`FieldsV1` the embedded JSON, `bytes` base64, and the
//!   named string lists (`ExtraValue`, `Verbs`) plain arrays;
//! - Go's marshaller writes every non-pointer field, zero or not, so a
//!   present zero scalar is dropped (what `omitempty` does in Go's JSON)
//!   unless the Go field is a pointer or has no `omitempty`, where zero is a
//!   real value (`replicas: 0`, `runAsUser: 0`): those are listed in
//!   [`KEEP_ZERO`].

use std::collections::HashSet;
use std::sync::LazyLock;

use prost_reflect::{
    DescriptorPool, DynamicMessage, MapKey, MessageDescriptor, ReflectMessage, Value as Pb,
};
use serde_json::{json, Map, Value};

use super::pagination::base64_encode;
use super::status::ApiError;

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The 4-byte prefix of every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// FileDescriptorSet of the stable built-in API groups (Kubernetes 1.35).
static DESCRIPTORS: &[u8] = include_bytes!("k8s-api.binpb");

static POOL: LazyLock<Result<DescriptorPool, String>> =
    LazyLock::new(|| DescriptorPool::decode(DESCRIPTORS).map_err(|e| e.to_string()));

/// Errors decoding a protobuf request body.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The body lacks the `k8s\0` prefix.
    #[error("the protobuf body does not start with the Kubernetes magic number \"k8s\\x00\"")]
    Magic,
    /// The `runtime.Unknown` envelope did not decode.
    #[error("decoding the protobuf envelope (runtime.Unknown): {0}")]
    Envelope(#[source] prost::DecodeError),
    /// The envelope holds something other than plain protobuf.
    #[error(
        "the protobuf envelope holds contentType {content_type:?} / contentEncoding \
         {content_encoding:?}; only unencoded protobuf is supported, or send JSON (Content-Type: application/json)"
    )]
    Encoding {
        /// `contentType` of the envelope.
        content_type: String,
        /// `contentEncoding` of the envelope.
        content_encoding: String,
    },
    /// No descriptor for this kind: not a built-in kind of a stable version.
    #[error(
        "protobuf request bodies are not supported for kind {kind:?} (apiVersion {api_version:?}) \
         by this emulator; send the object as JSON (Content-Type: application/json)"
    )]
    UnknownKind {
        /// `typeMeta.apiVersion` of the envelope.
        api_version: String,
        /// `typeMeta.kind` of the envelope.
        kind: String,
    },
    /// The typed message did not decode.
    #[error("decoding {kind} from protobuf: {source}")]
    Decode {
        /// The kind being decoded.
        kind: String,
        /// The decoder's error.
        #[source]
        source: prost::DecodeError,
    },
    /// A `RawExtension` or `FieldsV1` held bytes that are not JSON.
    #[error("{0} in the protobuf body holds data that is not JSON")]
    NotJson(String),
    /// The embedded descriptors did not load (a build problem).
    #[error("the embedded Kubernetes protobuf descriptors do not load: {0}")]
    Descriptors(String),
}

impl From<ProtoError> for ApiError {
    fn from(e: ProtoError) -> Self {
        match e {
            ProtoError::UnknownKind { .. } | ProtoError::Encoding { .. } => {
                ApiError::new(415, "UnsupportedMediaType", e.to_string())
            }
            ProtoError::Descriptors(_) => ApiError::new(500, "InternalError", e.to_string()),
            _ => ApiError::bad_request(e.to_string()),
        }
    }
}

/// Fields whose zero value (`0`, `false`, `""`, an int-or-string `0`) is
/// kept: Go pointers (nil is not written, so a present zero was set on
/// purpose) and a few non-pointer fields without `omitempty`.
/// `"<message>.<field>"`, the message by its short name.
const KEEP_ZERO: &[&str] = &[
    // meta/v1
    "ObjectMeta.deletionGracePeriodSeconds",
    "OwnerReference.controller",
    "OwnerReference.blockOwnerDeletion",
    "DeleteOptions.gracePeriodSeconds",
    "DeleteOptions.orphanDependents",
    "DeleteOptions.propagationPolicy",
    "DeleteOptions.ignoreStoreReadErrorWithClusterBreakingPotential",
    "Preconditions.uid",
    "Preconditions.resourceVersion",
    // core/v1: pods and containers
    "PodSpec.terminationGracePeriodSeconds",
    "PodSpec.activeDeadlineSeconds",
    "PodSpec.automountServiceAccountToken",
    "PodSpec.shareProcessNamespace",
    "PodSpec.priority",
    "PodSpec.runtimeClassName",
    "PodSpec.enableServiceLinks",
    "PodSpec.preemptionPolicy",
    "PodSpec.setHostnameAsFQDN",
    "PodSpec.hostUsers",
    "PodSpec.hostnameOverride",
    "PodSecurityContext.runAsUser",
    "PodSecurityContext.runAsGroup",
    "PodSecurityContext.runAsNonRoot",
    "PodSecurityContext.fsGroup",
    "PodSecurityContext.fsGroupChangePolicy",
    "PodSecurityContext.supplementalGroupsPolicy",
    "PodSecurityContext.seLinuxChangePolicy",
    "SecurityContext.privileged",
    "SecurityContext.runAsUser",
    "SecurityContext.runAsGroup",
    "SecurityContext.runAsNonRoot",
    "SecurityContext.readOnlyRootFilesystem",
    "SecurityContext.allowPrivilegeEscalation",
    "SecurityContext.procMount",
    "WindowsSecurityContextOptions.gmsaCredentialSpecName",
    "WindowsSecurityContextOptions.gmsaCredentialSpec",
    "WindowsSecurityContextOptions.runAsUserName",
    "WindowsSecurityContextOptions.hostProcess",
    "SeccompProfile.localhostProfile",
    "AppArmorProfile.localhostProfile",
    "Container.restartPolicy",
    "EphemeralContainerCommon.restartPolicy",
    "ContainerPort.containerPort",
    "Probe.terminationGracePeriodSeconds",
    "GRPCAction.service",
    "SleepAction.seconds",
    "PodDNSConfigOption.value",
    "Toleration.tolerationSeconds",
    "TopologySpreadConstraint.minDomains",
    "TopologySpreadConstraint.nodeAffinityPolicy",
    "TopologySpreadConstraint.nodeTaintsPolicy",
    "VolumeMount.mountPropagation",
    "VolumeMount.recursiveReadOnly",
    // core/v1: env and volumes
    "ConfigMapKeySelector.optional",
    "SecretKeySelector.optional",
    "ConfigMapEnvSource.optional",
    "SecretEnvSource.optional",
    "ConfigMapVolumeSource.defaultMode",
    "ConfigMapVolumeSource.optional",
    "SecretVolumeSource.defaultMode",
    "SecretVolumeSource.optional",
    "KeyToPath.mode",
    "ProjectedVolumeSource.defaultMode",
    "ConfigMapProjection.optional",
    "SecretProjection.optional",
    "ServiceAccountTokenProjection.expirationSeconds",
    "DownwardAPIVolumeSource.defaultMode",
    "DownwardAPIVolumeFile.mode",
    "ClusterTrustBundleProjection.name",
    "ClusterTrustBundleProjection.signerName",
    "ClusterTrustBundleProjection.optional",
    "HostPathVolumeSource.type",
    "CSIVolumeSource.readOnly",
    "CSIVolumeSource.fsType",
    "PersistentVolumeClaimSpec.storageClassName",
    "PersistentVolumeClaimSpec.volumeMode",
    "PersistentVolumeClaimSpec.volumeAttributesClassName",
    // core/v1: other kinds
    "ServiceAccount.automountServiceAccountToken",
    "Secret.immutable",
    "ConfigMap.immutable",
    "ServiceSpec.ipFamilyPolicy",
    "ServiceSpec.allocateLoadBalancerNodePorts",
    "ServiceSpec.loadBalancerClass",
    "ServiceSpec.internalTrafficPolicy",
    "ServiceSpec.trafficDistribution",
    "ServicePort.appProtocol",
    "ServicePort.port",
    "ClientIPConfig.timeoutSeconds",
    // apps/v1
    "DeploymentSpec.replicas",
    "DeploymentSpec.revisionHistoryLimit",
    "DeploymentSpec.progressDeadlineSeconds",
    "RollingUpdateDeployment.maxUnavailable",
    "RollingUpdateDeployment.maxSurge",
    "ReplicaSetSpec.replicas",
    "StatefulSetSpec.replicas",
    "StatefulSetSpec.revisionHistoryLimit",
    "RollingUpdateStatefulSetStrategy.partition",
    "RollingUpdateStatefulSetStrategy.maxUnavailable",
    "DaemonSetSpec.revisionHistoryLimit",
    "RollingUpdateDaemonSet.maxUnavailable",
    "RollingUpdateDaemonSet.maxSurge",
    // batch/v1
    "JobSpec.parallelism",
    "JobSpec.completions",
    "JobSpec.activeDeadlineSeconds",
    "JobSpec.backoffLimit",
    "JobSpec.backoffLimitPerIndex",
    "JobSpec.maxFailedIndexes",
    "JobSpec.manualSelector",
    "JobSpec.ttlSecondsAfterFinished",
    "JobSpec.completionMode",
    "JobSpec.suspend",
    "JobSpec.podReplacementPolicy",
    "JobSpec.managedBy",
    "PodFailurePolicyOnExitCodesRequirement.containerName",
    "SuccessPolicyRule.succeededIndexes",
    "SuccessPolicyRule.succeededCount",
    "CronJobSpec.timeZone",
    "CronJobSpec.startingDeadlineSeconds",
    "CronJobSpec.suspend",
    "CronJobSpec.successfulJobsHistoryLimit",
    "CronJobSpec.failedJobsHistoryLimit",
    // autoscaling/v1, v2
    "HorizontalPodAutoscalerSpec.minReplicas",
    "HorizontalPodAutoscalerSpec.targetCPUUtilizationPercentage",
    "HPAScalingRules.stabilizationWindowSeconds",
    "HPAScalingRules.selectPolicy",
    "MetricTarget.averageUtilization",
    // policy/v1
    "PodDisruptionBudgetSpec.minAvailable",
    "PodDisruptionBudgetSpec.maxUnavailable",
    "PodDisruptionBudgetSpec.unhealthyPodEvictionPolicy",
    // networking/v1
    "IngressSpec.ingressClassName",
    "HTTPIngressPath.pathType",
    "NetworkPolicyPort.protocol",
    "NetworkPolicyPort.port",
    "NetworkPolicyPort.endPort",
    // scheduling/v1, authentication/v1, coordination/v1
    "PriorityClass.value",
    "PriorityClass.preemptionPolicy",
    "TokenRequestSpec.expirationSeconds",
    "LeaseSpec.holderIdentity",
    "LeaseSpec.leaseDurationSeconds",
    "LeaseSpec.leaseTransitions",
    "LeaseSpec.strategy",
    "LeaseSpec.preferredHolder",
    // discovery/v1
    "Endpoint.hostname",
    "Endpoint.nodeName",
    "Endpoint.zone",
    "EndpointConditions.ready",
    "EndpointConditions.serving",
    "EndpointConditions.terminating",
    "EndpointPort.name",
    "EndpointPort.protocol",
    "EndpointPort.port",
    "EndpointPort.appProtocol",
];

static KEEP_ZERO_SET: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| KEEP_ZERO.iter().copied().collect());

fn keeps_zero(message: &MessageDescriptor, field: &str) -> bool {
    KEEP_ZERO_SET.contains(format!("{}.{field}", message.name()).as_str())
}

fn pool() -> Result<&'static DescriptorPool, ProtoError> {
    POOL.as_ref()
        .map_err(|e| ProtoError::Descriptors(e.clone()))
}

/// Whether a `Content-Type` is Kubernetes protobuf.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// The protobuf package of an API group version in the descriptor set
/// (`apps/v1` -> `api.apps.v1`, `rbac.authorization.k8s.io/v1` ->
/// `api.rbac.v1`), or `None` for groups that are not built in.
fn package(api_version: &str) -> Option<String> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let short = if group.is_empty() {
        "core"
    } else if !group.contains('.') {
        group
    } else if let Some(rest) = group.strip_suffix(".k8s.io") {
        match rest {
            "internal.apiserver" => "apiserverinternal",
            _ => rest.split('.').next()?,
        }
    } else {
        return None;
    };
    Some(format!("api.{short}.{version}"))
}

/// The message type for a kind: the group's own, or the meta/v1 options
/// types every group version carries (`DeleteOptions` on a delete body).
fn message_for(pool: &DescriptorPool, api_version: &str, kind: &str) -> Option<MessageDescriptor> {
    if let Some(m) =
        package(api_version).and_then(|p| pool.get_message_by_name(&format!("{p}.{kind}")))
    {
        return Some(m);
    }
    match kind {
        "DeleteOptions" | "CreateOptions" | "UpdateOptions" | "PatchOptions" => {
            pool.get_message_by_name(&format!("apimachinery.pkg.apis.meta.v1.{kind}"))
        }
        _ => None,
    }
}

fn str_field(msg: &DynamicMessage, name: &str) -> String {
    msg.get_field_by_name(name)
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Decode a protobuf request body into the JSON object it stands for, with
/// `apiVersion` and `kind` from the envelope.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let pool = pool()?;
    let rest = body.strip_prefix(MAGIC).ok_or(ProtoError::Magic)?;
    let unknown_desc = pool
        .get_message_by_name("apimachinery.pkg.runtime.Unknown")
        .ok_or_else(|| ProtoError::Descriptors("runtime.Unknown is missing".into()))?;
    let unknown = DynamicMessage::decode(unknown_desc, rest).map_err(ProtoError::Envelope)?;
    let content_type = str_field(&unknown, "contentType");
    let content_encoding = str_field(&unknown, "contentEncoding");
    if !(content_type.is_empty() || is_protobuf(&content_type)) || !content_encoding.is_empty() {
        return Err(ProtoError::Encoding {
            content_type,
            content_encoding,
        });
    }
    let (api_version, kind) = match unknown.get_field_by_name("typeMeta").as_deref() {
        Some(Pb::Message(tm)) => (str_field(tm, "apiVersion"), str_field(tm, "kind")),
        _ => (String::new(), String::new()),
    };
    let desc = message_for(pool, &api_version, &kind).ok_or_else(|| ProtoError::UnknownKind {
        api_version: api_version.clone(),
        kind: kind.clone(),
    })?;
    let raw = match unknown.get_field_by_name("raw").as_deref() {
        Some(Pb::Bytes(b)) => b.clone(),
        _ => Default::default(),
    };
    let msg = DynamicMessage::decode(desc, raw).map_err(|source| ProtoError::Decode {
        kind: kind.clone(),
        source,
    })?;
    let mut obj = match message(&msg)? {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    // The typed message carries no TypeMeta: the envelope has it.
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

/// A message as Kubernetes JSON; `None` for a value that Go's JSON would
/// leave out or write as `null` (a zero `Time`, an empty `Quantity`).
fn message(msg: &DynamicMessage) -> Result<Option<Value>, ProtoError> {
    let desc = msg.descriptor();
    let int = |name: &str| match msg.get_field_by_name(name).as_deref() {
        Some(Pb::I64(n)) => *n,
        Some(Pb::I32(n)) => i64::from(*n),
        _ => 0,
    };
    match desc.full_name() {
        "apimachinery.pkg.apis.meta.v1.Time" | "apimachinery.pkg.apis.meta.v1.MicroTime" => {
            let (secs, nanos) = (int("seconds"), int("nanos"));
            if secs == 0 && nanos == 0 {
                return Ok(None);
            }
            let micro = desc.name() == "MicroTime";
            Ok(Some(json!(rfc3339(secs, nanos, micro))))
        }
        "apimachinery.pkg.apis.meta.v1.Duration" => Ok(Some(json!(go_duration(int("duration"))))),
        "apimachinery.pkg.api.resource.Quantity" => {
            let s = str_field(msg, "string");
            Ok((!s.is_empty()).then(|| json!(s)))
        }
        "apimachinery.pkg.util.intstr.IntOrString" => Ok(Some(if int("type") == 1 {
            json!(str_field(msg, "strVal"))
        } else {
            json!(int("intVal"))
        })),
        "apimachinery.pkg.runtime.RawExtension" | "apimachinery.pkg.apis.meta.v1.FieldsV1" => {
            let field = if desc.name() == "FieldsV1" {
                "Raw"
            } else {
                "raw"
            };
            match msg.get_field_by_name(field).as_deref() {
                Some(Pb::Bytes(b)) if !b.is_empty() => serde_json::from_slice(b)
                    .map(Some)
                    .map_err(|_| ProtoError::NotJson(desc.name().to_string())),
                _ => Ok(None),
            }
        }
        // Go named string slices: a message with `repeated string items`.
        _ if matches!(desc.name(), "ExtraValue" | "Verbs") => {
            match msg.get_field_by_name("items").as_deref() {
                Some(Pb::List(items)) => Ok(Some(Value::Array(
                    items
                        .iter()
                        .filter_map(|v| v.as_str().map(|s| json!(s)))
                        .collect(),
                ))),
                _ => Ok(Some(json!([]))),
            }
        }
        _ => {
            let mut obj = Map::new();
            for (field, value) in msg.fields() {
                let keep_zero = keeps_zero(&desc, field.name());
                if let Some(v) = field_value(value, keep_zero)? {
                    obj.insert(field.name().to_string(), v);
                }
            }
            Ok(Some(Value::Object(obj)))
        }
    }
}

/// One field value; `keep_zero` keeps `0`/`false`/`""` (pointer fields,
/// list elements, map values).
fn field_value(v: &Pb, keep_zero: bool) -> Result<Option<Value>, ProtoError> {
    let scalar = |zero: bool, v: Value| Ok((keep_zero || !zero).then_some(v));
    match v {
        Pb::Bool(b) => scalar(!*b, json!(b)),
        Pb::I32(n) => scalar(*n == 0, json!(n)),
        Pb::I64(n) => scalar(*n == 0, json!(n)),
        Pb::U32(n) => scalar(*n == 0, json!(n)),
        Pb::U64(n) => scalar(*n == 0, json!(n)),
        Pb::F32(n) => scalar(*n == 0.0, json!(n)),
        Pb::F64(n) => scalar(*n == 0.0, json!(n)),
        Pb::EnumNumber(n) => scalar(*n == 0, json!(n)),
        Pb::String(s) => scalar(s.is_empty(), json!(s)),
        Pb::Bytes(b) => scalar(b.is_empty(), json!(base64_encode(b))),
        Pb::Message(m) => {
            let v = message(m)?;
            // A non-pointer IntOrString is always written; its zero means unset.
            let zero_int_or_string = m.descriptor().name() == "IntOrString" && v == Some(json!(0));
            Ok(v.filter(|_| keep_zero || !zero_int_or_string))
        }
        Pb::List(items) => {
            if items.is_empty() {
                return Ok(None);
            }
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(field_value(item, true)?.unwrap_or(Value::Null));
            }
            Ok(Some(Value::Array(out)))
        }
        Pb::Map(entries) => {
            if entries.is_empty() {
                return Ok(None);
            }
            let mut keys: Vec<&MapKey> = entries.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                let key = match k {
                    MapKey::String(s) => s.clone(),
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(n) => n.to_string(),
                    MapKey::I64(n) => n.to_string(),
                    MapKey::U32(n) => n.to_string(),
                    MapKey::U64(n) => n.to_string(),
                };
                if let Some(v) = entries.get(k) {
                    out.insert(key, field_value(v, true)?.unwrap_or(Value::Null));
                }
            }
            Ok(Some(Value::Object(out)))
        }
    }
}

/// `metav1.Time` (second precision) or `metav1.MicroTime` as RFC 3339, UTC.
fn rfc3339(secs: i64, nanos: i64, micro: bool) -> String {
    let Ok(ts) = jiff::Timestamp::from_second(secs) else {
        return String::new();
    };
    let base = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if micro {
        format!("{base}.{:06}Z", nanos.clamp(0, 999_999_999) / 1000)
    } else {
        format!("{base}Z")
    }
}

/// A `time.Duration` (nanoseconds) the way Go's `Duration.String` writes it.
fn go_duration(d: i64) -> String {
    fn frac(v: u64, scale: u64) -> String {
        let (int, rem) = (v / scale, v % scale);
        if rem == 0 {
            return int.to_string();
        }
        let digits = scale.ilog10() as usize;
        let f = format!("{rem:0digits$}");
        format!("{int}.{}", f.trim_end_matches('0'))
    }
    if d == 0 {
        return "0s".into();
    }
    let sign = if d < 0 { "-" } else { "" };
    let u = d.unsigned_abs();
    let body = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", frac(u, 1_000))
    } else if u < 1_000_000_000 {
        format!("{}ms", frac(u, 1_000_000))
    } else {
        let secs = u / 1_000_000_000;
        let mut s = format!("{}s", frac(u % 60_000_000_000, 1_000_000_000));
        if secs >= 60 {
            s = format!("{}m{s}", (secs / 60) % 60);
        }
        if secs >= 3600 {
            s = format!("{}h{s}", secs / 3600);
        }
        s
    };
    format!("{sign}{body}")
}

/// Whether an `Accept` header lets the server answer JSON (the only
/// encoding it writes). No header, `*/*`, `application/*` and
/// `application/json` (with any parameters, e.g. `as=Table`) do; a
/// protobuf-only or YAML-only client does not.
pub fn accepts_json(accept: Option<&str>) -> bool {
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return true;
    };
    accept.split(',').any(|range| {
        let mime = range.split(';').next().unwrap_or_default().trim();
        ["*/*", "application/*", "application/json"]
            .iter()
            .any(|m| mime.eq_ignore_ascii_case(m))
    })
}

/// 406 for a client that accepts no JSON.
pub fn not_acceptable(accept: &str) -> ApiError {
    ApiError::new(
        406,
        "NotAcceptable",
        format!(
            "only the following media types are accepted: application/json, \
             application/json;as=Table;v=v1;g=meta.k8s.io (this emulator answers JSON only; \
             it reads {MEDIA_TYPE} request bodies but never writes protobuf); Accept was {accept:?}"
        ),
    )
}

#[cfg(test)]
#[path = "protobuf_tests.rs"]
mod tests;
