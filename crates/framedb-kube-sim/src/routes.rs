//! The HTTP face of the simulator: maps Kubernetes URL shapes and verbs onto the store,
//! adds latency and injected faults, counts requests, and answers in JSON (objects,
//! lists, `Table`s or `Status` failures); and the accept loop that serves it, which can
//! close a connection without an answer (an injected dropped connection).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State as AxumState};
use axum::http::header::{ACCEPT, CONTENT_TYPE, USER_AGENT};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::discovery;
use super::events_v1;
use super::faults::{Action, DropWhen, Verb};
use super::lists;
use super::managed::{Fields, Writer};
use super::openapi;
use super::protobuf;
use super::resources::{
    DEPLOYMENTS, EVENTS, NAMESPACES, NODES, PODS, PVCS, PVS, ResourceDef, STATEFULSETS, by_plural,
    find, scalable,
};
use super::selectors::{FieldSelector, LabelSelector};
use super::shared::Shared;
use super::status::{ApiError, ApiResult};
use super::store::{DeleteOptions, PatchKind, State};
use super::strict;
use super::table::{IncludeObject, table};
use super::watch;

/// What kubectl's typed clients send their bodies as.
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// The simulator's router: one fallback handler, because Kubernetes paths are easier
/// to take apart by hand than to spell as route patterns.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// Marks a response that must not be sent: the accept loop closes its connection instead.
#[derive(Clone, Copy, Debug)]
struct DropConnection;

/// What a connection's service fails with to make hyper close it without an answer.
#[derive(Debug)]
struct ConnectionDropped;

impl std::fmt::Display for ConnectionDropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for ConnectionDropped {}

/// A response that closes its connection unanswered.
fn dropped() -> Response {
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.extensions_mut().insert(DropConnection);
    response
}

/// Serves `router` on `listener` until `stop` resolves, then lets requests in flight
/// finish. `axum::serve` cannot fail a request's connection: here a response marked
/// [`DropConnection`] becomes an error of the connection's service, on which hyper closes
/// the connection without writing anything, as a dropped connection looks to a client.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::TokioIo;
    use tower::ServiceExt as _;

    let http = hyper::server::conn::http1::Builder::new();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let stream = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "the Kubernetes simulator cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let service = hyper::service::service_fn(
            move |request: axum::http::Request<hyper::body::Incoming>| {
                let router = router.clone();
                async move {
                    let response = router
                        .oneshot(request.map(axum::body::Body::new))
                        .await
                        .unwrap_or_else(|never| match never {});
                    if response.extensions().get::<DropConnection>().is_some() {
                        return Err(ConnectionDropped);
                    }
                    Ok(response)
                }
            },
        );
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A dropped or broken connection ends itself only.
            let _ = connection.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A request for resources.
#[derive(Debug)]
struct Target {
    res: &'static ResourceDef,
    namespace: Option<String>,
    name: Option<String>,
    /// The `/status` subresource.
    status: bool,
    /// The `/scale` subresource of a workload.
    scale: bool,
    /// The `/eviction` subresource of a pod.
    eviction: bool,
}

#[derive(Debug)]
enum Route {
    Version,
    CoreVersions,
    CoreResources,
    Groups,
    Group(&'static str),
    GroupResources(&'static str),
    Resource(Target),
    OpenApiIndex,
    OpenApiDocument(&'static str),
    Unknown,
}

fn route(path: &str) -> Route {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["version"] => Route::Version,
        ["api"] => Route::CoreVersions,
        ["api", "v1"] => Route::CoreResources,
        ["api", "v1", rest @ ..] => resource_route("", rest),
        ["apis"] => Route::Groups,
        ["openapi", "v3"] => Route::OpenApiIndex,
        ["openapi", "v3", rest @ ..] => {
            openapi::group_of(&rest.join("/")).map_or(Route::Unknown, Route::OpenApiDocument)
        }
        ["apis", group, rest @ ..] => match (discovery::served_group(group), rest) {
            (Some(group), []) => Route::Group(group),
            (Some(group), ["v1"]) => Route::GroupResources(group),
            (Some(group), ["v1", rest @ ..]) => resource_route(group, rest),
            _ => Route::Unknown,
        },
        _ => Route::Unknown,
    }
}

fn resource_route(group: &str, rest: &[&str]) -> Route {
    let target = |res: &'static ResourceDef,
                  namespace: Option<&str>,
                  name: Option<&&str>,
                  sub: Option<&&str>| {
        let (status, scale, eviction) = match sub {
            None => (false, false, false),
            Some(&"status") => (true, false, false),
            Some(&"scale") if scalable(res) => (false, true, false),
            Some(&"eviction") if res.plural == PODS => (false, false, true),
            Some(_) => return Route::Unknown,
        };
        Route::Resource(Target {
            res,
            namespace: namespace.map(str::to_string),
            name: name.map(|n| n.to_string()),
            status,
            scale,
            eviction,
        })
    };
    match rest {
        // /namespaces/{ns}/{resource}[/{name}[/status]]
        ["namespaces", ns, plural, tail @ ..]
            if *plural != "status" && *plural != "finalize" && tail.len() <= 2 =>
        {
            match find(group, plural) {
                Some(res) if res.namespaced => target(res, Some(ns), tail.first(), tail.get(1)),
                _ => Route::Unknown,
            }
        }
        // /{resource}[/{name}[/status]]: cluster-scoped objects, or lists across namespaces.
        [plural, tail @ ..] if tail.len() <= 2 => match find(group, plural) {
            Some(res) if !res.namespaced => target(res, None, tail.first(), tail.get(1)),
            Some(res) if tail.is_empty() => target(res, None, None, None),
            _ => Route::Unknown,
        },
        _ => Route::Unknown,
    }
}

fn json_response(code: StatusCode, body: &impl Serialize) -> Response {
    // A `Value` or an `Answer` always serializes (map keys are strings).
    let body = serde_json::to_vec(body).unwrap_or_default();
    (code, [(CONTENT_TYPE, "application/json")], body).into_response()
}

/// What a request answers: one JSON document, or a list whose items are the stored
/// objects themselves, serialized after the state's lock is released and without a copy
/// (a list of a full cluster's StatefulSets is megabytes).
pub(crate) enum Answer {
    Value(Value),
    List {
        /// `apiVersion`, `kind` and `metadata`.
        head: Value,
        items: Vec<Arc<Value>>,
    },
}

impl Answer {
    /// The answer as one JSON document.
    fn into_value(self) -> Value {
        match self {
            Self::Value(value) => value,
            Self::List { mut head, items } => {
                head["items"] = Value::Array(items.iter().map(|item| Value::clone(item)).collect());
                head
            }
        }
    }
}

impl Serialize for Answer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The items, each serialized where it is stored.
        struct Items<'a>(&'a [Arc<Value>]);
        impl Serialize for Items<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.iter().map(|item| &**item))
            }
        }
        match self {
            Self::Value(value) => value.serialize(serializer),
            Self::List { head, items } => {
                let mut map = serializer.serialize_map(None)?;
                for (key, value) in head.as_object().into_iter().flatten() {
                    map.serialize_entry(key, value)?;
                }
                map.serialize_entry("items", &Items(items))?;
                map.end()
            }
        }
    }
}

fn error_response(err: &ApiError) -> Response {
    let code = StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &err.to_status())
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let latency = shared.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let path = uri.path();
    let response = match route(path) {
        Route::Resource(target) => {
            resource_request(&shared, &method, &uri, &headers, &body, target).await
        }
        Route::Unknown => error_response(&ApiError::path_not_found(path)),
        _ if method != Method::GET => error_response(&ApiError::method_not_allowed(format!(
            "the server does not allow this method on {path}"
        ))),
        discovery_route => {
            shared.stats().record_discovery();
            let doc = match discovery_route {
                Route::Version => discovery::version(),
                Route::CoreVersions => discovery::core_versions(&shared.address),
                Route::CoreResources => discovery::resource_list(""),
                Route::Groups => discovery::group_list(),
                Route::Group(group) => discovery::group(group),
                Route::GroupResources(group) => discovery::resource_list(group),
                Route::OpenApiIndex => openapi::index(),
                Route::OpenApiDocument(group) => openapi::document(group),
                _ => discovery::resource_list(""),
            };
            json_response(StatusCode::OK, &doc)
        }
    };
    tracing::debug!(%method, path, status = response.status().as_u16(), "simulated Kubernetes API request");
    response
}

fn verb_of(method: &Method, target: &Target, query: &HashMap<String, String>) -> Option<Verb> {
    Some(match *method {
        Method::GET if target.name.is_some() => Verb::Get,
        Method::GET if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) => {
            Verb::Watch
        }
        Method::GET => Verb::List,
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH => Verb::Patch,
        Method::DELETE => Verb::Delete,
        _ => return None,
    })
}

async fn resource_request(
    shared: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    target: Target,
) -> Response {
    let query: HashMap<String, String> = Query::try_from_uri(uri).map(|q| q.0).unwrap_or_default();
    let Some(verb) = verb_of(method, &target, &query) else {
        return error_response(&ApiError::method_not_allowed(format!(
            "{method} is not supported on {}",
            uri.path()
        )));
    };
    shared.stats().record(verb, target.res.plural);
    let fault = shared.faults.decide(verb, target.res.plural);
    if let Some(fault) = fault {
        shared.stats().record_fault(fault.kind());
    }
    match fault {
        Some(Action::Fail(code)) => return error_response(&ApiError::injected(code)),
        Some(Action::Drop(DropWhen::BeforeApply)) => return dropped(),
        Some(Action::Delay(latency)) => tokio::time::sleep(latency).await,
        Some(Action::Drop(DropWhen::AfterApply)) | None => {}
    }
    let mut query = query;
    if events_v1::is_v1(target.res)
        && let Some(selector) = query.get_mut("fieldSelector")
    {
        *selector = events_v1::field_selector_to_core(selector);
    }
    let response = if verb == Verb::Watch {
        watch::start(shared, target.res, target.namespace, &query)
            .unwrap_or_else(|err| error_response(&err))
    } else {
        let request = Request {
            verb,
            target,
            query,
            content_type: header(headers, CONTENT_TYPE.as_str()),
            accept: header(headers, ACCEPT.as_str()),
            user_agent: header(headers, USER_AGENT.as_str()),
            body,
        };
        let answer = if events_v1::is_v1(request.target.res) {
            request.run_as_core_events(shared)
        } else {
            request.run(shared)
        };
        match answer {
            Ok((code, value)) => json_response(code, &value),
            Err(err) => error_response(&err),
        }
    };
    // The request ran (a write is in the store), and its client never learns it.
    if fault == Some(Action::Drop(DropWhen::AfterApply)) {
        return dropped();
    }
    response
}

/// A request's answer of one JSON document.
fn answered(result: ApiResult<(StatusCode, Value)>) -> ApiResult<(StatusCode, Answer)> {
    result.map(|(code, value)| (code, Answer::Value(value)))
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// One resource request, decoded.
struct Request<'a> {
    verb: Verb,
    target: Target,
    query: HashMap<String, String>,
    content_type: String,
    accept: String,
    user_agent: String,
    body: &'a [u8],
}

impl Request<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The field manager this request writes as.
    fn writer(&self) -> Writer {
        Writer::of_request(
            self.param("fieldManager"),
            &self.user_agent,
            self.param("force") == Some("true"),
        )
    }

    fn wants_table(&self) -> bool {
        self.accept.contains("as=Table")
    }

    fn json_body(&self) -> ApiResult<Value> {
        let media = self.content_type.split(';').next().unwrap_or("").trim();
        if media == PROTOBUF {
            return protobuf::to_json(self.body).map_err(|e| match e {
                Some(sentence) => ApiError::bad_request(sentence),
                None => ApiError::unsupported_media_type(media),
            });
        }
        // CBOR (and YAML, which kubectl never sends) are not read; 415 tells the client
        // which media types are.
        if !media.is_empty() && !media.ends_with("json") {
            return Err(ApiError::unsupported_media_type(media));
        }
        serde_json::from_slice(self.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as JSON: {e}"
            ))
        })
    }

    /// `?fieldValidation=Strict`: refuses a body with fields its kind does not have, as
    /// the API server does (`Warn`, which answers with `Warning` headers, and `Ignore`
    /// accept it).
    fn validate_fields(&self, res: &ResourceDef, body: &Value) -> ApiResult<()> {
        if self.param("fieldValidation") != Some("Strict") {
            return Ok(());
        }
        match strict::unknown_fields(res, body) {
            Some(unknown) if !unknown.is_empty() => {
                let listed: Vec<String> = unknown
                    .iter()
                    .map(|field| format!("unknown field \"{field}\""))
                    .collect();
                Err(ApiError::bad_request(format!(
                    "{kind} in version \"{version}\" cannot be handled as a {kind}: strict \
                     decoding error: {}",
                    listed.join(", "),
                    kind = res.kind,
                    version = res.version,
                )))
            }
            _ => Ok(()),
        }
    }

    fn name(&self) -> ApiResult<&str> {
        self.target.name.as_deref().ok_or_else(|| {
            ApiError::method_not_allowed(format!(
                "{} is not supported on a collection of {}",
                self.verb, self.target.res.plural
            ))
        })
    }

    fn dry_run(&self, body_options: Option<&Value>) -> bool {
        self.param("dryRun").is_some()
            || body_options.is_some_and(|o| o["dryRun"].as_array().is_some_and(|a| !a.is_empty()))
    }

    /// Runs an `events.k8s.io/v1` request on the core Events it is a view of: bodies
    /// (objects and patches) converted in, answers converted out.
    fn run_as_core_events(&self, shared: &Shared) -> ApiResult<(StatusCode, Answer)> {
        let core = Target {
            res: by_plural(EVENTS),
            namespace: self.target.namespace.clone(),
            name: self.target.name.clone(),
            status: self.target.status,
            scale: self.target.scale,
            eviction: self.target.eviction,
        };
        let media = self.content_type.split(';').next().unwrap_or("").trim();
        let body = match self.verb {
            Verb::Create | Verb::Update => {
                let body = self.json_body()?;
                check_kind(self.target.res, &body)?;
                Some(events_v1::to_core(body))
            }
            Verb::Patch => {
                let body: Value = serde_json::from_slice(self.body).map_err(|e| {
                    ApiError::bad_request(format!("the patch could not be decoded as JSON: {e}"))
                })?;
                Some(events_v1::patch_to_core(
                    media == "application/json-patch+json",
                    body,
                ))
            }
            _ => None,
        };
        let bytes = body.as_ref().map(Value::to_string);
        let request = Request {
            verb: self.verb,
            target: core,
            query: self.query.clone(),
            content_type: match (&body, self.verb) {
                (Some(_), Verb::Create | Verb::Update) => "application/json".into(),
                _ => self.content_type.clone(),
            },
            accept: self.accept.clone(),
            user_agent: self.user_agent.clone(),
            body: bytes.as_deref().map_or(self.body, str::as_bytes),
        };
        let (code, answer) = request.run(shared)?;
        let answer = events_v1::answer_from_core(answer.into_value());
        Ok((code, Answer::Value(answer)))
    }

    /// Runs the request; writes re-run the controllers before the lock is released.
    fn run(&self, shared: &Shared) -> ApiResult<(StatusCode, Answer)> {
        let res = self.target.res;
        if self.target.status
            && self.verb != Verb::Get
            && self.verb != Verb::Update
            && self.verb != Verb::Patch
        {
            return Err(ApiError::method_not_allowed(format!(
                "{} is not supported on {}/status",
                self.verb, res.plural
            )));
        }
        if self.target.eviction && self.verb != Verb::Create {
            return Err(ApiError::method_not_allowed(format!(
                "{} is not supported on pods/eviction",
                self.verb
            )));
        }
        if self.target.scale && !matches!(self.verb, Verb::Get | Verb::Update | Verb::Patch) {
            return Err(ApiError::method_not_allowed(format!(
                "{} is not supported on {}/scale",
                self.verb, res.plural
            )));
        }
        let now = Instant::now();
        let mut guard = shared.state();
        guard.tick(now);
        if self.target.scale {
            return answered(self.scale(&mut guard, now));
        }
        if matches!(self.verb, Verb::Get | Verb::List) {
            return self.read(&guard);
        }
        answered(self.write(&mut guard, now))
    }

    /// Runs a write (and the controllers after it).
    fn write(&self, guard: &mut State, now: Instant) -> ApiResult<(StatusCode, Value)> {
        let res = self.target.res;
        let ns = self.target.namespace.as_deref();
        let delete_options = if self.verb == Verb::Delete && !self.body.is_empty() {
            Some(self.json_body()?)
        } else if self.target.eviction {
            Some(self.json_body()?["deleteOptions"].clone())
        } else {
            None
        };
        // A dry run works on a copy of the state, so every check runs and nothing stays.
        let mut scratch;
        let state: &mut State = if self.dry_run(delete_options.as_ref()) {
            scratch = guard.clone();
            &mut scratch
        } else {
            guard
        };
        let result = match self.verb {
            Verb::Create if self.target.eviction => self.evict(state),
            Verb::Create => {
                if self.target.name.is_some() {
                    return Err(ApiError::method_not_allowed(format!(
                        "POST is not supported on a single {}",
                        res.singular
                    )));
                }
                if res.namespaced && ns.is_none() {
                    return Err(ApiError::method_not_allowed(format!(
                        "create {} in a namespace: POST to /.../namespaces/{{namespace}}/{}",
                        res.plural, res.plural
                    )));
                }
                let body = self.json_body()?;
                check_kind(res, &body)?;
                self.validate_fields(res, &body)?;
                state
                    .create(res, ns, body, Fields::Update(&self.writer()))
                    .map(|obj| (StatusCode::CREATED, obj))
            }
            Verb::Update => {
                let body = self.json_body()?;
                check_kind(res, &body)?;
                self.validate_fields(res, &body)?;
                state
                    .replace(
                        res,
                        ns,
                        self.name()?,
                        body,
                        self.target.status,
                        Fields::Update(&self.writer()),
                    )
                    .map(|obj| (StatusCode::OK, obj))
            }
            Verb::Patch => self.patch(state),
            _ => self.delete(state, delete_options.as_ref()),
        };
        // The controllers act on workloads, pods, claims, volumes, nodes and namespaces,
        // and finish deletions (`dirty`); another write (a Service, a Secret, RBAC) changes
        // nothing they read, and running them over every object costs more than the write.
        if result.is_ok() && (state.dirty || drives_controllers(res.plural)) {
            state.reconcile(now);
        }
        result
    }

    /// `POST .../pods/{name}/eviction`: a `policy/v1` `Eviction` of the pod.
    fn evict(&self, state: &mut State) -> ApiResult<(StatusCode, Value)> {
        let body = self.json_body()?;
        let ns = self.target.namespace.as_deref().unwrap_or("default");
        state
            .evict(ns, self.name()?, &body)
            .map(|status| (StatusCode::CREATED, status))
    }

    /// `/scale`: the workload's replicas as an `autoscaling/v1` `Scale`.
    fn scale(&self, state: &mut State, now: Instant) -> ApiResult<(StatusCode, Value)> {
        let (res, ns, name) = (
            self.target.res,
            self.target.namespace.as_deref(),
            self.name()?,
        );
        let scale = match self.verb {
            Verb::Get => return Ok((StatusCode::OK, state.scale(res, ns, name)?)),
            Verb::Update => state.set_scale(res, ns, name, None, &self.json_body()?)?,
            _ => {
                let kind = match self.content_type.split(';').next().unwrap_or("").trim() {
                    "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                        PatchKind::Merge
                    }
                    "application/json-patch+json" => PatchKind::Json,
                    other => return Err(ApiError::unsupported_media_type(other)),
                };
                state.set_scale(res, ns, name, Some(kind), &self.json_body()?)?
            }
        };
        state.reconcile(now);
        Ok((StatusCode::OK, scale))
    }

    fn read(&self, state: &State) -> ApiResult<(StatusCode, Answer)> {
        let res = self.target.res;
        let ns = self.target.namespace.as_deref();
        let include = match self.param("includeObject") {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        };
        if let Some(name) = &self.target.name {
            let obj = state.get(res, ns, name)?;
            if self.wants_table() {
                let table = table(res, &[obj], &state.resource_version(), include);
                return Ok((StatusCode::OK, Answer::Value(table)));
            }
            return Ok((StatusCode::OK, Answer::Value(obj)));
        }
        let labels = LabelSelector::parse(self.param("labelSelector").unwrap_or(""))?;
        let fields = FieldSelector::parse(self.param("fieldSelector").unwrap_or(""), res)?;
        let listed = lists::list(state, res, ns, &labels, &fields, |name| self.param(name))?;
        let metadata = listed.metadata;
        if self.wants_table() {
            let items: Vec<Value> = listed.items.iter().map(|obj| Value::clone(obj)).collect();
            let rv = metadata["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let mut t = table(res, &items, &rv, include);
            t["metadata"] = metadata;
            return Ok((StatusCode::OK, Answer::Value(t)));
        }
        let head = json!({
            "apiVersion": res.api_version(),
            "kind": format!("{}List", res.kind),
            "metadata": metadata,
        });
        Ok((
            StatusCode::OK,
            Answer::List {
                head,
                items: listed.items,
            },
        ))
    }

    fn patch(&self, state: &mut State) -> ApiResult<(StatusCode, Value)> {
        let res = self.target.res;
        let name = self.name()?;
        let media = self.content_type.split(';').next().unwrap_or("").trim();
        let kind = match media {
            "application/merge-patch+json" => PatchKind::Merge,
            "application/strategic-merge-patch+json" => PatchKind::Strategic,
            "application/json-patch+json" => PatchKind::Json,
            "application/apply-patch+yaml" => PatchKind::Apply,
            other => return Err(ApiError::unsupported_media_type(other)),
        };
        if kind == PatchKind::Apply && self.param("fieldManager").is_none() {
            return Err(ApiError::new(
                422,
                "Invalid",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        let body: Value = serde_json::from_slice(self.body).map_err(|e| {
            let hint = if kind == PatchKind::Apply {
                " (the simulator accepts apply bodies as JSON only)"
            } else {
                ""
            };
            ApiError::bad_request(format!("the patch could not be decoded as JSON{hint}: {e}"))
        })?;
        if kind == PatchKind::Apply {
            check_kind(res, &body)?;
        }
        let existed = state
            .get(res, self.target.namespace.as_deref(), name)
            .is_ok();
        let obj = state.patch(
            res,
            self.target.namespace.as_deref(),
            name,
            (kind, &body),
            self.target.status,
            Some(&self.writer()),
        )?;
        let code = if existed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok((code, obj))
    }

    fn delete(&self, state: &mut State, body: Option<&Value>) -> ApiResult<(StatusCode, Value)> {
        let res = self.target.res;
        let ns = self.target.namespace.as_deref();
        let options = DeleteOptions::from_request(body, |name| self.param(name))?;
        if let Some(name) = &self.target.name {
            return state
                .delete(res, ns, name, &options)
                .map(|obj| (StatusCode::OK, obj));
        }
        if res.plural == NAMESPACES {
            return Err(ApiError::method_not_allowed(
                "deletecollection is not supported on namespaces",
            ));
        }
        let labels = LabelSelector::parse(self.param("labelSelector").unwrap_or(""))?;
        let fields = FieldSelector::parse(self.param("fieldSelector").unwrap_or(""), res)?;
        let mut deleted = Vec::new();
        for obj in state.list(res, ns, &labels, &fields) {
            let obj_ns = obj["metadata"]["namespace"].as_str().map(str::to_string);
            let name = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            deleted.push(state.delete(res, obj_ns.as_deref(), &name, &options)?);
        }
        Ok((
            StatusCode::OK,
            json!({
                "apiVersion": res.api_version(),
                "kind": format!("{}List", res.kind),
                "metadata": { "resourceVersion": state.resource_version() },
                "items": deleted,
            }),
        ))
    }
}

/// Whether a write to `plural` can change what the controllers act on.
fn drives_controllers(plural: &str) -> bool {
    [
        STATEFULSETS,
        DEPLOYMENTS,
        PODS,
        PVCS,
        PVS,
        NODES,
        NAMESPACES,
    ]
    .contains(&plural)
}

/// A body must not name another type than the URL.
fn check_kind(res: &ResourceDef, body: &Value) -> ApiResult<()> {
    match body["kind"].as_str() {
        Some(kind) if !kind.is_empty() && kind != res.kind => Err(ApiError::bad_request(format!(
            "the kind of the object ({kind}) does not match the resource of the URL ({})",
            res.plural
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Option<(String, Option<String>, Option<String>, bool)> {
        match route(path) {
            Route::Resource(t) => Some((t.res.plural.to_string(), t.namespace, t.name, t.status)),
            _ => None,
        }
    }

    #[test]
    fn url_shapes() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            target("/api/v1/namespaces"),
            Some(("namespaces".into(), None, None, false))
        );
        assert_eq!(
            target("/api/v1/namespaces/a"),
            Some(("namespaces".into(), None, s("a"), false))
        );
        assert_eq!(
            target("/api/v1/namespaces/a/status"),
            Some(("namespaces".into(), None, s("a"), true))
        );
        assert_eq!(
            target("/api/v1/namespaces/a/services"),
            Some(("services".into(), s("a"), None, false))
        );
        assert_eq!(
            target("/api/v1/namespaces/a/pods/p/status"),
            Some(("pods".into(), s("a"), s("p"), true))
        );
        assert_eq!(
            target("/api/v1/services"),
            Some(("services".into(), None, None, false))
        );
        assert_eq!(
            target("/api/v1/nodes/n"),
            Some(("nodes".into(), None, s("n"), false))
        );
        assert_eq!(
            target("/apis/apps/v1/namespaces/a/statefulsets/x"),
            Some(("statefulsets".into(), s("a"), s("x"), false))
        );
        assert_eq!(
            target("/apis/apps/v1/deployments"),
            Some(("deployments".into(), None, None, false))
        );
        assert_eq!(target("/api/v1/services/x"), None);
        assert_eq!(target("/api/v1/namespaces/a/statefulsets"), None);
        assert_eq!(target("/api/v1/namespaces/a/pods/p/log"), None);
        assert_eq!(
            target("/api/v1/namespaces/a/pods/p/eviction"),
            Some(("pods".into(), s("a"), s("p"), false))
        );
        assert_eq!(target("/api/v1/namespaces/a/services/s/eviction"), None);
        assert_eq!(target("/apis/batch/v1/jobs"), None);
    }
}
