//! [`Slim`]: a resource's metadata as the watch caches keep it, decoded
//! straight from the API server's metadata-only answer (it asks for
//! `PartialObjectMetadata`, as kube's `PartialObjectMeta` does) without ever
//! building what logtrain does not read. The annotations it does not name
//! (a 2 KB `kubectl.kubernetes.io/last-applied-configuration` on most
//! workloads) and the managed fields are skipped by the JSON parser instead of
//! being decoded and trimmed afterwards: a listing of thousands of workloads
//! then leaves no trail of freed strings between the objects it keeps, which
//! the allocator could not give back.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::Resource;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::annotations::KEPT_ANNOTATIONS;

/// The metadata of a `K`, as the caches keep it.
#[derive(Clone, Debug)]
pub struct Slim<K> {
    pub metadata: ObjectMeta,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Slim<K> {
    pub fn new(metadata: ObjectMeta) -> Self {
        Slim {
            metadata,
            _kind: PhantomData,
        }
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Slim<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn metadata_api() -> bool {
        true
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<'de, K> serde::Deserialize<'de> for Slim<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = ObjectMeta;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a PartialObjectMetadata object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectMeta, A::Error> {
                let mut meta = ObjectMeta::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == "metadata" {
                        meta = map.next_value_seed(Meta)?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(meta)
            }
        }
        d.deserialize_map(Object).map(Slim::new)
    }
}

/// `ObjectMeta`, reading only what logtrain uses.
struct Meta;

impl<'de> DeserializeSeed<'de> for Meta {
    type Value = ObjectMeta;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ObjectMeta, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Meta {
    type Value = ObjectMeta;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("object metadata")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectMeta, A::Error> {
        let mut m = ObjectMeta::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match &*key {
                "name" => m.name = map.next_value()?,
                "namespace" => m.namespace = map.next_value()?,
                "uid" => m.uid = map.next_value()?,
                "resourceVersion" => m.resource_version = map.next_value()?,
                "deletionTimestamp" => m.deletion_timestamp = map.next_value::<Option<Time>>()?,
                "labels" => m.labels = map.next_value()?,
                "ownerReferences" => m.owner_references = map.next_value::<Option<Vec<OwnerReference>>>()?,
                "annotations" => m.annotations = map.next_value_seed(Annotations)?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(m)
    }
}

/// The annotations logtrain reads; the others are skipped unread.
struct Annotations;

impl<'de> DeserializeSeed<'de> for Annotations {
    type Value = Option<BTreeMap<String, String>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for Annotations {
    type Value = Option<BTreeMap<String, String>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("annotations")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kept = BTreeMap::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if KEPT_ANNOTATIONS.contains(&&*key) {
                kept.insert(key.into_owned(), map.next_value::<String>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok((!kept.is_empty()).then_some(kept))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;

    use super::*;

    #[test]
    fn only_what_is_read_is_decoded() {
        let body = serde_json::json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {
                "name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "7",
                "generation": 3, "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"app": "web", "akkeris.io/app-name": "web"},
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "x".repeat(2048),
                    "logtrain.akkeris.io/drains": "syslog+tls://logs:6514",
                    "logtrain.akkeris.io/tag": "t"
                },
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "u-0", "controller": true}],
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:metadata": {}}}]
            }
        });
        let s: Slim<Deployment> = serde_json::from_value(body).unwrap();
        let m = &s.metadata;
        assert_eq!((m.name.as_deref(), m.namespace.as_deref()), (Some("web"), Some("shop")));
        assert_eq!(
            (m.uid.as_deref(), m.resource_version.as_deref()),
            (Some("u-1"), Some("7"))
        );
        let keys: Vec<&String> = m.annotations.as_ref().unwrap().keys().collect();
        assert_eq!(keys, ["logtrain.akkeris.io/drains", "logtrain.akkeris.io/tag"]);
        assert_eq!(m.labels.as_ref().unwrap().len(), 2);
        assert_eq!(m.owner_references.as_ref().unwrap()[0].name, "d");
        assert!(m.managed_fields.is_none() && m.creation_timestamp.is_none() && m.generation.is_none());
        assert!(<Slim<Deployment> as Resource>::metadata_api());
        assert_eq!(Slim::<Deployment>::plural(&()), "deployments");

        let none: Slim<Deployment> =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "a", "annotations": {"other": "x"}}}))
                .unwrap();
        assert!(none.metadata.annotations.is_none());
        let null: Slim<Deployment> =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "a", "annotations": null}})).unwrap();
        assert!(null.metadata.annotations.is_none());
    }
}
