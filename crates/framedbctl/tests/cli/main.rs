//! `framedbctl` as users run it: the built binary, driven as a process, against a real
//! FrameDB service (the embedded default: simulated clusters `cluster-01` and
//! `cluster-02`, nodes `node-a` and `node-b`, built by the server's own start-up code), and
//! against servers that fail in the ways a client must survive.

mod failures;
mod hostile;
mod instances;

use std::path::PathBuf;
use std::process::Stdio;

use std::time::Duration;

use framedb_core::ClusterId;
use framedb_http::settings::{GlobalSettings, Secret, ServeSettings};
use framedb_http::{Adapters, App, Running};
use framedb_kube_sim::SimFleet;
use serde_json::Value;
use tokio::process::Command;

/// Where the instance endpoints live, relative to the server's URL.
const BASE: &str = "global/framedb/persistent-instances";

/// A FrameDB global service on the embedded default, on a free loopback port.
pub struct Fleet {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    token: Option<String>,
    /// Serving until the test's runtime ends.
    _running: Running,
    /// The simulated clusters it drives, when they are not the embedded default's.
    _clusters: Option<SimFleet>,
    state_dir: PathBuf,
}

impl Fleet {
    /// Starts one, open or requiring `token`; `test` names its state directory.
    pub async fn start(test: &str, token: Option<&str>) -> Self {
        Self::start_with(test, token, |_| ()).await
    }

    /// One driving simulated clusters (the demo fleet's) whose registries hold none of
    /// FrameDB's images: an instance's pod cannot pull them, and after a second of that
    /// (`--kube-status-stuck-after-secs 1`) the instance reads `Failed`.
    pub async fn without_images(test: &str) -> Self {
        let state_dir = state_dir(test);
        let clusters = SimFleet::demo(
            Duration::ZERO,
            SimFleet::DEMO_TIME_SCALE,
            Vec::<String>::new(),
        )
        .await
        .unwrap();
        let kubeconfigs = clusters.write_kubeconfigs(&state_dir).unwrap();
        let mut fleet = Self::start_with(test, None, |settings| {
            for (cluster, kubeconfig) in clusters.clusters().iter().zip(kubeconfigs) {
                let id = ClusterId::new(cluster.name()).unwrap();
                settings.fleet.clusters.push((id, kubeconfig));
            }
            settings.kube.status_stuck_after_secs = 1;
        })
        .await;
        fleet._clusters = Some(clusters);
        fleet
    }

    /// Starts one, with settings that `adjust` changes first.
    pub async fn start_with(
        test: &str,
        token: Option<&str>,
        adjust: impl FnOnce(&mut GlobalSettings),
    ) -> Self {
        let state_dir = state_dir(test);
        let mut settings = GlobalSettings {
            serve: ServeSettings::loopback(),
            ..GlobalSettings::default()
        };
        settings.serve.token = token.map(Secret::from);
        settings.demo.state_dir = state_dir.clone();
        // Containers answer their probes at once: an instance is Running as soon as its
        // three containers have started one after the other.
        settings.demo.demo_ready_after_ms = 0;
        adjust(&mut settings);
        let running = App::global(&settings, Adapters::default())
            .await
            .unwrap()
            .spawn();
        Self {
            url: running.url(),
            token: token.map(str::to_owned),
            _running: running,
            _clusters: None,
            state_dir,
        }
    }

    /// Runs `framedbctl ARGS` against it (with its token, if it has one).
    pub async fn ctl(&self, args: &[&str]) -> Out {
        let mut command = ctl_command(&self.url);
        if let Some(token) = &self.token {
            command.env("FRAMEDB_API_TOKEN", token);
        }
        Out::of(command.args(args)).await
    }

    /// Runs `framedbctl` with the words of `line` as its arguments.
    pub async fn run(&self, line: &str) -> Out {
        self.ctl(&line.split_whitespace().collect::<Vec<_>>()).await
    }

    /// The API's answer to `GET {BASE}/{path}` (`path` empty: the base).
    pub async fn api(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Value {
        framedb_http::tls::install_provider();
        let client = reqwest::Client::new();
        let mut request = client.request(method, format!("{}/{BASE}{path}", self.url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    /// The API's `data` for `GET {BASE}{path}`.
    pub async fn data(&self, path: &str) -> Value {
        let answer = self.api(reqwest::Method::GET, path, None).await;
        assert_eq!(answer["success"], true, "{answer}");
        answer["data"].clone()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// The directory of `test`'s kubeconfigs.
fn state_dir(test: &str) -> PathBuf {
    std::env::temp_dir().join(format!("framedbctl-{test}-{}", std::process::id()))
}

/// `framedbctl` aimed at `server`, with nothing of the caller's environment that it reads.
pub fn ctl_command(server: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_framedbctl"));
    command
        .env("FRAMEDB_SERVER", server)
        .env_remove("FRAMEDB_API_TOKEN")
        .env_remove("FRAMEDB_API_TOKEN_FILE")
        .env_remove("FRAMEDB_REQUEST_TIMEOUT")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// How a run of `framedbctl` ended.
#[derive(Debug)]
pub struct Out {
    /// Its exit code.
    pub code: i32,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

impl Out {
    /// Runs `command` to its end.
    pub async fn of(command: &mut Command) -> Self {
        let output = command.output().await.unwrap();
        Self {
            code: output.status.code().expect("exited, not killed"),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    /// Asserts that it exited with `code`, and returns it.
    #[track_caller]
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(self.code, code, "exit code of {self:#?}");
        self
    }

    /// Asserts that the API refused with `code`: exit 1, `error: CODE: sentence` on stderr,
    /// nothing on stdout.
    #[track_caller]
    pub fn refused(self, code: &str) -> Self {
        let out = self.expect(1);
        assert!(
            out.stderr.starts_with(&format!("error: {code}: ")) && out.stdout.is_empty(),
            "{code}: {out:#?}"
        );
        out
    }

    /// Its stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}): {}", self.stdout))
    }

    /// Its stdout as YAML, read into JSON values.
    #[track_caller]
    pub fn yaml(&self) -> Value {
        serde_saphyr::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("stdout is not YAML ({error}): {}", self.stdout))
    }

    /// The value of the table row titled `title` (`title   value`).
    #[track_caller]
    pub fn row(&self, title: &str) -> String {
        self.stdout
            .lines()
            .find_map(|line| {
                line.strip_prefix(title)
                    .filter(|rest| rest.starts_with("   "))
                    .map(|rest| rest.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no row {title:?} in {}", self.stdout))
    }
}
