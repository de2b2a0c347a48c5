//! The commands against a real FrameDB: create and wait, read, list, query, delete, in
//! tables, JSON and YAML; the API's refusals end with its code and exit 1.

use reqwest::Method;
use serde_json::{Value, json};

use super::Fleet;

#[tokio::test]
async fn create_with_wait_ends_running_and_prints_the_port_and_urls() {
    let fleet = Fleet::start("running", None).await;
    let out = fleet
        .run("create ctl-run --cluster cluster-01 --node node-a --storage-size 2Gi --metadata team=analytics --metadata tier=gold --wait")
        .await
        .expect(0);
    let instance = fleet.data("/ctl-run").await;
    assert_eq!(instance["status"], "Running");
    assert_eq!(
        instance["metadata"],
        json!({"team": "analytics", "tier": "gold"})
    );
    assert_eq!(out.row("port"), instance["port"].to_string());
    assert_eq!(out.row("status"), "Running");
    assert_eq!(
        out.row("public url"),
        instance["public_url"].as_str().unwrap()
    );
    assert_eq!(
        out.row("local url"),
        instance["local_url"].as_str().unwrap()
    );
    assert_eq!(out.row("user"), "root");
    // The password printed is the instance's, as its cluster keeps it.
    let credentials = fleet.data("/ctl-run/credentials").await;
    assert_eq!(
        out.row("password"),
        credentials["password"].as_str().unwrap()
    );
    assert!(
        !out.stderr.contains('\u{1b}'),
        "no spinner when stderr is not a terminal: {}",
        out.stderr
    );

    // JSON: one document, the create's answer with the instance it waited for.
    let out = fleet
        .run("-o json create ctl-run-json --cluster cluster-01 --node node-b --storage-size 1Gi --deletion-policy Retain --resources small --wait --timeout 5m")
        .await
        .expect(0);
    let answer = out.json();
    let instance = fleet.data("/ctl-run-json").await;
    assert_eq!(answer["instance"], instance);
    assert_eq!(answer["port"], instance["port"]);
    assert_eq!(answer["message"], "Instance created in global registry");
    assert_eq!(answer["credentials"]["user"], "root");
    assert_eq!(instance["deletion_policy"], "Retain");
    assert_eq!(instance["resources"], "small");
    let out = fleet
        .ctl(&["credentials", "ctl-run-json", "-o", "yaml"])
        .await
        .expect(0);
    assert_eq!(out.yaml(), answer["credentials"]);
}

#[tokio::test]
async fn create_on_a_node_the_cluster_lacks_ends_with_the_schedulers_reason() {
    let fleet = Fleet::start("nowhere", None).await;
    let out = fleet
        .run("create ctl-nowhere --cluster cluster-01 --node node-z --storage-size 2Gi --wait --timeout 10s")
        .await
        .expect(1);
    let instance = fleet.data("/ctl-nowhere").await;
    assert_eq!(instance["status"], "Pending", "{instance}");
    let reason = instance["status_reason"].as_str().unwrap();
    assert!(
        out.stderr.contains(&format!(
            "error: ctl-nowhere is still Pending after 10s: {reason}"
        )),
        "{}",
        out.stderr
    );
    // Progress lines tell the status as it goes.
    assert!(
        out.stderr
            .lines()
            .any(|line| line == format!("ctl-nowhere: Pending: {reason}")),
        "{}",
        out.stderr
    );
    // The credentials were printed before the wait, which is not lost.
    assert_eq!(out.row("user"), "root");
}

#[tokio::test]
async fn create_with_wait_stops_at_failed_with_its_reason() {
    let fleet = Fleet::without_images("failed").await;
    let out = fleet
        .run("create ctl-failed --cluster cluster-02 --node node-b --storage-size 1Gi --wait")
        .await
        .expect(1);
    let instance = fleet.data("/ctl-failed").await;
    assert_eq!(instance["status"], "Failed", "{instance}");
    let reason = instance["status_reason"].as_str().unwrap();
    assert!(
        out.stderr
            .ends_with(&format!("error: ctl-failed is Failed: {reason}\n")),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn get_list_query_and_credentials_print_the_apis_data() {
    let fleet = Fleet::start("reads", None).await;
    for (id, node, team) in [
        ("ctl-a", "node-a", "analytics"),
        ("ctl-b", "node-b", "billing"),
    ] {
        fleet
            .run(&format!("create {id} --cluster cluster-01 --node {node} --storage-size 2Gi --metadata team={team} --wait"))
            .await
            .expect(0);
    }
    let query = |filter: Value, query: &'static str| {
        let fleet = &fleet;
        async move {
            let answer = fleet
                .api(Method::POST, &format!("/query{query}"), Some(&filter))
                .await;
            answer["data"].clone()
        }
    };
    let cases: [(&[&str], Value); 7] = [
        (&["get", "ctl-a"], fleet.data("/ctl-a").await),
        (
            &["credentials", "ctl-b"],
            fleet.data("/ctl-b/credentials").await,
        ),
        (&["list"], query(json!({}), "").await),
        (
            &["list", "--cluster", "cluster-01"],
            fleet.data("/cluster/cluster-01").await,
        ),
        (
            &["list", "--cluster", "cluster-01", "--node", "node-b"],
            fleet.data("/cluster/cluster-01/node/node-b").await,
        ),
        (
            &["query", r#"{"metadata.team": "analytics"}"#],
            query(json!({"metadata.team": "analytics"}), "").await,
        ),
        (
            &[
                "query",
                "{}",
                "--sort",
                "-framedb_id",
                "--limit",
                "1",
                "--skip",
                "0",
            ],
            query(json!({}), "?sort=-framedb_id&limit=1&skip=0").await,
        ),
    ];
    for (args, data) in &cases {
        assert!(!data.is_null() && data != &json!([]), "{args:?}: {data}");
        let json = fleet
            .ctl(&[&["-o", "json"], *args].concat())
            .await
            .expect(0);
        assert_eq!(&json.json(), data, "{args:?} -o json");
        let yaml = fleet
            .ctl(&[*args, &["--output", "yaml"]].concat())
            .await
            .expect(0);
        assert_eq!(&yaml.yaml(), data, "{args:?} -o yaml");
        fleet.ctl(args).await.expect(0);
    }

    // Tables: a header and a row an instance, in the API's order.
    let table = fleet.ctl(&["list"]).await.expect(0);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", table.stdout);
    assert!(lines[0].starts_with("ID  "), "{}", table.stdout);
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "ID", "CLUSTER", "NODE", "PORT", "STATUS", "STORAGE", "POLICY", "CREATED"
        ]
    );
    let listed = fleet.data("/cluster/cluster-01").await;
    for (line, instance) in lines[1..].iter().zip(listed.as_array().unwrap()) {
        let expected: Vec<String> = [
            "framedb_id",
            "cluster_id",
            "node_id",
            "port",
            "status",
            "storage_size",
            "deletion_policy",
            "created_at",
        ]
        .iter()
        .map(|field| match &instance[field] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .collect();
        assert_eq!(line.split_whitespace().collect::<Vec<_>>(), expected);
    }
    let table = fleet
        .ctl(&["query", "{}", "--sort", "-framedb_id", "--limit", "1"])
        .await
        .expect(0);
    assert_eq!(table.stdout.lines().count(), 2, "{}", table.stdout);
    assert!(table.stdout.lines().nth(1).unwrap().starts_with("ctl-b "));
    let table = fleet.ctl(&["get", "ctl-a"]).await.expect(0);
    let instance = fleet.data("/ctl-a").await;
    assert_eq!(table.row("id"), "ctl-a");
    assert_eq!(
        table.row("public url"),
        instance["public_url"].as_str().unwrap()
    );
    assert_eq!(table.row("metadata"), r#"{"team":"analytics"}"#);
    let table = fleet
        .ctl(&["list", "--cluster", "cluster-02"])
        .await
        .expect(0);
    assert_eq!(table.stdout, "no instances\n");
}

#[tokio::test]
async fn delete_prints_the_answer_and_waits_until_the_id_is_unknown() {
    let fleet = Fleet::start("delete", None).await;
    for id in ["ctl-del", "ctl-del-json"] {
        fleet
            .run(&format!(
                "create {id} --cluster cluster-02 --node node-a --storage-size 2Gi"
            ))
            .await
            .expect(0);
    }
    let out = fleet.ctl(&["delete", "ctl-del", "--wait"]).await.expect(0);
    assert_eq!(
        out.stdout,
        "ctl-del: Removed from global registry\nctl-del is gone\n"
    );
    let gone = fleet.ctl(&["get", "ctl-del"]).await.expect(1);
    assert!(
        gone.stderr.starts_with(
            "error: instance_not_found: no persistent instance is registered as 'ctl-del'"
        ),
        "{}",
        gone.stderr
    );

    let out = fleet
        .ctl(&["delete", "ctl-del-json", "--purge", "--wait", "-o", "json"])
        .await
        .expect(0);
    assert_eq!(
        out.json(),
        json!({"message": "Removed from global registry"})
    );
    let answer = fleet.api(Method::GET, "/ctl-del-json", None).await;
    assert_eq!(answer["error"], "instance_not_found");
    fleet
        .run("delete ctl-del-json -o yaml")
        .await
        .refused("instance_not_found");
}

#[tokio::test]
async fn the_apis_refusals_exit_1_with_its_code_and_message() {
    let fleet = Fleet::start("refusals", None).await;
    let out = fleet.ctl(&["get", "ctl-unknown"]).await.expect(1);
    assert_eq!(
        out.stderr,
        "error: instance_not_found: no persistent instance is registered as 'ctl-unknown'\n"
    );
    assert!(out.stdout.is_empty());
    fleet
        .run("credentials ctl-unknown")
        .await
        .refused("instance_not_found");

    for line in [
        "create Not_A_Label --cluster cluster-01 --node node-a --storage-size 2Gi",
        r#"query {"$where":"1"}"#,
        "query {} --sort password",
    ] {
        fleet.run(line).await.refused("invalid_input");
    }
    fleet
        .run("list --cluster cluster-99")
        .await
        .refused("cluster_not_found");
}

#[tokio::test]
async fn clusters_counts_each_clusters_instances_and_free_ports() {
    let fleet = Fleet::start("clusters", None).await;
    let none = fleet.ctl(&["clusters"]).await.expect(0);
    assert_eq!(none.stdout, "no clusters hold instances\n");
    for (id, node) in [("ctl-c1", "node-a"), ("ctl-c2", "node-b")] {
        fleet
            .run(&format!(
                "create {id} --cluster cluster-01 --node {node} --storage-size 2Gi"
            ))
            .await
            .expect(0);
    }
    let out = fleet.ctl(&["clusters", "-o", "json"]).await.expect(0);
    assert_eq!(
        out.json(),
        json!([{"cluster_id": "cluster-01", "instances": 2, "nodes": ["node-a", "node-b"],
                "ports_used": 2, "ports_free": 98}])
    );
    let out = fleet
        .ctl(&["clusters", "cluster-01", "cluster-02"])
        .await
        .expect(0);
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec![
                "CLUSTER",
                "INSTANCES",
                "NODES",
                "PORTS",
                "USED",
                "PORTS",
                "FREE"
            ],
            vec!["cluster-01", "2", "node-a,node-b", "2", "98"],
            vec!["cluster-02", "0", "-", "0", "100"],
        ]
    );
    fleet
        .run("clusters cluster-99")
        .await
        .refused("cluster_not_found");
}

#[tokio::test]
async fn update_merges_metadata_and_grows_the_volume() {
    let fleet = Fleet::start("update", None).await;
    fleet
        .run("create ctl-upd --cluster cluster-01 --node node-a --storage-size 1Gi --metadata team=analytics --metadata tier=gold")
        .await
        .expect(0);
    let out = fleet
        .run(
            "-o json update ctl-upd --metadata owner=ana --remove-metadata tier --storage-size 2Gi",
        )
        .await
        .expect(0);
    let instance = fleet.data("/ctl-upd").await;
    // The instance as updated, but its live status, which moves on in between.
    let without_status = |mut value: serde_json::Value| {
        value.as_object_mut().map(|object| object.remove("status"));
        value
    };
    assert_eq!(without_status(out.json()), without_status(instance.clone()));
    assert_eq!(
        instance["metadata"],
        json!({"team": "analytics", "owner": "ana"})
    );
    assert_eq!(instance["storage_size"], "2Gi");
    // A shrink is the API's refusal, with its code; nothing to change is a usage error.
    let out = fleet
        .run("update ctl-upd --storage-size 1Gi")
        .await
        .expect(1);
    assert!(out.stderr.contains("shrink_refused"), "{}", out.stderr);
    fleet.run("update ctl-upd").await.expect(2);
    assert_eq!(fleet.data("/ctl-upd").await["storage_size"], "2Gi");
}
