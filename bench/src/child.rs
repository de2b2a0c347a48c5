//! Servers under test run in a child process (this same binary, `serve`), so that their
//! resident memory can be read from `/proc/PID/status` and their runtime does not share
//! worker threads with the load generator. The child logs as `framedb-server` does (one
//! INFO line per request, to its stderr, which the parent discards), prints
//! `LISTENING addr`, then obeys lines on stdin: `load N` puts N synthetic records into its
//! in-memory registry and answers `LOADED`. It exits when stdin closes.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use framedb_core::InstanceRegistry;
use framedb_core::memory::InMemoryRegistry;
use framedb_mongo::{MongoConfig, MongoRegistry};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::data;
use crate::topology::{self, Shape};

/// What the child serves.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// The trivial axum handler answering this JSON object, instead of FrameDB.
    #[arg(long)]
    pub ceiling_body: Option<String>,
    /// How FrameDB reaches its clusters.
    #[arg(long, value_enum, default_value = "two-tier")]
    pub shape: Shape,
    /// The registry in this MongoDB (else in memory).
    #[arg(long)]
    pub mongo_uri: Option<String>,
    /// The MongoDB database of the registry.
    #[arg(long, default_value = "framedb_bench")]
    pub mongo_database: String,
}

/// The child's side: serves what `args` says and obeys stdin.
///
/// # Errors
/// When the server cannot start.
pub async fn serve(args: ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let memory = Arc::new(InMemoryRegistry::new());
    let mut _stack = None;
    let addr = if let Some(body) = &args.ceiling_body {
        topology::spawn_server(topology::ceiling(serde_json::from_str(body)?)).await?
    } else {
        let registry: Arc<dyn InstanceRegistry> = match &args.mongo_uri {
            Some(uri) => Arc::new(
                MongoRegistry::connect(
                    &MongoConfig::new(uri.clone()).database(args.mongo_database.clone()),
                )
                .await?,
            ),
            None => memory.clone(),
        };
        let stack = topology::build(args.shape, registry, 2, Duration::ZERO).await?;
        let addr = stack.address;
        _stack = Some(stack);
        addr
    };
    let mut out = tokio::io::stdout();
    out.write_all(format!("LISTENING {addr}\n").as_bytes())
        .await?;
    out.flush().await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if let Some(n) = line.strip_prefix("load ") {
            let n: usize = n.trim().parse()?;
            for i in 0..n {
                memory.insert(&data::record(i)).await?;
            }
            out.write_all(format!("LOADED {}\n", memory.len()).as_bytes())
                .await?;
            out.flush().await?;
        }
    }
    Ok(())
}

/// The parent's handle on a child server.
pub struct ServerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: tokio::io::Lines<BufReader<ChildStdout>>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `framedb-bench serve` with `args`.
    ///
    /// # Errors
    /// When it cannot be started or does not report its address.
    pub async fn start(args: &[String]) -> Result<Self> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("serve")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting the server under test")?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), stdout.next_line())
            .await
            .context("the server under test did not start within 60 s")??
            .context("the server under test exited before listening")?;
        let Some(addr) = line.strip_prefix("LISTENING ") else {
            bail!("unexpected line from the server under test: {line}");
        };
        Ok(Self {
            addr: addr.parse()?,
            child,
            stdin,
            stdout,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Has the child load `n` synthetic records into its in-memory registry.
    ///
    /// # Errors
    /// When the child does not answer.
    pub async fn load(&mut self, n: usize) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        stdin.write_all(format!("load {n}\n").as_bytes()).await?;
        stdin.flush().await?;
        let line = self.stdout.next_line().await?.context("the child exited")?;
        if !line.starts_with("LOADED") {
            bail!("unexpected line from the server under test: {line}");
        }
        Ok(())
    }

    /// Stops the child (closing its stdin) and waits for it.
    pub async fn stop(mut self) {
        drop(self.stdin.take());
        stop_within(&mut self.child, Duration::from_secs(5)).await;
    }
}

/// Waits up to `grace` for `child` to exit (its stdin closed, which tells it to), then
/// kills it.
pub async fn stop_within(child: &mut Child, grace: Duration) {
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}
