//! A TCP proxy between the MongoDB driver and the test server: it records every byte the
//! driver sends (to show what reaches MongoDB) and can be switched off and on (to show
//! how FrameDB behaves while MongoDB is unreachable) — with any MongoDB behind it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy; it stops with the test's runtime.
pub struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (accept_up, accept_cut, accept_sent) = (up.clone(), cut.clone(), sent.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(relay(
                    client,
                    server,
                    accept_cut.subscribe(),
                    accept_sent.clone(),
                ));
            }
        });
        Self {
            port,
            up,
            cut,
            sent,
        }
    }

    /// `upstream_uri` with its hosts replaced by the proxy (credentials and options kept),
    /// connecting directly so that the driver does not go around the proxy.
    pub fn uri(&self, upstream_uri: &str) -> String {
        let rest = upstream_uri.strip_prefix("mongodb://").unwrap();
        let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        let credentials = authority
            .rsplit_once('@')
            .map_or(String::new(), |(c, _)| format!("{c}@"));
        let tail = tail.strip_prefix('/').unwrap_or(tail);
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        let query = if query.is_empty() {
            "directConnection=true".to_owned()
        } else {
            format!("{query}&directConnection=true")
        };
        format!(
            "mongodb://{credentials}127.0.0.1:{}/{path}?{query}",
            self.port
        )
    }

    /// Cuts every connection and refuses new ones, as a stopped server would.
    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|generation| *generation += 1);
    }

    /// Accepts connections again.
    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// Everything the driver has sent so far, as lossy text.
    pub fn sent(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().unwrap()).into_owned()
    }
}

async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    mut cut: watch::Receiver<u64>,
    sent: Arc<Mutex<Vec<u8>>>,
) {
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let upstream = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = client_read.read(&mut buffer).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            sent.lock().unwrap().extend_from_slice(&buffer[..n]);
            server_write.write_all(&buffer[..n]).await?;
        }
    };
    let downstream = tokio::io::copy(&mut server_read, &mut client_write);
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
        _ = cut.changed() => {}
    }
}

/// `host:port` of the first host in a `mongodb://` URI.
pub fn first_host(uri: &str) -> String {
    let rest = uri
        .strip_prefix("mongodb://")
        .expect("a mongodb:// URI (mongodb+srv:// is not supported by these tests)");
    let hosts = rest.split(['/', '?']).next().unwrap();
    let hosts = hosts.rsplit_once('@').map_or(hosts, |(_, h)| h);
    let first = hosts.split(',').next().unwrap();
    if first.contains(':') {
        first.to_owned()
    } else {
        format!("{first}:27017")
    }
}
