//! Exit codes when things go wrong: a wrong token (1, never printed), usage (2), a server
//! that is not there, does not answer, or answers something other than FrameDB (3).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{Fleet, Out, ctl_command};

#[tokio::test]
async fn a_wrong_token_exits_1_with_the_apis_code_and_is_never_printed() {
    const RIGHT: &str = "right-token-4f1d9c";
    const WRONG: &str = "wrong-token-8b2e7a";
    let fleet = Fleet::start("token", Some(RIGHT)).await;
    fleet.ctl(&["list"]).await.expect(0);

    let by_flag = Out::of(ctl_command(&fleet.url).args(["--token", WRONG, "get", "ctl-tok"]))
        .await
        .refused("unauthorized");
    let by_env = Out::of(
        ctl_command(&fleet.url)
            .env("FRAMEDB_API_TOKEN", WRONG)
            .args(["list"]),
    )
    .await
    .refused("unauthorized");
    Out::of(ctl_command(&fleet.url).args(["list"]))
        .await
        .refused("unauthorized");
    // The wrong token shows nowhere, nor in the help (which names the variable only).
    let help = Out::of(
        ctl_command(&fleet.url)
            .env("FRAMEDB_API_TOKEN", WRONG)
            .args(["--help"]),
    )
    .await
    .expect(0);
    for out in [&by_flag, &by_env, &help] {
        assert!(
            !out.stdout.contains(WRONG) && !out.stderr.contains(WRONG),
            "{out:#?}"
        );
    }
    assert!(help.stdout.contains("FRAMEDB_API_TOKEN"), "{}", help.stdout);
}

#[tokio::test]
async fn a_server_that_is_not_there_exits_3() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let out = Out::of(ctl_command(&format!("http://{closed}")).args(["get", "ctl-x"]))
        .await
        .expect(3);
    assert!(
        out.stderr.starts_with(&format!(
            "error: cannot reach the FrameDB server at http://{closed}/"
        )),
        "{}",
        out.stderr
    );
}

/// What a fake server answers.
#[derive(Clone, Copy)]
pub enum Answer {
    /// These bytes, then it closes the connection.
    Bytes(&'static [u8]),
    /// A JSON body without a length that never ends (until the client hangs up).
    Endless,
    /// Nothing, holding the connection open.
    Silent,
}

/// A server that reads each request's head and gives `answer`.
pub async fn fake_server(answer: Answer) -> String {
    counted_fake_server(answer).await.0
}

/// `HTTP/1.1 {status}` with `body` as JSON, then the end of the connection.
pub fn json_answer(status: &str, body: &str) -> Answer {
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    Answer::Bytes(Box::leak(answer.into_bytes().into_boxed_slice()))
}

/// [`fake_server`], and how many connections it has accepted.
pub async fn counted_fake_server(answer: Answer) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                match answer {
                    Answer::Bytes(answer) => {
                        let _ = socket.write_all(answer).await;
                        let _ = socket.shutdown().await;
                    }
                    Answer::Endless => {
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                                    transfer-encoding: chunked\r\n\r\n";
                        let mut chunk = b"100000\r\n".to_vec();
                        chunk.extend(std::iter::repeat_n(b' ', 0x10_0000));
                        chunk.extend_from_slice(b"\r\n");
                        if socket.write_all(head.as_bytes()).await.is_ok() {
                            while socket.write_all(&chunk).await.is_ok() {}
                        }
                    }
                    // Held until the client gives up and closes it.
                    Answer::Silent => {
                        while !matches!(socket.read(&mut buffer).await, Ok(0) | Err(_)) {}
                    }
                }
            });
        }
    });
    (url, accepted)
}

#[tokio::test]
async fn answers_that_are_not_frame_dbs_exit_3() {
    let html = fake_server(Answer::Bytes(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 13\r\nconnection: close\r\n\r\n<html></html>",
    ))
    .await;
    let out = Out::of(ctl_command(&html).args(["list"])).await.expect(3);
    assert!(
        out.stderr
            .contains("answered HTTP 200 with something other than FrameDB's JSON"),
        "{}",
        out.stderr
    );

    // JSON, but not FrameDB's envelope.
    let other = fake_server(Answer::Bytes(
        b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 17\r\nconnection: close\r\n\r\n{\"detail\": \"no\"}\n",
    ))
    .await;
    let out = Out::of(ctl_command(&other).args(["get", "ctl-x"]))
        .await
        .expect(3);
    assert!(out.stderr.contains("answered HTTP 404"), "{}", out.stderr);

    // Over the size cap: refused from its length, before its body is read.
    let huge = fake_server(Answer::Bytes(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\nconnection: close\r\n\r\n[",
    ))
    .await;
    let out = Out::of(ctl_command(&huge).args(["list"])).await.expect(3);
    assert!(out.stderr.contains("answered more than"), "{}", out.stderr);

    // Over the size cap without a length: cut as it is read.
    let endless = fake_server(Answer::Endless).await;
    let out = Out::of(ctl_command(&endless).args(["list"]))
        .await
        .expect(3);
    assert!(out.stderr.contains("answered more than"), "{}", out.stderr);
}

#[tokio::test]
async fn a_server_that_does_not_answer_in_time_exits_3() {
    let silent = fake_server(Answer::Silent).await;
    let out = Out::of(ctl_command(&silent).args(["--request-timeout", "300ms", "list"]))
        .await
        .expect(3);
    assert!(
        out.stderr.contains("did not answer within 300ms"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn bad_usage_exits_2_before_any_request() {
    // Nothing listens there: usage is refused before any request is sent.
    let nowhere = "http://127.0.0.1:9";
    for line in [
        "frobnicate",
        "list --node node-a",
        "query {not-json",
        "query [1]",
        "create ctl-u --cluster cluster-01",
        "create ctl-u --cluster c --node n --storage-size 1Gi --metadata novalue",
        "create ctl-u --cluster c --node n --storage-size 1Gi --metadata a=1 --metadata a=2",
        "-o xml list",
        "--server ftp://127.0.0.1 list",
        "--server http://user:pw@127.0.0.1:9 list",
        "--server http://10.0.0.1:9 --token t0k list",
        "--token t0k --token-file /dev/null list",
        "--token-file /nonexistent/framedbctl-token list",
        "update ctl-u --metadata a=1 --remove-metadata a",
        "update ctl-u --metadata a=1 --metadata a=2",
        "--request-timeout soon list",
        "delete ctl-u --timeout 1m",
        "get",
    ] {
        let args: Vec<&str> = line.split_whitespace().collect();
        let out = Out::of(ctl_command(nowhere).args(args)).await;
        assert_eq!(out.code, 2, "{line}: {out:#?}");
        assert!(out.stderr.contains("error: "), "{line}: {out:#?}");
    }
}
