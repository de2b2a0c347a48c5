//! Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`),
//! which kubectl's typed clients send: `kubectl create namespace|configmap|secret|
//! deployment|service|role|...` and `kubectl drain`'s evictions.
//!
//! The wire form is the API server's (`runtime/serializer/protobuf`): the magic
//! `k8s\0`, then a `runtime.Unknown` envelope naming the body's `apiVersion` and `kind`
//! and holding the message. The message is read into k8s-pb's type for that kind (its
//! fields and tags are the upstream `generated.proto`'s) and carried over, field by
//! field, into k8s-openapi's type, whose JSON is what every other route already takes.
//! Which fields the two types share is generated (`fields.rs`, by
//! `scripts/gen-protobuf-fields.py`); the few types whose JSON is not a struct of their
//! wire fields (times, quantities, int-or-strings, raw JSON) are carried over here.
//!
//! A field the message has and Kubernetes 1.33 does not (k8s-pb follows newer releases)
//! is skipped, as a 1.33 server skips a field number it does not know.

mod fields;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, MicroTime, Time};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde::Serialize;
use serde_json::Value;

/// The magic prefix of every protobuf-encoded Kubernetes object.
const MAGIC: &[u8] = b"k8s\0";

/// Reads a protobuf body into the JSON object it stands for (with its `apiVersion` and
/// `kind`). The error is a sentence for a 400 (`Err(None)`: a kind this simulator does
/// not read from protobuf, for a 415).
pub(crate) fn to_json(body: &[u8]) -> Result<Value, Option<String>> {
    let envelope = body.strip_prefix(MAGIC).ok_or_else(|| {
        Some(
            "provided object is not in the Kubernetes protobuf encoding (no \"k8s\\x00\" prefix)"
                .to_string(),
        )
    })?;
    let unknown = Unknown::decode(envelope).map_err(|e| {
        Some(format!(
            "the body of the request could not be decoded as protobuf: {e}"
        ))
    })?;
    if let Some(encoding) = unknown
        .content_encoding
        .as_deref()
        .filter(|e| !e.is_empty())
    {
        return Err(Some(format!(
            "unsupported content encoding {encoding:?} in the protobuf envelope"
        )));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let mut json = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => read::<api::core::v1::Namespace, _>(&raw),
        ("v1", "Node") => read::<api::core::v1::Node, _>(&raw),
        ("v1", "Service") => read::<api::core::v1::Service, _>(&raw),
        ("v1", "Pod") => read::<api::core::v1::Pod, _>(&raw),
        ("v1", "PersistentVolumeClaim") => read::<api::core::v1::PersistentVolumeClaim, _>(&raw),
        ("v1", "PersistentVolume") => read::<api::core::v1::PersistentVolume, _>(&raw),
        ("v1", "ConfigMap") => read::<api::core::v1::ConfigMap, _>(&raw),
        ("v1", "Secret") => read::<api::core::v1::Secret, _>(&raw),
        ("v1", "ServiceAccount") => read::<api::core::v1::ServiceAccount, _>(&raw),
        ("v1", "Event") => read::<api::core::v1::Event, _>(&raw),
        ("apps/v1", "Deployment") => read::<api::apps::v1::Deployment, _>(&raw),
        ("apps/v1", "StatefulSet") => read::<api::apps::v1::StatefulSet, _>(&raw),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            read::<api::rbac::v1::ClusterRole, _>(&raw)
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            read::<api::rbac::v1::ClusterRoleBinding, _>(&raw)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => read::<api::rbac::v1::Role, _>(&raw),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            read::<api::rbac::v1::RoleBinding, _>(&raw)
        }
        ("networking.k8s.io/v1", "NetworkPolicy") => {
            read::<api::networking::v1::NetworkPolicy, _>(&raw)
        }
        ("storage.k8s.io/v1", "StorageClass") => read::<api::storage::v1::StorageClass, _>(&raw),
        ("events.k8s.io/v1", "Event") => read::<api::events::v1::Event, _>(&raw),
        ("policy/v1", "Eviction") => read::<api::policy::v1::Eviction, _>(&raw),
        ("policy/v1", "PodDisruptionBudget") => {
            read::<api::policy::v1::PodDisruptionBudget, _>(&raw)
        }
        (_, "DeleteOptions") => read::<apimachinery::pkg::apis::meta::v1::DeleteOptions, _>(&raw),
        _ => return Err(None),
    }
    .map_err(Some)?;
    // Types without a fixed apiVersion (DeleteOptions travels in every group) take the
    // envelope's, as the server's decoder sets it from there.
    if let Some(object) = json.as_object_mut() {
        object.insert("apiVersion".into(), api_version.into());
        object.insert("kind".into(), kind.into());
    }
    Ok(json)
}

/// Reads `raw` as the message `P` and writes it as the JSON of its k8s-openapi type.
fn read<P, O>(raw: &[u8]) -> Result<Value, String>
where
    P: Message + Default + Conv<O>,
    O: Serialize,
{
    let message = P::decode(raw)
        .map_err(|e| format!("the body of the request could not be decoded as protobuf: {e}"))?;
    serde_json::to_value(message.conv())
        .map_err(|e| format!("the object could not be written as JSON: {e}"))
}

/// The message types, by the paths both crates share (`api::core::v1::Pod`).
mod api {
    pub(super) use k8s_pb::api::*;
}
mod apimachinery {
    pub(super) use k8s_pb::apimachinery::*;
}

/// Carries a value of a k8s-pb type over into `T`, the k8s-openapi type of the same field.
pub(crate) trait Conv<T> {
    fn conv(self) -> T;
}

/// `convert!(module, OpenapiName = PbName { openapi_field: pb_field, ... } envelope {
/// api_version, kind } flatten embedded { openapi_field: pb_field, ... })`: the struct
/// carried over field by field (the `envelope` fields, which the message does not have,
/// left empty; the `flatten`ed ones read from the embedded message), as itself and as an
/// optional field that the k8s-openapi type requires.
macro_rules! convert {
    (
        $($m:ident)::+, $oa:ident = $pb:ident { $($field:ident : $wire:ident),* }
        $(envelope { $($envelope:ident),* })?
        $(flatten $outer:ident { $($flat:ident : $inner:ident),* })?
    ) => {
        impl $crate::protobuf::Conv<k8s_openapi::$($m)::+::$oa> for k8s_pb::$($m)::+::$pb {
            #[allow(unused_variables)]
            fn conv(self) -> k8s_openapi::$($m)::+::$oa {
                $(let embedded = self.$outer.unwrap_or_default();)?
                k8s_openapi::$($m)::+::$oa {
                    $($field: $crate::protobuf::field(self.$wire, stringify!($field)),)*
                    $($($envelope: None,)*)?
                    $($($flat: $crate::protobuf::field(embedded.$inner, stringify!($flat)),)*)?
                }
            }
        }
        $crate::protobuf::as_written!(k8s_openapi::$($m)::+::$oa);
        impl $crate::protobuf::Conv<k8s_openapi::$($m)::+::$oa> for Option<k8s_pb::$($m)::+::$pb> {
            fn conv(self) -> k8s_openapi::$($m)::+::$oa {
                $crate::protobuf::Conv::conv(self.unwrap_or_default())
            }
        }
    };
}
use convert;

/// One field of a message carried over, as the API server would write it back in JSON.
fn field<A: Conv<B>, B: AsWritten>(wire: A, name: &str) -> B {
    wire.conv().written(name)
}

/// The fields that are pointers in the Go types, whose zero value is a value
/// (`replicas: 0`, `runAsUser: 0`, `allowPrivilegeEscalation: false`,
/// `storageClassName: ""`), among those a body can set.
const POINTERS: &[&str] = &[
    "activeDeadlineSeconds",
    "allowPrivilegeEscalation",
    "automountServiceAccountToken",
    "backoffLimit",
    "defaultMode",
    "enableServiceLinks",
    "expirationSeconds",
    "fsGroup",
    "gracePeriodSeconds",
    "hostUsers",
    "immutable",
    "minDomains",
    "mode",
    "optional",
    "privileged",
    "progressDeadlineSeconds",
    "readOnlyRootFilesystem",
    "replicas",
    "revisionHistoryLimit",
    "runAsGroup",
    "runAsNonRoot",
    "runAsUser",
    "setHostnameAsFQDN",
    "shareProcessNamespace",
    "storageClassName",
    "terminationGracePeriodSeconds",
    "tolerationSeconds",
    "volumeAttributesClassName",
    "priority",
];

/// A value as the API server writes it back: Go writes every plain field on the wire,
/// zero or not, but leaves zero ones (`omitempty`) out of JSON, where the simulator's
/// defaulting and printing read an absent field. Pointer fields (`POINTERS`) keep their
/// zero values; a zero time is no time.
pub(crate) trait AsWritten: Sized {
    fn written(self, _field: &str) -> Self {
        self
    }
}

/// Types whose values are written whole (structs, lists, maps, quantities).
macro_rules! as_written {
    ($($t:ty),*) => {$(
        impl $crate::protobuf::AsWritten for $t {}
        impl $crate::protobuf::AsWritten for Option<$t> {}
    )*};
}
use as_written;
as_written!(ByteString, Quantity, IntOrString, RawExtension, FieldsV1);
impl<T> AsWritten for Vec<T> {}
impl<T> AsWritten for Option<Vec<T>> {}
impl<K, V> AsWritten for BTreeMap<K, V> {}
impl<K, V> AsWritten for Option<BTreeMap<K, V>> {}

/// Required scalars are written as they are, optional ones without their zero value.
macro_rules! zero_omitted {
    ($($t:ty),*) => {$(
        impl AsWritten for $t {}
        impl AsWritten for Option<$t> {
            fn written(self, field: &str) -> Self {
                let camel = camel_case(field);
                self.filter(|v| *v != <$t>::default() || POINTERS.iter().any(|p| p.eq_ignore_ascii_case(&camel)))
            }
        }
    )*};
}
zero_omitted!(String, bool, i32, i64, f64);

impl AsWritten for Time {}
impl AsWritten for MicroTime {}
impl AsWritten for Option<Time> {
    fn written(self, _field: &str) -> Self {
        self.filter(|t| !zero_time(t.0))
    }
}
impl AsWritten for Option<MicroTime> {
    fn written(self, _field: &str) -> Self {
        self.filter(|t| !zero_time(t.0))
    }
}

/// Go's zero `time.Time` (year 1), or the Unix epoch some clients write for it.
fn zero_time(t: Timestamp) -> bool {
    t == Timestamp::UNIX_EPOCH || t.as_second() == -62_135_596_800
}

/// `run_as_user` as the JSON names it (`runAsUser`).
fn camel_case(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.trim_end_matches('_').chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Scalars, optional or required in k8s-openapi's type (proto2 fields are all optional).
macro_rules! scalars {
    ($($t:ty),*) => {$(
        impl Conv<$t> for $t {
            fn conv(self) -> $t {
                self
            }
        }
        impl Conv<$t> for Option<$t> {
            fn conv(self) -> $t {
                self.unwrap_or_default()
            }
        }
    )*};
}
scalars!(String, bool, i32, i64, f64);

impl<A: Conv<B>, B> Conv<Option<B>> for Option<A> {
    fn conv(self) -> Option<B> {
        self.map(Conv::conv)
    }
}

impl<A: Conv<B>, B> Conv<Vec<B>> for Vec<A> {
    fn conv(self) -> Vec<B> {
        self.into_iter().map(Conv::conv).collect()
    }
}

/// An empty repeated field is an absent list: the wire cannot tell them apart.
impl<A: Conv<B>, B> Conv<Option<Vec<B>>> for Vec<A> {
    fn conv(self) -> Option<Vec<B>> {
        (!self.is_empty()).then(|| self.conv())
    }
}

impl<A: Conv<B>, B> Conv<BTreeMap<String, B>> for BTreeMap<String, A> {
    fn conv(self) -> BTreeMap<String, B> {
        self.into_iter().map(|(k, v)| (k, v.conv())).collect()
    }
}

impl<A: Conv<B>, B> Conv<Option<BTreeMap<String, B>>> for BTreeMap<String, A> {
    fn conv(self) -> Option<BTreeMap<String, B>> {
        (!self.is_empty()).then(|| self.conv())
    }
}

impl Conv<ByteString> for Vec<u8> {
    fn conv(self) -> ByteString {
        ByteString(self)
    }
}

impl Conv<Time> for apimachinery::pkg::apis::meta::v1::Time {
    fn conv(self) -> Time {
        Time(timestamp(self.seconds, self.nanos))
    }
}

impl Conv<MicroTime> for apimachinery::pkg::apis::meta::v1::MicroTime {
    fn conv(self) -> MicroTime {
        MicroTime(timestamp(self.seconds, self.nanos))
    }
}

/// A time on the wire; one out of the representable range reads as the epoch (admission
/// then judges the object as it would any other odd time).
fn timestamp(seconds: Option<i64>, nanos: Option<i32>) -> Timestamp {
    Timestamp::new(seconds.unwrap_or_default(), nanos.unwrap_or_default())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

impl Conv<Quantity> for apimachinery::pkg::api::resource::Quantity {
    fn conv(self) -> Quantity {
        Quantity(self.string.unwrap_or_default())
    }
}

/// `type` 0 is an int, 1 a string (`intstr.Type`).
impl Conv<IntOrString> for apimachinery::pkg::util::intstr::IntOrString {
    fn conv(self) -> IntOrString {
        match self.r#type {
            Some(1) => IntOrString::String(self.str_val.unwrap_or_default()),
            _ => IntOrString::Int(self.int_val.unwrap_or_default()),
        }
    }
}

impl Conv<RawExtension> for apimachinery::pkg::runtime::RawExtension {
    fn conv(self) -> RawExtension {
        RawExtension(raw_json(self.raw))
    }
}

impl Conv<FieldsV1> for apimachinery::pkg::apis::meta::v1::FieldsV1 {
    fn conv(self) -> FieldsV1 {
        FieldsV1(raw_json(self.raw))
    }
}

/// The types carried over by hand, where k8s-openapi's type requires the field.
macro_rules! required {
    ($($oa:ty = $pb:ty),*) => {$(
        impl Conv<$oa> for Option<$pb> {
            fn conv(self) -> $oa {
                self.unwrap_or_default().conv()
            }
        }
    )*};
}
required!(
    Time = apimachinery::pkg::apis::meta::v1::Time,
    MicroTime = apimachinery::pkg::apis::meta::v1::MicroTime,
    IntOrString = apimachinery::pkg::util::intstr::IntOrString
);

/// JSON carried as bytes inside a message; bytes that are not JSON read as `null`.
fn raw_json(raw: Option<Vec<u8>>) -> Value {
    raw.and_then(|raw| serde_json::from_slice(&raw).ok())
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body as client-go writes it: the magic, then the envelope around the message.
    fn wire(api_version: &str, kind: &str, message: &impl Message) -> Vec<u8> {
        let envelope = Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(message.encode_to_vec()),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        [MAGIC, &envelope.encode_to_vec()].concat()
    }

    fn meta(name: &str) -> Option<apimachinery::pkg::apis::meta::v1::ObjectMeta> {
        Some(apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.into()),
            labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
            ..Default::default()
        })
    }

    #[test]
    fn a_deployment_reads_as_its_json_with_nested_and_special_fields() {
        use api::core::v1::{
            Container, ContainerPort, PodSpec, PodTemplateSpec, ResourceRequirements,
        };
        let deployment = api::apps::v1::Deployment {
            metadata: meta("web"),
            spec: Some(api::apps::v1::DeploymentSpec {
                replicas: Some(2),
                template: Some(PodTemplateSpec {
                    metadata: meta(""),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: Some("nginx".into()),
                            image: Some("nginx:1.27".into()),
                            ports: vec![ContainerPort {
                                container_port: Some(80),
                                ..Default::default()
                            }],
                            resources: Some(ResourceRequirements {
                                limits: BTreeMap::from([(
                                    "memory".to_string(),
                                    apimachinery::pkg::api::resource::Quantity {
                                        string: Some("64Mi".into()),
                                    },
                                )]),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        };
        let json = to_json(&wire("apps/v1", "Deployment", &deployment)).unwrap();
        assert_eq!(json["apiVersion"], "apps/v1");
        assert_eq!(json["kind"], "Deployment");
        assert_eq!(json["metadata"]["name"], "web");
        assert_eq!(json["metadata"]["labels"]["app"], "web");
        assert_eq!(json["spec"]["replicas"], 2);
        let container = &json["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "nginx:1.27");
        assert_eq!(container["ports"][0]["containerPort"], 80);
        assert_eq!(container["resources"]["limits"]["memory"], "64Mi");
        assert!(
            container.get("env").is_none(),
            "an empty repeated field is absent: {container}"
        );
    }

    #[test]
    fn embedded_structs_int_or_strings_bytes_and_times_take_their_json_shapes() {
        use api::core::v1::{SecretVolumeSource, ServicePort, ServiceSpec, Volume, VolumeSource};
        let service = api::core::v1::Service {
            metadata: meta("web"),
            spec: Some(ServiceSpec {
                ports: vec![ServicePort {
                    port: Some(80),
                    target_port: Some(apimachinery::pkg::util::intstr::IntOrString {
                        r#type: Some(1),
                        int_val: None,
                        str_val: Some("http".into()),
                    }),
                    ..Default::default()
                }],
                cluster_ips: vec!["10.0.0.1".into()],
                r#type: Some("NodePort".into()),
                ..Default::default()
            }),
            status: None,
        };
        let json = to_json(&wire("v1", "Service", &service)).unwrap();
        assert_eq!(json["spec"]["ports"][0]["targetPort"], "http");
        assert_eq!(json["spec"]["clusterIPs"][0], "10.0.0.1");
        assert_eq!(json["spec"]["type"], "NodePort");

        let volume = Volume {
            name: Some("creds".into()),
            volume_source: Some(VolumeSource {
                secret: Some(SecretVolumeSource {
                    secret_name: Some("s".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        let pod = api::core::v1::Pod {
            metadata: Some(apimachinery::pkg::apis::meta::v1::ObjectMeta {
                creation_timestamp: Some(apimachinery::pkg::apis::meta::v1::Time {
                    seconds: Some(1_700_000_000),
                    nanos: Some(0),
                }),
                ..meta("p").unwrap()
            }),
            spec: Some(api::core::v1::PodSpec {
                volumes: vec![volume],
                ..Default::default()
            }),
            status: None,
        };
        let json = to_json(&wire("v1", "Pod", &pod)).unwrap();
        assert_eq!(
            json["spec"]["volumes"][0]["secret"]["secretName"], "s",
            "{json}"
        );
        assert_eq!(
            json["metadata"]["creationTimestamp"],
            "2023-11-14T22:13:20Z"
        );

        let secret = api::core::v1::Secret {
            metadata: meta("s"),
            data: BTreeMap::from([("password".to_string(), b"hunter2".to_vec())]),
            ..Default::default()
        };
        let json = to_json(&wire("v1", "Secret", &secret)).unwrap();
        assert_eq!(json["data"]["password"], "aHVudGVyMg==");
    }

    #[test]
    fn zero_values_are_left_out_but_for_pointer_fields() {
        use api::core::v1::{Container, PodSecurityContext, PodSpec};
        let deployment = api::apps::v1::Deployment {
            metadata: Some(apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("web".into()),
                namespace: Some(String::new()),
                generation: Some(0),
                creation_timestamp: Some(apimachinery::pkg::apis::meta::v1::Time {
                    seconds: Some(-62_135_596_800),
                    nanos: Some(0),
                }),
                labels: BTreeMap::from([("empty".to_string(), String::new())]),
                ..Default::default()
            }),
            spec: Some(api::apps::v1::DeploymentSpec {
                replicas: Some(0),
                paused: Some(false),
                template: Some(api::core::v1::PodTemplateSpec {
                    metadata: None,
                    spec: Some(PodSpec {
                        restart_policy: Some(String::new()),
                        security_context: Some(PodSecurityContext {
                            run_as_user: Some(0),
                            ..Default::default()
                        }),
                        containers: vec![Container {
                            name: Some("c".into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        };
        let json = to_json(&wire("apps/v1", "Deployment", &deployment)).unwrap();
        let meta = &json["metadata"];
        for absent in ["namespace", "generation", "creationTimestamp"] {
            assert!(meta.get(absent).is_none(), "{absent} in {meta}");
        }
        assert_eq!(meta["labels"]["empty"], "", "map values are values");
        assert_eq!(json["spec"]["replicas"], 0);
        assert!(json["spec"].get("paused").is_none());
        let pod = &json["spec"]["template"]["spec"];
        assert!(pod.get("restartPolicy").is_none(), "{pod}");
        assert_eq!(pod["securityContext"]["runAsUser"], 0);
    }

    #[test]
    fn an_eviction_carries_its_delete_options() {
        let eviction = api::policy::v1::Eviction {
            metadata: meta("p"),
            delete_options: Some(apimachinery::pkg::apis::meta::v1::DeleteOptions {
                grace_period_seconds: Some(5),
                ..Default::default()
            }),
        };
        let json = to_json(&wire("policy/v1", "Eviction", &eviction)).unwrap();
        assert_eq!(json["kind"], "Eviction");
        assert_eq!(json["deleteOptions"]["gracePeriodSeconds"], 5);
    }

    #[test]
    fn what_is_not_a_protobuf_object_is_refused_with_a_sentence() {
        assert!(
            to_json(b"{\"kind\":\"Namespace\"}")
                .unwrap_err()
                .unwrap()
                .contains("k8s\\x00")
        );
        assert!(
            to_json(b"k8s\0\xff\xff")
                .unwrap_err()
                .unwrap()
                .contains("could not be decoded")
        );
        let unknown_kind = wire("batch/v1", "Job", &api::core::v1::Namespace::default());
        assert_eq!(to_json(&unknown_kind), Err(None));
    }
}
