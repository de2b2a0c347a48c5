//! What must not leak or harm: the token (off argv, never echoed, never to a proxy or over
//! plain http to another host), a password in --server, a server's text driving the
//! terminal, a server paging without end, a reader closing the pipe.

use std::process::Stdio;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::failures::{counted_fake_server, fake_server, json_answer};
use super::{Fleet, Out, ctl_command};

/// Whether `out` holds a control character other than a line end.
fn raw_controls(out: &Out) -> bool {
    (out.stdout.clone() + &out.stderr)
        .chars()
        .any(|c| c.is_control() && c != '\n')
}

#[tokio::test]
async fn a_token_from_a_file_or_starting_with_a_dash_works_and_never_shows() {
    const TOKEN: &str = "-s3cret-dash-token-71c";
    let fleet = Fleet::start("token-file", Some(TOKEN)).await;
    let dir = std::env::temp_dir().join(format!("framedbctl-tf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let path = file.to_str().unwrap();

    let by_file = Out::of(ctl_command(&fleet.url).args(["--token-file", path, "list"]))
        .await
        .expect(0);
    let by_env = Out::of(
        ctl_command(&fleet.url)
            .env("FRAMEDB_API_TOKEN_FILE", path)
            .args(["list"]),
    )
    .await
    .expect(0);
    let by_flag = Out::of(ctl_command(&fleet.url).args(["--token", TOKEN, "list"]))
        .await
        .expect(0);
    // A wrong one starting with `-` is sent, refused by the server, and not echoed.
    let wrong = Out::of(ctl_command(&fleet.url).args(["--token", "-s3cret-wrong", "list"]))
        .await
        .refused("unauthorized");
    let both =
        Out::of(ctl_command(&fleet.url).args(["--token", TOKEN, "--token-file", path, "list"]))
            .await
            .expect(2);
    for out in [&by_file, &by_env, &by_flag, &wrong, &both] {
        assert!(
            !out.stdout.contains("s3cret") && !out.stderr.contains("s3cret"),
            "{out:#?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_password_in_the_server_url_is_usage_and_never_echoed() {
    let by_flag = Out::of(ctl_command("http://127.0.0.1:9").args([
        "--server",
        "http://user:s3cret@127.0.0.1:9",
        "list",
    ]))
    .await;
    let by_env = Out::of(ctl_command("http://user:s3cret@127.0.0.1:9").args(["list"])).await;
    for out in [by_flag, by_env] {
        let out = out.expect(2);
        assert!(
            out.stderr.contains("must not carry credentials"),
            "{out:#?}"
        );
        assert!(
            !out.stdout.contains("s3cret") && !out.stderr.contains("s3cret"),
            "{out:#?}"
        );
    }
}

#[tokio::test]
async fn a_token_goes_over_plain_http_to_another_host_only_when_told() {
    let refused =
        Out::of(ctl_command("http://framedb.invalid:8080").args(["--token", "t0k-s3cret", "list"]))
            .await
            .expect(2);
    assert!(
        refused.stderr.contains("--insecure-http"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("s3cret"), "{}", refused.stderr);
    // Told, it is sent: the host does not exist, so the request fails to connect.
    let told = Out::of(ctl_command("http://framedb.invalid:8080").args([
        "--token",
        "t0k-s3cret",
        "--insecure-http",
        "--request-timeout",
        "5s",
        "list",
    ]))
    .await
    .expect(3);
    assert!(told.stderr.contains("cannot reach"), "{}", told.stderr);
}

#[tokio::test]
async fn proxies_from_the_environment_are_not_used() {
    // A proxy that would answer an empty fleet for whatever it is asked.
    let (proxy, accepted) =
        counted_fake_server(json_answer("200 OK", r#"{"success": true, "data": []}"#)).await;
    let mut command = ctl_command("http://framedb.invalid:8080");
    for variable in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        command.env(variable, &proxy);
    }
    let out = Out::of(command.env_remove("NO_PROXY").env_remove("no_proxy").args([
        "--request-timeout",
        "5s",
        "list",
    ]))
    .await
    .expect(3);
    assert!(out.stderr.contains("cannot reach"), "{}", out.stderr);
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "the proxy was used");
}

#[tokio::test]
async fn a_servers_control_characters_are_escaped_in_tables_and_errors() {
    let instance = json!({
        "framedb_id": "ctl-esc", "cluster_id": "c\u{9b}2J", "node_id": "n", "port": 30900,
        "status": "Failed", "status_reason": "pull failed \u{1b}[2J\u{7f}",
        "storage_size": "1Gi", "deletion_policy": "Delete",
        "metadata": {"team": "\u{1b}[2J", "k\u{1b}]0;title\u{7}": "v"},
    });
    // One answer for every request: a create's (message, port, credentials) and a read's.
    let body = json!({
        "success": true, "data": instance, "message": "created \u{1b}[2J", "port": 30900,
        "credentials": {"user": "root", "password": "pw\u{1b}[2J"},
    });
    let server = fake_server(json_answer("200 OK", &body.to_string())).await;
    let list_body = json!({"success": true, "data": [instance]});
    let list_server = fake_server(json_answer("200 OK", &list_body.to_string())).await;

    let get = Out::of(ctl_command(&server).args(["get", "ctl-esc"]))
        .await
        .expect(0);
    // An object is shown as JSON, with JSON's escapes.
    assert!(get.row("metadata").contains(r"\u001b[2J"), "{}", get.stdout);
    assert!(get.row("reason").contains(r"\u{1b}[2J"), "{}", get.stdout);
    let list = Out::of(ctl_command(&list_server).args(["list", "--cluster", "c"]))
        .await
        .expect(0);
    let wait = Out::of(ctl_command(&server).args([
        "create",
        "ctl-esc",
        "--cluster",
        "c",
        "--node",
        "n",
        "--storage-size",
        "1Gi",
        "--wait",
    ]))
    .await
    .expect(1);
    assert!(
        wait.stderr.contains(r"pull failed \u{1b}[2J\u{7f}"),
        "{}",
        wait.stderr
    );
    let mut outs = vec![get, list, wait];
    for format in ["json", "yaml"] {
        let out = Out::of(ctl_command(&server).args(["-o", format, "get", "ctl-esc"]))
            .await
            .expect(0);
        let read = if format == "json" {
            out.json()
        } else {
            out.yaml()
        };
        assert_eq!(read, instance, "{format} keeps the text");
        outs.push(out);
    }

    let refusal = json!({
        "success": false, "error": "bad\u{1b}[2J", "message": "no \u{1b}[2J such \u{9b}1m",
        "details": {"why": "\u{1b}[2J"},
    });
    let refusing = fake_server(json_answer("400 Bad Request", &refusal.to_string())).await;
    let refused = Out::of(ctl_command(&refusing).args(["get", "ctl-esc"]))
        .await
        .expect(1);
    assert!(
        refused.stderr.contains(r"no \u{1b}[2J such"),
        "{}",
        refused.stderr
    );
    outs.push(refused);
    for out in &outs {
        assert!(!raw_controls(out), "{out:#?}");
    }
}

#[tokio::test]
async fn a_server_ignoring_skip_stops_paging_with_exit_3() {
    let page: Vec<Value> = (0..1000)
        .map(|n| json!({"framedb_id": format!("ctl-page-{n:04}")}))
        .collect();
    let body = json!({"success": true, "data": page});
    let (server, accepted) = counted_fake_server(json_answer("200 OK", &body.to_string())).await;
    let out = Out::of(ctl_command(&server).args(["list"])).await.expect(3);
    assert!(
        out.stderr
            .contains("the page at skip 1000 with the same first instance"),
        "{}",
        out.stderr
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "it stopped at the second page"
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[tokio::test]
async fn a_closed_stdout_ends_quietly_with_exit_0() {
    let server = fake_server(json_answer("200 OK", r#"{"success": true, "data": []}"#)).await;
    let (reader, writer) = std::io::pipe().unwrap();
    // The reader is gone before the first write: as `| head -1` after its line.
    drop(reader);
    let out = Out::of(
        ctl_command(&server)
            .stdout(Stdio::from(writer))
            .args(["list"]),
    )
    .await
    .expect(0);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}
