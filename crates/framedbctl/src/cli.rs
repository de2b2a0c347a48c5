//! The command line: global options, the commands and their arguments, the parsers of
//! the values they take (durations, `key=value` pairs, filters), and the checks made after
//! parsing that clap cannot make without echoing a secret (the server's URL, the token).

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
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
    // Checked after parsing ([`GlobalArgs::connection`]): clap quotes a value its parser
    // refuses, and a URL may carry a password.
    #[arg(
        long,
        global = true,
        env = "FRAMEDB_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,

    /// The API's bearer token (the server's --token). Visible to other users in `ps` and
    /// kept in shell history: prefer --token-file or the environment.
    // A token starting with `-` is a value, not an unknown option clap would quote.
    #[arg(
        long,
        global = true,
        env = "FRAMEDB_API_TOKEN",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub token: Option<Token>,

    /// A file holding the API's bearer token (a trailing newline is dropped).
    #[arg(
        long,
        global = true,
        env = "FRAMEDB_API_TOKEN_FILE",
        value_name = "PATH",
        conflicts_with = "token"
    )]
    pub token_file: Option<PathBuf>,

    /// Send the token over plain http to a host that is not loopback (anyone on the path
    /// can read it).
    #[arg(long, global = true)]
    pub insecure_http: bool,

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

/// The most of a token file read: a bearer token is far shorter; a bigger file is not one.
const MAX_TOKEN_FILE_BYTES: u64 = 16 * 1024;

/// Where and how to reach the server, once checked.
#[derive(Debug)]
pub struct Connection {
    /// The server's URL.
    pub server: Url,
    /// The token, if one was given and is not empty.
    pub token: Option<Token>,
    /// How long one request may take.
    pub request_timeout: Duration,
}

impl GlobalArgs {
    /// The server's URL and the token, checked: what clap cannot check without quoting
    /// them.
    ///
    /// # Errors
    /// A sentence (quoting neither the URL nor the token) when the URL is not a server's,
    /// the token file cannot be read, or the token would go over plain http to a host that
    /// is not loopback without --insecure-http.
    pub fn connection(&self) -> Result<Connection, String> {
        let server = parse_server(&self.server)?;
        let token = match &self.token_file {
            Some(path) => Some(read_token(path)?),
            None => self.token.clone(),
        }
        .filter(|token| !token.0.is_empty());
        if token.is_some() && !self.insecure_http && !may_carry_token(&server) {
            return Err(
                "refusing to send the API token over plain http to a host that is not \
                        loopback: use https, or --insecure-http to send it anyway"
                    .into(),
            );
        }
        Ok(Connection {
            server,
            token,
            request_timeout: self.request_timeout,
        })
    }
}

/// Whether a token may go to `server` without --insecure-http: over https, or over http to
/// this machine (127.0.0.0/8, ::1, `localhost`).
fn may_carry_token(server: &Url) -> bool {
    let host = server.host_str().unwrap_or_default();
    // An IPv6 address comes in brackets; an IPv4 one is already canonical (`127.1` is
    // `127.0.0.1`).
    let address = host.trim_start_matches('[').trim_end_matches(']');
    server.scheme() == "https"
        || host.eq_ignore_ascii_case("localhost")
        || address
            .parse::<IpAddr>()
            .is_ok_and(|address| address.to_canonical().is_loopback())
}

/// The token a file holds, without its trailing line end; the message names the file,
/// never its content.
fn read_token(path: &Path) -> Result<Token, String> {
    let name = path.display();
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_TOKEN_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|error| format!("cannot read the token file {name}: {error}"))?;
    if bytes.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(format!(
            "the token file {name} holds more than {MAX_TOKEN_FILE_BYTES} bytes: not a token"
        ));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| format!("the token file {name} is not UTF-8 text"))?;
    Ok(Token(text.trim_end_matches(['\n', '\r']).to_owned()))
}

/// `http(s)://host[:port][/prefix]`, without credentials (the token goes in --token-file),
/// query or fragment. The messages quote no part of the text, which may hold a password.
fn parse_server(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|error| format!("--server is not a URL: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("--server must be an http or https URL".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("--server must not carry credentials: give the token with --token-file".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("--server must have no query or fragment".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("--server names no host".into());
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

/// Why metadata changes contradict themselves: a key set twice, or set and removed.
pub fn metadata_conflict(set: &[(String, String)], removed: &[String]) -> Option<String> {
    let mut keys = BTreeSet::new();
    if let Some((key, _)) = set.iter().find(|(key, _)| !keys.insert(key.as_str())) {
        return Some(format!("--metadata gives {key:?} twice"));
    }
    removed
        .iter()
        .find(|key| keys.contains(key.as_str()))
        .map(|key| format!("--metadata sets {key:?} and --remove-metadata removes it"))
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
        for secret in [
            "http://user:s3cret@host",
            "s3cret://host",
            "http://s3cret@host",
        ] {
            let refused = parse_server(secret).unwrap_err();
            assert!(!refused.contains("s3cret"), "{refused}");
        }
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
    fn a_token_goes_over_plain_http_only_to_this_machine() {
        let carries = |url: &str| may_carry_token(&parse_server(url).unwrap());
        for near in [
            "http://127.0.0.1:8080",
            "http://127.255.0.9",
            "http://[::1]:8080",
            "http://[::ffff:127.0.0.1]",
            "http://localhost:8080/prefix",
            "http://LOCALHOST",
            "https://framedb.example",
            "https://10.0.0.1",
        ] {
            assert!(carries(near), "{near}");
        }
        for far in [
            "http://framedb.example",
            "http://10.0.0.1:8080",
            "http://128.0.0.1",
            "http://[::2]",
            "http://0.0.0.0",
            "http://localhost.example",
        ] {
            assert!(!carries(far), "{far}");
        }
    }

    #[test]
    fn the_checked_connection_refuses_a_token_over_plain_http_unless_told() {
        let args = |line: &str| {
            let words = format!("framedbctl {line} list");
            Cli::try_parse_from(words.split_whitespace())
                .unwrap()
                .global
        };
        let refused = args("--server http://10.0.0.1 --token t0k").connection();
        assert!(refused.unwrap_err().contains("--insecure-http"));
        for allowed in [
            "--server http://10.0.0.1 --token t0k --insecure-http",
            "--server http://10.0.0.1",
            "--server https://10.0.0.1 --token t0k",
            "--server http://127.0.0.1 --token t0k",
        ] {
            assert!(args(allowed).connection().is_ok(), "{allowed}");
        }
        // An empty token is no token.
        let empty = Cli::try_parse_from([
            "framedbctl",
            "--server",
            "http://10.0.0.1",
            "--token",
            "",
            "list",
        ]);
        assert!(empty.unwrap().global.connection().unwrap().token.is_none());
    }

    #[test]
    fn a_token_file_loses_its_line_end_and_is_never_quoted() {
        let dir = std::env::temp_dir().join(format!("framedbctl-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "t0k-s3cret\r\n").unwrap();
        assert_eq!(read_token(&file).unwrap().expose(), "t0k-s3cret");
        std::fs::write(&file, vec![b'x'; 20_000]).unwrap();
        assert!(read_token(&file).unwrap_err().contains("more than"));
        std::fs::write(&file, [0xff, 0xfe]).unwrap();
        assert!(read_token(&file).unwrap_err().contains("not UTF-8"));
        let missing = read_token(&dir.join("missing")).unwrap_err();
        assert!(
            missing.starts_with("cannot read the token file"),
            "{missing}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn metadata_changes_must_not_contradict_themselves() {
        let set = |pairs: &[&str]| -> Vec<(String, String)> {
            pairs.iter().map(|p| parse_key_value(p).unwrap()).collect()
        };
        assert_eq!(
            metadata_conflict(&set(&["a=1", "b=2"]), &["c".into()]),
            None
        );
        assert!(
            metadata_conflict(&set(&["a=1", "a=2"]), &[])
                .unwrap()
                .contains("twice")
        );
        assert!(
            metadata_conflict(&set(&["a=1"]), &["a".into()])
                .unwrap()
                .contains("--remove-metadata")
        );
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
