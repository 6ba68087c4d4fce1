//! A Kubernetes API server for tests, speaking the real HTTP protocol over
//! HTTP/1.1 (hyper): discovery (`/version`, `/api`, `/apis`, `/api/v1`,
//! `/apis/apps/v1`, `/apis/batch/v1`), lists with `resourceVersion`,
//! `limit`/`continue`, `labelSelector` and `fieldSelector`, chunked watches
//! streamed from an event log (`ADDED`/`MODIFIED`/`DELETED`/`BOOKMARK`, and an
//! `ERROR` `410 Expired` Status for a resourceVersion older than the compaction
//! point), and metadata-only answers for
//! `Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1`
//! (lists) and `as=PartialObjectMetadata` (watch events), and the pod proxy
//! subresource (`support::kube_proxy`).
//!
//! Objects live in memory as JSON with one global resourceVersion counter.
//! Tests drive it directly: create/update/delete objects (open watches see the
//! events), compact the history, drop every open watch, pause watch delivery,
//! answer 500 for a while. Creates (`POST`, what logtrain makes: Events) answer
//! 201, `409 AlreadyExists` for a name taken (checked and stored under one
//! lock, so of racing creates exactly one wins), or 403 while forbidden.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub type Body = BoxBody<Bytes, Infallible>;

/// A resource the server knows.
#[derive(Debug)]
pub struct Res {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short: &'static [&'static str],
}

impl Res {
    fn group_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

pub const RESOURCES: &[Res] = &[
    Res {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short: &["po"],
    },
    Res {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short: &["ns"],
    },
    Res {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short: &["ev"],
    },
    Res {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short: &["deploy"],
    },
    Res {
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        singular: "statefulset",
        kind: "StatefulSet",
        namespaced: true,
        short: &["sts"],
    },
    Res {
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        singular: "daemonset",
        kind: "DaemonSet",
        namespaced: true,
        short: &["ds"],
    },
    Res {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        namespaced: true,
        short: &["rs"],
    },
    Res {
        group: "batch",
        version: "v1",
        plural: "jobs",
        singular: "job",
        kind: "Job",
        namespaced: true,
        short: &[],
    },
    Res {
        group: "batch",
        version: "v1",
        plural: "cronjobs",
        singular: "cronjob",
        kind: "CronJob",
        namespaced: true,
        short: &["cj"],
    },
];

fn res_by_kind(kind: &str) -> &'static Res {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind)
        .unwrap_or_else(|| panic!("unknown kind {kind}"))
}

type Key = (&'static str, String, String);

#[derive(Clone)]
struct Entry {
    rv: u64,
    plural: &'static str,
    namespace: String,
    kind: &'static str,
    object: Value,
    old: Option<Value>,
}

#[derive(Default)]
struct State {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    log: Vec<Entry>,
    compacted: u64,
    epoch: u64,
    frozen: bool,
    failing: bool,
    /// Creates (POST) are refused 403, as RBAC without `create` does.
    forbid_creates: bool,
    /// Creates answered 409 because the name was taken.
    conflicts: usize,
    uid: u64,
    requests: Vec<String>,
    open_watches: usize,
    /// The pod network: where `(pod, port)` is reached (see `kube_proxy`).
    pod_routes: HashMap<(String, u16), SocketAddr>,
}

struct Inner {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    stop: CancellationToken,
    addr: SocketAddr,
}

/// A running test API server; stops when dropped.
pub struct KubeApi {
    inner: Arc<Inner>,
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.inner.stop.cancel();
    }
}

impl KubeApi {
    /// Binds 127.0.0.1:0 and serves until dropped.
    pub async fn start() -> KubeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
            stop: CancellationToken::new(),
            addr,
        });
        let srv = inner.clone();
        tokio::spawn(async move {
            loop {
                let (conn, _) = tokio::select! {
                    _ = srv.stop.cancelled() => return,
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                };
                let inner = srv.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let inner = inner.clone();
                        async move {
                            if req.method() == hyper::Method::POST {
                                return Ok::<_, Infallible>(create(inner, req).await);
                            }
                            if let Some(p) = super::kube_proxy::parse(req.uri().path()) {
                                return Ok(proxy(inner, p, req).await);
                            }
                            Ok(handle(inner, req))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(conn), svc)
                        .await;
                });
            }
        });
        KubeApi { inner }
    }

    /// Stands in for the pod network: the pod proxy reaches `pod`'s `port`
    /// at `addr` (see `kube_proxy`).
    pub fn route_pod(&self, pod: &str, port: u16, addr: SocketAddr) {
        self.inner.state.lock().pod_routes.insert((pod.to_string(), port), addr);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// A kube client talking to this server.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner.state.lock().rv
    }

    /// Every request served so far: `METHOD path?query accept=…`.
    pub fn requests(&self) -> Vec<String> {
        self.inner.state.lock().requests.clone()
    }

    /// Watches currently streaming.
    pub fn open_watches(&self) -> usize {
        self.inner.state.lock().open_watches
    }

    /// Creates or replaces an object (its `kind` picks the resource); returns
    /// its new resourceVersion. Fills in what the real server does: uid,
    /// creationTimestamp, resourceVersion, generation and managedFields.
    pub fn apply(&self, obj: Value) -> u64 {
        apply(&self.inner, obj).0
    }

    /// Objects of a resource (plural) in a namespace, as stored.
    pub fn objects(&self, plural: &str, ns: &str) -> Vec<Value> {
        let st = self.inner.state.lock();
        st.objects
            .iter()
            .filter(|(k, _)| k.0 == plural && k.1 == ns)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Creates answered `409 AlreadyExists` so far.
    pub fn conflicts(&self) -> usize {
        self.inner.state.lock().conflicts
    }

    /// While set, every create (POST) is answered 403 Forbidden.
    pub fn forbid_creates(&self, forbid: bool) {
        self.inner.state.lock().forbid_creates = forbid;
    }

    /// Changes an existing object in place (then as [`KubeApi::apply`]).
    pub fn modify(&self, kind: &str, ns: &str, name: &str, f: impl FnOnce(&mut Value)) -> u64 {
        let res = res_by_kind(kind);
        let key = (
            res.plural,
            if res.namespaced { ns.to_string() } else { String::new() },
            name.to_string(),
        );
        let mut obj = self
            .inner
            .state
            .lock()
            .objects
            .get(&key)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} {ns}/{name}"));
        f(&mut obj);
        self.apply(obj)
    }

    /// Deletes an object; watches get a DELETED event carrying its last state.
    pub fn delete(&self, kind: &str, ns: &str, name: &str) -> bool {
        let res = res_by_kind(kind);
        let ns = if res.namespaced { ns.to_string() } else { String::new() };
        let mut st = self.inner.state.lock();
        let Some(mut obj) = st.objects.remove(&(res.plural, ns.clone(), name.to_string())) else {
            return false;
        };
        st.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        record(&self.inner, &mut st, "DELETED", res, ns, obj, None);
        true
    }

    /// Forgets history up to the current resourceVersion: watches and
    /// continue tokens from before it get `410 Expired`.
    pub fn compact(&self) {
        let mut st = self.inner.state.lock();
        let rv = st.rv;
        st.compacted = rv;
        st.log.retain(|e| e.rv > rv);
    }

    /// Ends every open watch (clients see the stream end and re-watch).
    pub fn drop_watches(&self) {
        let mut st = self.inner.state.lock();
        st.epoch += 1;
        let rv = st.rv;
        drop(st);
        self.inner.changed.send_replace(rv);
    }

    /// While paused, open watches deliver nothing (not even bookmarks).
    pub fn pause_watches(&self, paused: bool) {
        self.inner.state.lock().frozen = paused;
        let rv = self.resource_version();
        self.inner.changed.send_replace(rv);
    }

    /// While failing, every request is answered `500 InternalError`.
    pub fn set_failing(&self, failing: bool) {
        self.inner.state.lock().failing = failing;
    }
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(v).unwrap())).boxed())
        .unwrap()
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code
    })
}

fn record(
    inner: &Inner,
    st: &mut State,
    kind: &'static str,
    res: &'static Res,
    ns: String,
    object: Value,
    old: Option<Value>,
) {
    st.log.push(Entry {
        rv: st.rv,
        plural: res.plural,
        namespace: ns,
        kind,
        object,
        old,
    });
    inner.changed.send_replace(st.rv);
}

/// Creates or replaces an object (its `kind` picks the resource); returns
/// its new resourceVersion. Fills in what the real server does: uid,
/// creationTimestamp, resourceVersion, generation and managedFields.
fn apply(inner: &Inner, obj: Value) -> (u64, Value) {
    store(inner, obj, Store::CreateOrReplace).expect("apply always stores")
}

/// Whether storing may replace an object of the same name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Store {
    CreateOrReplace,
    /// A create: `None` when the name is taken.
    CreateOnly,
}

fn store(inner: &Inner, mut obj: Value, how: Store) -> Option<(u64, Value)> {
    let kind = obj["kind"].as_str().expect("kind").to_string();
    let res = res_by_kind(&kind);
    obj["apiVersion"] = json!(res.group_version());
    let name = obj["metadata"]["name"].as_str().expect("metadata.name").to_string();
    let ns = if res.namespaced {
        obj["metadata"]["namespace"].as_str().unwrap_or("default").to_string()
    } else {
        String::new()
    };
    let mut st = inner.state.lock();
    let key = (res.plural, ns.clone(), name);
    if how == Store::CreateOnly && st.objects.contains_key(&key) {
        return None;
    }
    st.rv += 1;
    let rv = st.rv;
    let old = st.objects.get(&key).cloned();
    let meta = obj["metadata"].as_object_mut().expect("metadata object");
    if res.namespaced {
        meta.insert("namespace".into(), json!(ns));
    }
    meta.insert("resourceVersion".into(), json!(rv.to_string()));
    match &old {
        Some(o) => {
            meta.insert("uid".into(), o["metadata"]["uid"].clone());
            meta.insert("creationTimestamp".into(), o["metadata"]["creationTimestamp"].clone());
            let g = o["metadata"]["generation"].as_u64().unwrap_or(1) + 1;
            meta.insert("generation".into(), json!(g));
        }
        None => {
            st.uid += 1;
            meta.insert("uid".into(), json!(format!("00000000-0000-4000-8000-{:012x}", st.uid)));
            meta.insert("creationTimestamp".into(), json!("2026-01-01T00:00:00Z"));
            meta.insert("generation".into(), json!(1));
        }
    }
    meta.insert(
        "managedFields".into(),
        json!([{
            "manager": "kubectl-client-side-apply",
            "operation": "Update",
            "apiVersion": res.group_version(),
            "time": "2026-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:annotations": {".": {}}, "f:labels": {".": {}}}, "f:spec": {}}
        }]),
    );
    st.objects.insert(key, obj.clone());
    let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
    record(inner, &mut st, kind, res, ns, obj.clone(), old);
    Some((rv, obj))
}

/// `POST` of a new object (what logtrain creates: Events): 201 with the stored
/// object, 409 when the name is taken, 403 while creates are forbidden.
async fn create(inner: Arc<Inner>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    {
        let mut st = inner.state.lock();
        st.requests
            .push(format!("POST {path}?{}", req.uri().query().unwrap_or("")));
        if st.failing {
            return error(
                500,
                "InternalError",
                "Internal error occurred: the test server is failing on purpose",
            );
        }
    }
    let Some(t) = target(&path) else {
        return error(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({path})"),
        );
    };
    if t.name.is_some() {
        return error(405, "MethodNotAllowed", "POST names a collection, not an object");
    }
    if inner.state.lock().forbid_creates {
        return error(
            403,
            "Forbidden",
            &format!(
                "{} is forbidden: User \"system:serviceaccount:logtrain:logtrain\" cannot create resource \"{}\" in API group \"{}\" in the namespace \"{}\"",
                t.res.plural,
                t.res.plural,
                t.res.group,
                t.namespace.as_deref().unwrap_or_default()
            ),
        );
    }
    let Ok(body) = req.into_body().collect().await else {
        return error(400, "BadRequest", "cannot read the body");
    };
    let mut obj: Value = match serde_json::from_slice(&body.to_bytes()) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return error(400, "BadRequest", "the body is not an object"),
        Err(e) => return error(400, "BadRequest", &format!("cannot decode the body: {e}")),
    };
    obj["kind"] = json!(t.res.kind);
    if let Some(ns) = &t.namespace {
        if obj["metadata"]["namespace"].as_str().is_some_and(|n| n != ns) {
            return error(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            );
        }
        obj["metadata"]["namespace"] = json!(ns);
    }
    let name = match (
        obj["metadata"]["name"].as_str(),
        obj["metadata"]["generateName"].as_str(),
    ) {
        (Some(n), _) if !n.is_empty() => n.to_string(),
        (_, Some(prefix)) => {
            let n = inner.state.lock().uid + 1;
            format!("{prefix}{n:05x}")
        }
        _ => return error(422, "Invalid", "name or generateName is required"),
    };
    obj["metadata"]["name"] = json!(name);
    // Checked and stored under one lock: of two creates racing for a name,
    // exactly one wins, as with etcd.
    match store(&inner, obj, Store::CreateOnly) {
        Some((_, stored)) => json_response(StatusCode::CREATED, &stored),
        None => {
            inner.state.lock().conflicts += 1;
            error(
                409,
                "AlreadyExists",
                &format!("{} \"{name}\" already exists", t.res.plural),
            )
        }
    }
}

fn error(code: u16, reason: &str, message: &str) -> Response<Body> {
    json_response(StatusCode::from_u16(code).unwrap(), &status(code, reason, message))
}

fn resource_list(gv: &str) -> Option<Value> {
    let (group, version) = gv.split_once('/').unwrap_or(("", gv));
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            json!({
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                "shortNames": r.short,
                "storageVersionHash": "",
            })
        })
        .collect();
    if resources.is_empty() {
        return None;
    }
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

fn discovery(inner: &Inner, path: &str) -> Option<Value> {
    match path {
        "/version" => Some(json!({
            "major": "1", "minor": "32", "gitVersion": "v1.32.0", "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.0",
            "compiler": "gc", "platform": "linux/amd64"
        })),
        "/api" => Some(json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": inner.addr.to_string()}]
        })),
        "/apis" => {
            let groups: Vec<Value> = ["apps", "batch"]
                .iter()
                .map(|g| {
                    let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
                    json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
                })
                .collect();
            Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        "/api/v1" => resource_list("v1"),
        "/apis/apps" | "/apis/batch" => {
            let g = &path[6..];
            let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            Some(
                json!({"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": [gv.clone()], "preferredVersion": gv}),
            )
        }
        "/apis/apps/v1" => resource_list("apps/v1"),
        "/apis/batch/v1" => resource_list("batch/v1"),
        _ => None,
    }
}

/// A parsed request for objects.
struct Target {
    res: &'static Res,
    namespace: Option<String>,
    name: Option<String>,
}

fn target(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let find = |plural: &str| {
        RESOURCES
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    };
    match rest {
        ["namespaces", ns, plural] => Some(Target {
            res: find(plural)?,
            namespace: Some(ns.to_string()),
            name: None,
        }),
        ["namespaces", ns, plural, name] => Some(Target {
            res: find(plural)?,
            namespace: Some(ns.to_string()),
            name: Some(name.to_string()),
        }),
        [plural] => Some(Target {
            res: find(plural)?,
            namespace: None,
            name: None,
        }),
        [plural, name] => Some(Target {
            res: find(plural)?,
            namespace: None,
            name: Some(name.to_string()),
        }),
        _ => None,
    }
}

/// One requirement of a label or field selector.
#[derive(Debug, Clone)]
enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

fn split_terms(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn parse_selector(s: &str, labels: bool) -> Result<Vec<Req>, String> {
    let mut reqs = Vec::new();
    for t in split_terms(s) {
        let set = |rest: &str| -> Result<Vec<String>, String> {
            let rest = rest.trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| format!("bad set in {t:?}"))?;
            Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
        };
        let req = if let Some((k, v)) = t.split_once("!=") {
            Req::Ne(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = t.split_once("==") {
            Req::Eq(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = t.split_once('=') {
            Req::Eq(k.trim().into(), v.trim().into())
        } else if labels && let Some((k, rest)) = t.split_once(" notin ") {
            Req::NotIn(k.trim().into(), set(rest)?)
        } else if labels && let Some((k, rest)) = t.split_once(" in ") {
            Req::In(k.trim().into(), set(rest)?)
        } else if labels && let Some(k) = t.strip_prefix('!') {
            Req::Absent(k.trim().into())
        } else if labels && !t.contains(' ') {
            Req::Exists(t.clone())
        } else {
            return Err(format!("unable to parse requirement {t:?}"));
        };
        reqs.push(req);
    }
    Ok(reqs)
}

fn field_value(obj: &Value, path: &str) -> String {
    let mut v = obj;
    for p in path.split('.') {
        v = &v[p];
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn matches(obj: &Value, labels: &[Req], fields: &[Req]) -> bool {
    let label = |k: &str| obj["metadata"]["labels"][k].as_str().map(str::to_string);
    let lab_ok = labels.iter().all(|r| match r {
        Req::Eq(k, v) => label(k).as_deref() == Some(v),
        Req::Ne(k, v) => label(k).as_deref() != Some(v),
        Req::In(k, vs) => label(k).is_some_and(|l| vs.contains(&l)),
        Req::NotIn(k, vs) => !label(k).is_some_and(|l| vs.contains(&l)),
        Req::Exists(k) => label(k).is_some(),
        Req::Absent(k) => label(k).is_none(),
    });
    let field_ok = fields.iter().all(|r| match r {
        Req::Eq(k, v) => field_value(obj, k) == *v,
        Req::Ne(k, v) => field_value(obj, k) != *v,
        _ => false,
    });
    lab_ok && field_ok
}

/// How objects are rendered for a request.
#[derive(Clone, Copy)]
struct Render {
    metadata_only: bool,
}

impl Render {
    fn from_accept(accept: &str) -> Result<Render, String> {
        let offers: Vec<&str> = accept.split(',').map(str::trim).collect();
        // A plain JSON offer (kubectl lists it as the fallback after Table) wins.
        let plain = offers.iter().any(|o| {
            let media = o.split(';').next().unwrap_or("").trim();
            !o.contains("as=") && (media == "application/json" || media == "*/*")
        });
        if accept.is_empty() || plain {
            return Ok(Render { metadata_only: false });
        }
        if offers
            .iter()
            .any(|o| o.contains("as=PartialObjectMetadata") && o.contains("g=meta.k8s.io"))
        {
            return Ok(Render { metadata_only: true });
        }
        Err(format!(
            "only application/json and metadata-only JSON are served, not {accept:?}"
        ))
    }

    fn item(&self, obj: &Value, in_list: bool) -> Value {
        if self.metadata_only {
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
        } else if in_list {
            let mut o = obj.clone();
            if let Some(m) = o.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            o
        } else {
            obj.clone()
        }
    }
}

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// `GET …/pods/NAME:PORT/proxy/PATH`: see `kube_proxy`.
async fn proxy(
    inner: Arc<Inner>,
    (ns, name, port, path): (String, String, u16, String),
    req: Request<Incoming>,
) -> Response<Body> {
    let addr = {
        let mut st = inner.state.lock();
        st.requests.push(format!(
            "{} {}?{} proxy",
            req.method(),
            req.uri().path(),
            req.uri().query().unwrap_or("")
        ));
        let pod = st.objects.get(&("pods", ns, name.clone()));
        super::kube_proxy::address(pod, &name, port, st.pod_routes.get(&(name.clone(), port)).copied())
    };
    let answer = match addr {
        Ok(a) => super::kube_proxy::forward(a, &path, req).await,
        Err(e) => Err(e),
    };
    answer.unwrap_or_else(|(code, reason, message)| error(code, &reason, &message))
}

fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let accept = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    {
        let mut st = inner.state.lock();
        st.requests.push(format!(
            "{} {}?{} accept={accept}",
            req.method(),
            path,
            req.uri().query().unwrap_or("")
        ));
        if st.failing {
            return error(
                500,
                "InternalError",
                "Internal error occurred: the test server is failing on purpose",
            );
        }
    }
    if req.method() != hyper::Method::GET {
        return error(405, "MethodNotAllowed", "the test server only serves GET");
    }
    if let Some(v) = discovery(&inner, &path) {
        return json_response(StatusCode::OK, &v);
    }
    let Some(t) = target(&path) else {
        return error(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({path})"),
        );
    };
    let render = match Render::from_accept(&accept) {
        Ok(r) => r,
        Err(e) => return error(406, "NotAcceptable", &e),
    };
    let q = query_map(req.uri().query());
    let labels = match parse_selector(q.get("labelSelector").map_or("", |s| s), true) {
        Ok(l) => l,
        Err(e) => return error(400, "BadRequest", &format!("unable to parse labelSelector: {e}")),
    };
    let fields = match parse_selector(q.get("fieldSelector").map_or("", |s| s), false) {
        Ok(f) => f,
        Err(e) => return error(400, "BadRequest", &format!("unable to parse fieldSelector: {e}")),
    };
    if let Some(name) = &t.name {
        let st = inner.state.lock();
        let key = (t.res.plural, t.namespace.clone().unwrap_or_default(), name.clone());
        return match st.objects.get(&key) {
            Some(o) => json_response(StatusCode::OK, &render.item(o, false)),
            None => error(404, "NotFound", &format!("{} \"{name}\" not found", t.res.plural)),
        };
    }
    let watching = matches!(q.get("watch").map(String::as_str), Some("1" | "true"));
    if watching {
        return start_watch(inner, t, q, labels, fields, render);
    }
    list(&inner, &t, &q, &labels, &fields, render)
}

fn in_scope(key: &Key, t: &Target) -> bool {
    key.0 == t.res.plural && t.namespace.as_ref().is_none_or(|ns| *ns == key.1)
}

fn list(
    inner: &Inner,
    t: &Target,
    q: &HashMap<String, String>,
    labels: &[Req],
    fields: &[Req],
    render: Render,
) -> Response<Body> {
    let st = inner.state.lock();
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    // Continue tokens carry the list's resourceVersion and the last key served.
    let (list_rv, after) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let Some((rv, rest)) = token.split_once(':') else {
                return error(400, "BadRequest", "continue key is not valid");
            };
            let rv: u64 = rv.parse().unwrap_or(0);
            if rv < st.compacted {
                return error(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                );
            }
            let (ns, name) = rest.split_once('/').unwrap_or(("", rest));
            (rv, Some((ns.to_string(), name.to_string())))
        }
        None => (st.rv, None),
    };
    let start = match &after {
        Some((ns, name)) => std::ops::Bound::Excluded((t.res.plural, ns.clone(), name.clone())),
        None => std::ops::Bound::Included((t.res.plural, String::new(), String::new())),
    };
    let mut items = Vec::new();
    let mut last: Option<&Key> = None;
    let mut more = 0usize;
    for (k, o) in st.objects.range((start, std::ops::Bound::Unbounded)) {
        if k.0 != t.res.plural {
            break;
        }
        if !in_scope(k, t) || !matches(o, labels, fields) {
            continue;
        }
        if items.len() >= limit {
            more += 1;
            continue;
        }
        items.push(render.item(o, true));
        last = Some(k);
    }
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if more > 0
        && let Some(k) = last
    {
        meta["continue"] = json!(format!("{list_rv}:{}/{}", k.1, k.2));
        meta["remainingItemCount"] = json!(more);
    }
    let body = if render.metadata_only {
        json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items})
    } else {
        json!({"kind": format!("{}List", t.res.kind), "apiVersion": t.res.group_version(), "metadata": meta, "items": items})
    };
    json_response(StatusCode::OK, &body)
}

fn watch_line(kind: &str, object: Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap();
    v.push(b'\n');
    Bytes::from(v)
}

fn start_watch(
    inner: Arc<Inner>,
    t: Target,
    q: HashMap<String, String>,
    labels: Vec<Req>,
    fields: Vec<Req>,
    render: Render,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let bookmarks = matches!(q.get("allowWatchBookmarks").map(String::as_str), Some("true" | "1"));
    let from = q.get("resourceVersion").cloned().unwrap_or_default();
    tokio::spawn(async move {
        let mut changed = inner.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        let opened: Result<(u64, u64, Vec<Bytes>), String> = {
            let mut st = inner.state.lock();
            match from.as_str() {
                "" | "0" => {
                    // "Any": synthetic ADDED events for the current state, then changes.
                    let lines: Vec<Bytes> = st
                        .objects
                        .iter()
                        .filter(|(k, o)| in_scope(k, &t) && matches(o, &labels, &fields))
                        .map(|(_, o)| watch_line("ADDED", render.item(o, false)))
                        .collect();
                    st.open_watches += 1;
                    Ok((st.epoch, st.rv, lines))
                }
                rv => {
                    let rv: u64 = rv.parse().unwrap_or(0);
                    if rv < st.compacted {
                        Err(format!("too old resource version: {rv} ({})", st.compacted))
                    } else {
                        st.open_watches += 1;
                        Ok((st.epoch, rv, Vec::new()))
                    }
                }
            }
        };
        let (epoch, mut cursor, initial) = match opened {
            Ok(o) => o,
            Err(msg) => {
                let _ = tx.send(watch_line("ERROR", status(410, "Expired", &msg))).await;
                return;
            }
        };
        let mut alive = true;
        for l in initial {
            if tx.send(l).await.is_err() {
                alive = false;
                break;
            }
        }
        while alive {
            let (lines, ended) = {
                let st = inner.state.lock();
                if st.epoch != epoch {
                    (Vec::new(), true)
                } else if st.frozen {
                    (Vec::new(), false)
                } else {
                    let start = st.log.partition_point(|e| e.rv <= cursor);
                    let mut lines = Vec::new();
                    for e in &st.log[start..] {
                        cursor = e.rv;
                        if e.plural != t.res.plural || t.namespace.as_ref().is_some_and(|ns| *ns != e.namespace) {
                            continue;
                        }
                        let now = matches(&e.object, &labels, &fields);
                        let before = e.old.as_ref().is_some_and(|o| matches(o, &labels, &fields));
                        let kind = match (e.kind, before, now) {
                            ("MODIFIED", true, true) => "MODIFIED",
                            ("MODIFIED", false, true) => "ADDED",
                            ("MODIFIED", true, false) => "DELETED",
                            ("ADDED", _, true) => "ADDED",
                            ("DELETED", _, true) => "DELETED",
                            _ => continue,
                        };
                        lines.push(watch_line(kind, render.item(&e.object, false)));
                    }
                    cursor = cursor.max(st.rv);
                    (lines, false)
                }
            };
            if ended {
                break;
            }
            for l in lines {
                if tx.send(l).await.is_err() {
                    alive = false;
                    break;
                }
            }
            if !alive {
                break;
            }
            tokio::select! {
                _ = inner.stop.cancelled() => break,
                _ = tx.closed() => break,
                _ = tokio::time::sleep_until(deadline) => break,
                r = changed.changed() => if r.is_err() { break },
                _ = tokio::time::sleep(Duration::from_secs(1)), if bookmarks => {
                    if !inner.state.lock().frozen {
                        let mut obj = json!({"kind": t.res.kind, "apiVersion": t.res.group_version(),
                            "metadata": {"resourceVersion": cursor.to_string()}});
                        if render.metadata_only {
                            obj["kind"] = json!("PartialObjectMetadata");
                            obj["apiVersion"] = json!("meta.k8s.io/v1");
                        }
                        if tx.send(watch_line("BOOKMARK", obj)).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        inner.state.lock().open_watches -= 1;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(StreamBody::new(stream).boxed())
        .unwrap()
}
