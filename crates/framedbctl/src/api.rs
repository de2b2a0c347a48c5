//! The client of FrameDB's public API: one call per endpoint, each answer read up to a
//! size cap, checked to be FrameDB's envelope, and turned into its payload or an
//! [`Error`] (README, "The API").

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Map, Value};

use crate::cli::{GlobalArgs, Token};
use crate::error::Error;

/// The instance endpoints' path under the server's URL.
const BASE: [&str; 3] = ["global", "framedb", "persistent-instances"];

/// The most of one answer read: far above a full page of instances with their metadata
/// (the server's default page is 1000), far below what would hurt the machine.
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// Connecting takes at most this long, whatever the request timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How many instances one page of [`Api::all`] asks for: the server's own default.
const PAGE: u64 = 1000;

/// The server, reached over one HTTP client.
pub struct Api {
    http: reqwest::Client,
    server: Url,
    authorization: Option<HeaderValue>,
    timeout: Duration,
}

impl Api {
    /// A client of the server the options name.
    ///
    /// # Errors
    /// [`Error::BadToken`] when the token cannot be sent in a header; [`Error::Client`]
    /// when the HTTP client cannot be built.
    pub fn new(options: &GlobalArgs) -> Result<Self, Error> {
        // An error means a provider is installed already, which is all that is needed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("framedbctl/", env!("CARGO_PKG_VERSION")))
            // A redirect could carry the token elsewhere; FrameDB never redirects.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT.min(options.request_timeout))
            .timeout(options.request_timeout)
            .build()
            .map_err(Error::Client)?;
        let authorization = options
            .token
            .as_ref()
            .map(Token::expose)
            .filter(|token| !token.is_empty())
            .map(|token| {
                let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| Error::BadToken)?;
                value.set_sensitive(true);
                Ok(value)
            })
            .transpose()?;
        Ok(Self {
            http,
            server: options.server.clone(),
            authorization,
            timeout: options.request_timeout,
        })
    }

    /// The server's URL, for messages.
    pub fn server(&self) -> &str {
        self.server.as_str()
    }

    /// `POST .../persistent-instances`: the answer but `success` (message, port,
    /// credentials).
    pub async fn create(&self, body: &Value) -> Result<Value, Error> {
        let answer = self.call(Method::POST, self.url(&[], &[]), Some(body));
        Ok(payload(answer.await?))
    }

    /// `GET .../{id}`: the instance.
    pub async fn get(&self, id: &str) -> Result<Value, Error> {
        self.data(self.call(Method::GET, self.url(&[id], &[]), None).await?)
    }

    /// `PATCH .../{id}`: the instance after the change.
    pub async fn update(&self, id: &str, change: &Value) -> Result<Value, Error> {
        self.data(
            self.call(Method::PATCH, self.url(&[id], &[]), Some(change))
                .await?,
        )
    }

    /// `GET .../{id}/credentials`.
    pub async fn credentials(&self, id: &str) -> Result<Value, Error> {
        let url = self.url(&[id, "credentials"], &[]);
        self.data(self.call(Method::GET, url, None).await?)
    }

    /// `DELETE .../{id}[?purge=true]`: the answer but `success` (its message).
    pub async fn delete(&self, id: &str, purge: bool) -> Result<Value, Error> {
        let query = if purge {
            vec![("purge", "true".to_owned())]
        } else {
            Vec::new()
        };
        let answer = self.call(Method::DELETE, self.url(&[id], &query), None);
        Ok(payload(answer.await?))
    }

    /// `GET .../cluster/{cluster}[/node/{node}]`.
    pub async fn list(&self, cluster: &str, node: Option<&str>) -> Result<Value, Error> {
        let url = match node {
            Some(node) => self.url(&["cluster", cluster, "node", node], &[]),
            None => self.url(&["cluster", cluster], &[]),
        };
        self.data(self.call(Method::GET, url, None).await?)
    }

    /// `POST .../query?sort&limit&skip` with `filter` as the body.
    pub async fn query(
        &self,
        filter: &Map<String, Value>,
        options: &[(&str, String)],
    ) -> Result<Value, Error> {
        let url = self.url(&["query"], options);
        let body = Value::Object(filter.clone());
        self.data(self.call(Method::POST, url, Some(&body)).await?)
    }

    /// Every instance, page by page (the API's own order, by `framedb_id`).
    pub async fn all(&self) -> Result<Vec<Value>, Error> {
        let mut instances = Vec::new();
        loop {
            let skip = u64::try_from(instances.len()).unwrap_or(u64::MAX);
            let options = [("limit", PAGE.to_string()), ("skip", skip.to_string())];
            let page = match self.query(&Map::new(), &options).await? {
                Value::Array(page) => page,
                _ => return Err(self.not_frame_db(200)),
            };
            let last = u64::try_from(page.len()).unwrap_or(u64::MAX) < PAGE;
            instances.extend(page);
            if last {
                return Ok(instances);
            }
        }
    }

    /// `{server}/global/framedb/persistent-instances/{segments...}?{query}`, each segment
    /// escaped as a path segment.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.server.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(BASE).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(key, value)| (*key, value.as_str())));
        }
        url
    }

    /// Sends one request and reads FrameDB's envelope: its object when `success` is
    /// true, [`Error::Refused`] when false, [`Error::NotFrameDb`] when it is something else.
    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Map<String, Value>, Error> {
        let mut request = self.http.request(method, url);
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let mut response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        if response
            .content_length()
            .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
        {
            return Err(Error::TooLarge {
                server: self.server().to_owned(),
                limit: MAX_ANSWER_BYTES,
            });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(Error::TooLarge {
                    server: self.server().to_owned(),
                    limit: MAX_ANSWER_BYTES,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        let answer = match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(answer)) => answer,
            _ => return Err(self.not_frame_db(status)),
        };
        match answer.get("success") {
            Some(Value::Bool(true)) if (200..300).contains(&status) => Ok(answer),
            Some(Value::Bool(false)) if status >= 400 => {
                let text = |key: &str| answer.get(key).and_then(Value::as_str).map(str::to_owned);
                Err(Error::Refused {
                    code: text("error").unwrap_or_else(|| format!("http_{status}")),
                    message: text("message").unwrap_or_default(),
                    details: answer.get("details").cloned(),
                })
            }
            _ => Err(self.not_frame_db(status)),
        }
    }

    fn transport(&self, error: reqwest::Error) -> Error {
        let server = self.server().to_owned();
        // A connection that timed out is unreachable: the request timeout is for answers.
        if error.is_timeout() && !error.is_connect() {
            Error::Timeout {
                server,
                timeout: self.timeout,
            }
        } else {
            // The URL is the server's plus a path: nothing secret, and said once already.
            Error::Unreachable {
                server,
                source: error.without_url(),
            }
        }
    }

    /// The `data` of a success answer.
    fn data(&self, mut answer: Map<String, Value>) -> Result<Value, Error> {
        answer.remove("data").ok_or_else(|| self.not_frame_db(200))
    }

    fn not_frame_db(&self, status: u16) -> Error {
        Error::NotFrameDb {
            server: self.server().to_owned(),
            status,
        }
    }
}

/// A success answer without its `success`: what it carries.
fn payload(mut answer: Map<String, Value>) -> Value {
    answer.remove("success");
    Value::Object(answer)
}
