//! The command line: global options, the commands and their arguments, and the parsers of
//! the values they take (durations, `key=value` pairs, filters, the server's URL).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use reqwest::Url;
use serde_json::{Map, Value};

/// Drive FrameDB's HTTP API: create, inspect, query and delete persistent TiDB instances.
#[derive(Debug, Parser)]
#[command(name = "framedbctl", version)]
pub struct Cli {
    /// Where and how to reach the server, and how to print.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// How to print answers: a table for people, or the API's data as JSON or YAML.
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,

    /// The FrameDB server's URL (http or https; a path prefix is kept).
    #[arg(long, global = true, env = "FRAMEDB_SERVER", default_value = "http://127.0.0.1:8080",
          value_parser = parse_server)]
    pub server: Url,

    /// The API's bearer token (the server's --token).
    #[arg(long, global = true, env = "FRAMEDB_API_TOKEN", hide_env_values = true)]
    pub token: Option<Token>,

    /// How long one request may take (`90s`, `2m`, `500ms`; seconds without a unit). The
    /// server answers 504 itself after its --request-timeout-secs (60 by default).
    #[arg(long, global = true, env = "FRAMEDB_REQUEST_TIMEOUT", default_value = "70s",
          value_parser = parse_duration)]
    pub request_timeout: Duration,
}

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Columns for people.
    Table,
    /// The API's `data`, as JSON.
    Json,
    /// The API's `data`, as YAML.
    Yaml,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an instance; prints its port and, this once, its root credentials.
    Create(CreateArgs),
    /// One instance, with its URLs and live status.
    Get {
        /// The instance's framedb_id.
        id: String,
    },
    /// The root credentials of an instance, read from its cluster.
    Credentials {
        /// The instance's framedb_id.
        id: String,
    },
    /// Change an instance's metadata (merged) or grow its volume; prints the instance.
    Update(UpdateArgs),
    /// Delete an instance (its volume goes or stays as its deletion policy says).
    Delete(DeleteArgs),
    /// The instances of the fleet, of one cluster, or of one node of it.
    List(ListArgs),
    /// Instances matching a MongoDB-style filter (README, "The API").
    Query(QueryArgs),
    /// The clusters with instances, and the node ports each has left.
    ///
    /// The API has no endpoint for a cluster's free ports, so they are counted here: the
    /// 100 ports of 30900-30999 less those FrameDB's instances hold. A port taken by a
    /// Service FrameDB did not make is not seen, so the count is an upper bound. Without
    /// names, the clusters are those holding instances; a cluster named is shown even
    /// when empty (an unknown one is refused).
    Clusters {
        /// Clusters to show (all that hold instances when none is named).
        clusters: Vec<String>,
    },
}

/// `create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The new instance's framedb_id (a DNS label of at most 40 characters).
    pub id: String,
    /// The cluster to run it on.
    #[arg(long)]
    pub cluster: String,
    /// The node of that cluster to pin it to.
    #[arg(long)]
    pub node: String,
    /// The size of its volume (a Kubernetes quantity, `1Gi` to `1Pi`).
    #[arg(long)]
    pub storage_size: String,
    /// A metadata entry, `key=value` (a string value; repeatable).
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub metadata: Vec<(String, String)>,
    /// What deleting it does with its volume: `Delete` (the server's default) or `Retain`.
    #[arg(long)]
    pub deletion_policy: Option<String>,
    /// CPU and memory profile: `small`, `medium` or `large` (default: the cluster's).
    #[arg(long)]
    pub resources: Option<String>,
    /// How long to wait.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `--wait` and its bound.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Wait until it is done (create: `Running`; delete: gone), showing its status.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits before giving up (`10m`, `90s`, ...).
    #[arg(long, default_value = "10m", value_parser = parse_duration, requires = "wait")]
    pub timeout: Duration,
}

/// `update` (`PATCH`): at least one change.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("change").required(true).multiple(true))]
pub struct UpdateArgs {
    /// The instance's framedb_id.
    pub id: String,
    /// Set a metadata entry, `key=value` (a string value; repeatable); other keys stay.
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = parse_key_value,
          group = "change")]
    pub metadata: Vec<(String, String)>,
    /// Remove a metadata key (repeatable).
    #[arg(long = "remove-metadata", value_name = "KEY", group = "change")]
    pub remove_metadata: Vec<String>,
    /// Grow the volume to this size (it never shrinks).
    #[arg(long, group = "change")]
    pub storage_size: Option<String>,
}

/// `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The instance's framedb_id.
    pub id: String,
    /// Remove its volume whatever its deletion policy.
    #[arg(long)]
    pub purge: bool,
    /// How long to wait.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this cluster's instances.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Only this node's (of --cluster).
    #[arg(long, requires = "cluster")]
    pub node: Option<String>,
}

/// `query`, with the API's query options.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The filter, a JSON object (`{}`, all instances, when left out).
    #[arg(value_name = "FILTER_JSON", value_parser = parse_filter)]
    pub filter: Option<Map<String, Value>>,
    /// Order by this field; `-field` for descending (default: framedb_id).
    #[arg(long, allow_hyphen_values = true)]
    pub sort: Option<String>,
    /// Most instances to return (the server's default is 1000, at most 10000).
    #[arg(long)]
    pub limit: Option<u64>,
    /// Instances to pass over first.
    #[arg(long)]
    pub skip: Option<u64>,
}

/// The API token: shown nowhere, not even in debug output.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// The token itself, for the one header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl FromStr for Token {
    // Checked when the header is built, with an error that does not echo it: clap would
    // quote a refused value in its message.
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_owned()))
    }
}

/// `http(s)://host[:port][/prefix]`, without credentials (the token goes in --token),
/// query or fragment.
fn parse_server(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|error| format!("not a URL: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme must be http or https, not {}",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a URL with credentials is refused: give the token with --token".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the URL must have no query or fragment".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL names no host".into());
    }
    Ok(url)
}

/// `500ms`, `90s`, `10m`, `1h`, or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 10m or 500ms"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "" | "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        _ => return Err(format!("unknown unit {unit:?}: use ms, s, m or h")),
    };
    if duration.is_zero() {
        return Err("the duration must be more than zero".into());
    }
    Ok(duration)
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

fn parse_filter(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(text) {
        Ok(Value::Object(filter)) => Ok(filter),
        Ok(_) => Err("the filter must be a JSON object".into()),
        Err(error) => Err(format!("the filter is not JSON: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_or_mean_seconds() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for wrong in ["", "0", "0s", "s", "1.5s", "10 m", "3d", "-1s"] {
            assert!(parse_duration(wrong).is_err(), "{wrong:?} is refused");
        }
    }

    #[test]
    fn the_server_url_carries_no_credentials() {
        assert!(parse_server("http://127.0.0.1:8080").is_ok());
        assert!(parse_server("https://framedb.example/prefix/").is_ok());
        let refused = parse_server("http://user:s3cret@host").unwrap_err();
        assert!(!refused.contains("s3cret"), "{refused}");
        for wrong in [
            "ftp://host",
            "http://host/?a=b",
            "http://host/#x",
            "host:8080",
        ] {
            assert!(parse_server(wrong).is_err(), "{wrong} is refused");
        }
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let token: Token = "pa55-s3cret".parse().unwrap();
        assert!(!format!("{token:?}").contains("s3cret"));
    }

    #[test]
    fn metadata_and_filters_are_checked_before_any_request() {
        assert_eq!(
            parse_key_value("team=a=b"),
            Ok(("team".into(), "a=b".into()))
        );
        assert!(parse_key_value("=x").is_err());
        assert!(parse_key_value("team").is_err());
        assert!(parse_filter(r#"{"cluster_id": "c"}"#).is_ok());
        assert!(parse_filter("[1]").is_err());
        assert!(parse_filter("{").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
