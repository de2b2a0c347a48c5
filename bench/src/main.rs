//! `framedb-bench`: FrameDB's benchmark. `framedb-bench run [--quick]` measures
//! read, query, create, port allocation and memory, each against its baseline in the same
//! run, and writes `bench/results/latest.md` and `latest.json`; `scripts/bench.sh` is the
//! documented way to run it (it also starts a MongoDB-compatible server). The `serve`
//! subcommand is the server under test, started by `run` as a child process.
//!
//! - `load`: the HTTP/1.1 keep-alive load generator;
//! - `child`: the server under test as a child process;
//! - `topology`: FrameDB's stacks (two tiers, one tier, no cluster) and the axum ceiling;
//! - `data`: the synthetic fleet;
//! - `scenarios`: the five scenarios and their targets;
//! - `report`: the Markdown table and the JSON;
//! - `stats`: percentiles, the machine, resident memory.

// The same allocator as `framedb-server`, so that the servers under test are built as
// it is (the ceiling too).
#[global_allocator]
static ALLOCATOR: framedb_alloc::Counting<mimalloc::MiMalloc> =
    framedb_alloc::Counting(mimalloc::MiMalloc);

mod child;
mod data;
mod fleet;
mod load;
mod report;
mod scenarios;
mod stats;
mod topology;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// FrameDB's benchmark.
#[derive(Debug, Parser)]
#[command(name = "framedb-bench", about = "FrameDB against its ceilings")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The benchmark's scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// Read on the in-memory registry, and memory.
    Read,
    /// MongoDB read and query.
    Mongo,
    /// Creates.
    Create,
    /// Port allocation.
    Ports,
    /// The fleet: 200 clusters, 20,000 instances (needs MongoDB).
    Fleet,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs every scenario and writes the table and the JSON.
    Run {
        /// Smaller sizes and shorter runs (under a minute).
        #[arg(long)]
        quick: bool,
        /// The MongoDB to measure (the MongoDB scenarios are skipped without it).
        #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
        mongo_uri: Option<String>,
        /// The database the benchmark may fill and empty.
        #[arg(long, default_value = "framedb_bench")]
        mongo_database: String,
        /// Where `latest.md` and `latest.json` go.
        #[arg(long, default_value = "bench/results")]
        out: PathBuf,
        /// Runs only these scenarios (for development; the results then hold only them).
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<Scenario>,
    },
    /// The server under test (started by `run`).
    #[command(hide = true)]
    Serve(child::ServeArgs),
    /// The fleet scenario's local config services (started by `run`).
    #[command(hide = true)]
    Locals(fleet::LocalsArgs),
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => child::serve(args).await,
        Command::Locals(args) => fleet::serve_locals(args).await,
        Command::Run {
            quick,
            mongo_uri,
            mongo_database,
            out,
            only,
        } => run(quick, mongo_uri, &mongo_database, &out, &only).await,
    }
}

async fn run(
    quick: bool,
    mongo_uri: Option<String>,
    database: &str,
    out: &std::path::Path,
    only: &[Scenario],
) -> Result<()> {
    let wanted = |scenario| only.is_empty() || only.contains(&scenario);
    let started = Instant::now();
    let plan = scenarios::Plan::new(quick);
    let machine = stats::Machine::read();
    let mut report = report::Report::default();
    let step = |name: &str| eprintln!("[{:>5.1} s] {name}", started.elapsed().as_secs_f64());
    if wanted(Scenario::Read) {
        step("read and memory");
        scenarios::read_and_memory(&plan, &mut report).await?;
    }
    if wanted(Scenario::Mongo) {
        match &mongo_uri {
            Some(uri) => {
                step("MongoDB: load, read, query");
                scenarios::mongo(&plan, &mut report, uri, database).await?;
            }
            None => {
                report.note("no MONGODB_URI: the MongoDB read and query scenarios were skipped");
            }
        }
    }
    if wanted(Scenario::Create) {
        step("create");
        scenarios::create(&plan, &mut report).await?;
    }
    if wanted(Scenario::Ports) {
        step("port allocation");
        scenarios::ports(&plan, &mut report).await?;
    }
    if wanted(Scenario::Fleet) {
        match &mongo_uri {
            Some(uri) => {
                step("fleet");
                let plan = fleet::FleetPlan::new(quick);
                fleet::fleet(&plan, &mut report, uri, &format!("{database}_fleet")).await?;
            }
            None => report.note("no MONGODB_URI: the fleet scenario was skipped"),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    step("done");
    let markdown = report.markdown(&machine, plan.mode, seconds);
    let json = report.json(&machine, plan.mode, seconds);
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("latest.md"), &markdown)?;
    std::fs::write(
        out.join("latest.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    println!("{markdown}");
    Ok(())
}
