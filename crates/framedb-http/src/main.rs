//! `framedb-server`: FrameDB's HTTP APIs, in the `global` (default), `local` or
//! `simulate` role; `manifests` prints what a create makes on a cluster. With no flags it serves on 127.0.0.1:8080 on the embedded default (the
//! two tiers on simulated clusters, in-memory registries). `--help` lists the flags;
//! each has an environment fallback. Logs go to stderr; `RUST_LOG` sets their level.

use std::io::IsTerminal;

use clap::Parser;
use framedb_http::cli::{Cli, LogFormat, Role};
use framedb_http::startup::{Adapters, App, shutdown_signal};
use tracing_subscriber::EnvFilter;

// glibc's allocator serializes threads that free what another thread allocated, which
// Tokio's work stealing does on every request: with mimalloc, reads are about a third
// faster (bench/README.md). Wrapped to count the heap for `/metrics`'
// `framedb_heap_bytes` when `FRAMEDB_HEAP_STATS=1` (it costs reads about 8 %).
#[global_allocator]
static ALLOCATOR: framedb_alloc::Counting<mimalloc::MiMalloc> =
    framedb_alloc::Counting(mimalloc::MiMalloc);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Read before anything else allocates: what is counted must be counted from the start.
    // An environment variable alone, not a flag: parsing the flags allocates.
    if std::env::var_os("FRAMEDB_HEAP_STATS").is_some_and(|value| value == "1") {
        framedb_alloc::start_counting();
    }
    framedb_http::tls::install_provider();
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_span_list(true).init(),
    }
    match cli.into_role() {
        Role::Global(settings) => {
            App::global(&settings, Adapters::default())
                .await?
                .run_until(shutdown_signal())
                .await?;
        }
        Role::Local(settings) => {
            App::local(&settings, Adapters::default())
                .await?
                .run_until(shutdown_signal())
                .await?;
        }
        #[cfg(feature = "simulator")]
        Role::Simulate(settings) => {
            framedb_http::startup::demo::simulate(&settings, shutdown_signal()).await?;
        }
        Role::Manifests(settings) => {
            let manifests = settings.manifests()?;
            println!("{}", serde_json::to_string_pretty(&manifests)?);
        }
    }
    Ok(())
}
