//! The commands: each calls the API, waits where asked, and prints what it got.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

use serde_json::{Map, Value, json};

use crate::api::Api;
use crate::cli::{Cli, Command, Connection, CreateArgs, DeleteArgs, ListArgs, QueryArgs};
use crate::error::Error;
use crate::output::{self, Printer, cell, line};
use crate::wait;

/// The node ports FrameDB gives instances on every cluster (the domain's `PORT_RANGE`).
pub const PORTS: RangeInclusive<u16> = 30900..=30999;

/// Runs the command `cli` names.
///
/// # Errors
/// What the command met: the API's refusals, the transport's failures, a wait that ended
/// badly.
pub async fn run(cli: Cli, connection: &Connection) -> Result<(), Error> {
    let api = Api::new(connection)?;
    let printer = Printer::new(cli.global.output);
    match cli.command {
        Command::Create(args) => create(&api, &printer, args).await,
        Command::Get { id } => printer.print(&api.get(&id).await?, output::instance),
        Command::Credentials { id } => printer.print(&api.credentials(&id).await?, |data| {
            output::fields([
                ("user", cell(&data["user"])),
                ("password", cell(&data["password"])),
            ])
        }),
        Command::Update(args) => {
            let change = change_of(args.metadata, args.remove_metadata, args.storage_size);
            printer.print(&api.update(&args.id, &change).await?, output::instance)
        }
        Command::Delete(args) => delete(&api, &printer, args).await,
        Command::List(args) => list(&api, &printer, args).await,
        Command::Query(args) => query(&api, &printer, args).await,
        Command::Clusters { clusters: names } => clusters(&api, &printer, &names).await,
    }
}

/// `create`: the port and the credentials at once (tables), then, with `--wait`, the
/// status until `Running`, and the URLs. JSON and YAML print one document at the end, the
/// create's answer with the last instance read (`instance`), also when the wait failed.
async fn create(api: &Api, printer: &Printer, args: CreateArgs) -> Result<(), Error> {
    let mut body = json!({
        "framedb_id": args.id,
        "cluster_id": args.cluster,
        "node_id": args.node,
        "storage_size": args.storage_size,
    });
    if !args.metadata.is_empty() {
        let metadata: Map<String, Value> = args
            .metadata
            .into_iter()
            .map(|(key, value)| (key, Value::String(value)))
            .collect();
        body["metadata"] = Value::Object(metadata);
    }
    if let Some(policy) = args.deletion_policy {
        body["deletion_policy"] = Value::String(policy);
    }
    if let Some(resources) = args.resources {
        body["resources"] = Value::String(resources);
    }
    let mut answer = api.create(&body).await?;
    if printer.is_table() {
        line(&format!("{}: {}", args.id, cell(&answer["message"])))?;
        line(&output::fields([
            ("port", cell(&answer["port"])),
            ("user", cell(&answer["credentials"]["user"])),
            ("password", cell(&answer["credentials"]["password"])),
        ]))?;
        eprintln!(
            "(the password is shown here this once; `framedbctl credentials {}` reads it again)",
            args.id
        );
    }
    let mut last = None;
    let waited = if args.wait.wait {
        wait::until_running(api, &args.id, args.wait.timeout, &mut last).await
    } else {
        Ok(())
    };
    if printer.is_table() {
        if let (Ok(()), Some(instance)) = (&waited, &last) {
            line(&output::fields(
                [
                    ("status", "status"),
                    ("port", "port"),
                    ("public url", "public_url"),
                    ("local url", "local_url"),
                ]
                .map(|(title, field)| (title, cell(&instance[field]))),
            ))?;
        }
    } else {
        if let Some(instance) = last {
            answer["instance"] = instance;
        }
        printer.print(&answer, |_| String::new())?;
    }
    waited
}

/// The `PATCH` body: a metadata merge patch (`null` removes a key) and the new size.
fn change_of(set: Vec<(String, String)>, remove: Vec<String>, size: Option<String>) -> Value {
    let mut change = json!({});
    if !set.is_empty() || !remove.is_empty() {
        let mut patch: Map<String, Value> = remove.into_iter().map(|k| (k, Value::Null)).collect();
        patch.extend(set.into_iter().map(|(k, v)| (k, Value::String(v))));
        change["metadata"] = Value::Object(patch);
    }
    if let Some(size) = size {
        change["storage_size"] = Value::String(size);
    }
    change
}

/// `delete`, and with `--wait`, until the id is unknown.
async fn delete(api: &Api, printer: &Printer, args: DeleteArgs) -> Result<(), Error> {
    let answer = api.delete(&args.id, args.purge).await?;
    printer.print(&answer, |answer| {
        format!("{}: {}", args.id, cell(&answer["message"]))
    })?;
    if args.wait.wait {
        wait::until_gone(api, &args.id, args.wait.timeout).await?;
        if printer.is_table() {
            line(&format!("{} is gone", args.id))?;
        }
    }
    Ok(())
}

/// `list`: a node's or a cluster's instances from their endpoints; the fleet's, page by
/// page, from the query endpoint with an empty filter (the API has no list of all).
async fn list(api: &Api, printer: &Printer, args: ListArgs) -> Result<(), Error> {
    let list = match &args.cluster {
        Some(cluster) => api.list(cluster, args.node.as_deref()).await?,
        None => Value::Array(api.all().await?),
    };
    printer.print(&list, output::instances)
}

/// `query`, with the API's `sort`, `limit` and `skip` passed as they are.
async fn query(api: &Api, printer: &Printer, args: QueryArgs) -> Result<(), Error> {
    let mut options = Vec::new();
    if let Some(sort) = args.sort {
        options.push(("sort", sort));
    }
    if let Some(limit) = args.limit {
        options.push(("limit", limit.to_string()));
    }
    if let Some(skip) = args.skip {
        options.push(("skip", skip.to_string()));
    }
    let filter = args.filter.unwrap_or_default();
    printer.print(&api.query(&filter, &options).await?, output::instances)
}

/// What `clusters` counts of one cluster.
#[derive(Default)]
struct Summary {
    instances: usize,
    nodes: BTreeSet<String>,
    ports: BTreeSet<u64>,
}

/// `clusters`: each cluster's instances, nodes and ports, counted from its instances
/// (the API exposes no cluster directory or free ports: README, "framedbctl").
async fn clusters(api: &Api, printer: &Printer, names: &[String]) -> Result<(), Error> {
    let mut summaries: BTreeMap<String, Summary> = BTreeMap::new();
    let instances = if names.is_empty() {
        api.all().await?
    } else {
        let mut instances = Vec::new();
        for name in names {
            // Named, a cluster is shown even when empty; its endpoint refuses an unknown one.
            summaries.entry(name.clone()).or_default();
            if let Value::Array(list) = api.list(name, None).await? {
                instances.extend(list);
            }
        }
        instances
    };
    for instance in &instances {
        let Some(cluster) = instance["cluster_id"].as_str() else {
            continue;
        };
        let summary = summaries.entry(cluster.to_owned()).or_default();
        summary.instances += 1;
        if let Some(node) = instance["node_id"].as_str() {
            summary.nodes.insert(node.to_owned());
        }
        if let Some(port) = instance["port"].as_u64()
            && u16::try_from(port).is_ok_and(|port| PORTS.contains(&port))
        {
            summary.ports.insert(port);
        }
    }
    let size = PORTS.len();
    let data: Vec<Value> = summaries
        .into_iter()
        .map(|(cluster, summary)| {
            json!({
                "cluster_id": cluster,
                "instances": summary.instances,
                "nodes": summary.nodes,
                "ports_used": summary.ports.len(),
                "ports_free": size.saturating_sub(summary.ports.len()),
            })
        })
        .collect();
    printer.print(&Value::Array(data), |data| {
        let rows = data.as_array().map(Vec::as_slice).unwrap_or_default();
        if rows.is_empty() {
            return "no clusters hold instances".to_owned();
        }
        output::columns(
            Some(vec![
                "CLUSTER",
                "INSTANCES",
                "NODES",
                "PORTS USED",
                "PORTS FREE",
            ]),
            rows.iter().map(|row| {
                let nodes: Vec<String> = row["nodes"]
                    .as_array()
                    .map(|nodes| nodes.iter().map(cell).collect())
                    .unwrap_or_default();
                vec![
                    cell(&row["cluster_id"]),
                    cell(&row["instances"]),
                    if nodes.is_empty() {
                        "-".to_owned()
                    } else {
                        nodes.join(",")
                    },
                    cell(&row["ports_used"]),
                    cell(&row["ports_free"]),
                ]
            }),
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_port_range_is_the_domains() {
        assert_eq!(super::PORTS, framedb_core::PORT_RANGE);
    }
}
