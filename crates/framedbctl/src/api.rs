//! The client of FrameDB's public API: one call per endpoint, each answer read up to a
//! size cap, checked to be FrameDB's envelope, and turned into its payload or an
//! [`Error`] (README, "The API").

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Map, Value};

use crate::cli::{Connection, Token};
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

/// The most pages [`Api::all`] reads: a million instances, far more than any fleet (a
/// cluster has 100 node ports), so that a server paging without end cannot hold the
/// client forever nor fill its memory.
const MAX_PAGES: u64 = 1000;

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
    pub fn new(options: &Connection) -> Result<Self, Error> {
        // An error means a provider is installed already, which is all that is needed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("framedbctl/", env!("CARGO_PKG_VERSION")))
            // A redirect could carry the token elsewhere; FrameDB never redirects.
            .redirect(reqwest::redirect::Policy::none())
            // Nor through a proxy the environment names (HTTPS_PROXY, ...): it would see
            // the token of a plain-http request, and FrameDB is reached directly.
            .no_proxy()
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
    ///
    /// # Errors
    /// The API's and the transport's; [`Error::EndlessPages`] past [`MAX_PAGES`] full
    /// pages, [`Error::StuckPages`] when a page starts where the last one did.
    pub async fn all(&self) -> Result<Vec<Value>, Error> {
        pages(PAGE, MAX_PAGES, self.server(), async |skip| {
            let options = [("limit", PAGE.to_string()), ("skip", skip.to_string())];
            match self.query(&Map::new(), &options).await? {
                Value::Array(page) => Ok(page),
                _ => Err(self.not_frame_db(200)),
            }
        })
        .await
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

/// Reads pages of `size` from `page(skip)` until one is short, at most `max` full ones, and
/// stops when a page starts with the id the last one started with (a server ignoring
/// `skip`). A page may repeat the last id of the one before (an instance created between
/// the two shifts the list): that is progress still.
async fn pages(
    size: u64,
    max: u64,
    server: &str,
    mut page: impl AsyncFnMut(u64) -> Result<Vec<Value>, Error>,
) -> Result<Vec<Value>, Error> {
    let mut instances = Vec::new();
    let mut first_of_last: Option<Value> = None;
    for _ in 0..max {
        let skip = u64::try_from(instances.len()).unwrap_or(u64::MAX);
        let page = page(skip).await?;
        let first = page.first().map(|instance| instance["framedb_id"].clone());
        if first.is_some() && first == first_of_last {
            return Err(Error::StuckPages {
                server: server.to_owned(),
                skip,
            });
        }
        let last = u64::try_from(page.len()).unwrap_or(u64::MAX) < size;
        instances.extend(page);
        if last {
            return Ok(instances);
        }
        first_of_last = first;
    }
    Err(Error::EndlessPages {
        server: server.to_owned(),
        pages: max,
        size,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// `size` instances from `skip` on, of a fleet of `fleet`.
    fn fleet_page(fleet: u64, skip: u64, size: u64) -> Vec<Value> {
        (skip..fleet.min(skip + size))
            .map(|n| json!({"framedb_id": format!("i-{n:06}")}))
            .collect()
    }

    #[tokio::test]
    async fn pages_are_read_until_a_short_one() {
        let mut asked = Vec::new();
        let all = pages(3, 10, "s", async |skip| {
            asked.push(skip);
            Ok(fleet_page(7, skip, 3))
        })
        .await
        .unwrap();
        assert_eq!(asked, [0, 3, 6]);
        assert_eq!(all, fleet_page(7, 0, 7));
        // A fleet of whole pages ends with an empty one.
        let all = pages(3, 10, "s", async |skip| Ok(fleet_page(6, skip, 3)));
        assert_eq!(all.await.unwrap().len(), 6);
    }

    #[tokio::test]
    async fn paging_stops_after_its_most_pages() {
        let mut calls = 0;
        let endless = pages(3, 4, "s", async |skip| {
            calls += 1;
            Ok(fleet_page(u64::MAX, skip, 3))
        })
        .await
        .unwrap_err();
        assert!(
            matches!(endless, Error::EndlessPages { pages: 4, .. }),
            "{endless}"
        );
        assert_eq!(calls, 4);
        assert_eq!(endless.exit_code(), 3);
    }

    #[tokio::test]
    async fn a_page_that_starts_again_stops_paging() {
        let stuck = pages(3, 10, "s", async |_| Ok(fleet_page(100, 0, 3)));
        let stuck = stuck.await.unwrap_err();
        assert!(
            matches!(stuck, Error::StuckPages { skip: 3, .. }),
            "{stuck}"
        );
        assert_eq!(stuck.exit_code(), 3);
        // An instance created between two pages repeats the last id: still progress.
        let shifted = pages(3, 10, "s", async |skip| {
            Ok(fleet_page(7, skip.saturating_sub(u64::from(skip > 0)), 3))
        });
        assert!(shifted.await.is_ok());
    }
}
