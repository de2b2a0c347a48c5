//! The global tier's client of local services against a peer that misbehaves.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::get;
use framedb_core::{ClusterDeployer, ClusterId};
use framedb_http::remote::directory::service_url;
use framedb_http::remote::{ClusterDirectory, RemoteClusters, RemoteTimeouts};
use framedb_http::wire::{MAX_BOOK_LINE, paths};
use futures_util::StreamExt;
use tokio::net::TcpListener;

#[tokio::test]
async fn a_status_line_past_the_cap_ends_the_stream_instead_of_filling_memory() {
    // A peer that sends one endless line, more than the cap, and keeps the stream open.
    let opened = Arc::new(AtomicUsize::new(0));
    let counter = opened.clone();
    let app = Router::new().route(
        paths::STATUS_WATCH,
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let chunks = MAX_BOOK_LINE / chunk.len() + 2;
            let endless = futures_util::stream::iter(
                std::iter::repeat_n(chunk, chunks).map(Ok::<_, std::io::Error>),
            )
            .chain(futures_util::stream::pending());
            async move { Body::from_stream(endless) }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let cluster = ClusterId::new("hostile").unwrap();
    let directory = Arc::new(ClusterDirectory::new());
    directory.insert(
        cluster.clone(),
        service_url(&format!("http://{address}")).unwrap(),
        None,
    );
    let remote = RemoteClusters::new(directory, RemoteTimeouts::default(), &[]).unwrap();
    let feed = remote.follow(&cluster).await.unwrap();

    // The oversized line breaks the stream at once, and the follower opens a new one;
    // without the cap it would keep reading the line until the read timeout (30 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    while opened.load(Ordering::SeqCst) < 2 {
        assert!(
            Instant::now() < deadline,
            "the stream was not cut at the cap"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        feed.borrow().is_none(),
        "nothing was taken from the hostile stream"
    );
}
