//! The load generator: a minimal HTTP/1.1 client over keep-alive connections, and a
//! closed-loop driver that keeps N connections busy for a while and records every
//! request's latency. Written here rather than installed (`wrk`, `oha`) so the benchmark
//! needs nothing but the toolchain, and cheap enough (no header map, one buffer per
//! connection) that on a 2-core machine it takes less CPU from the server than a
//! general-purpose client would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::stats::Latencies;

/// One request, serialized once and sent as many times as needed.
#[derive(Clone, Debug)]
pub struct Request(Arc<[u8]>);

impl Request {
    /// `GET path`.
    pub fn get(path: &str) -> Self {
        Self(
            format!("GET {path} HTTP/1.1\r\nhost: bench\r\n\r\n")
                .into_bytes()
                .into(),
        )
    }

    /// `POST path` with a JSON body.
    pub fn post_json(path: &str, body: &str) -> Self {
        Self(
            format!(
                "POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
            .into(),
        )
    }
}

/// A keep-alive HTTP/1.1 connection.
pub struct Connection {
    stream: BufReader<TcpStream>,
    line: String,
    /// The body of the last answer.
    pub body: Vec<u8>,
}

impl Connection {
    /// Connects to `addr`.
    ///
    /// # Errors
    /// When the connection cannot be opened.
    pub async fn open(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::with_capacity(64 * 1024, stream),
            line: String::new(),
            body: Vec::new(),
        })
    }

    /// Sends `request` and reads the answer; returns its status (the body is in
    /// [`Connection::body`]). Answers must carry `content-length` or be chunked.
    ///
    /// # Errors
    /// On I/O errors or an answer this client cannot read.
    pub async fn send(&mut self, request: &Request) -> Result<u16> {
        self.stream.get_mut().write_all(&request.0).await?;
        self.line.clear();
        if self.stream.read_line(&mut self.line).await? == 0 {
            bail!("the server closed the connection");
        }
        let status: u16 = self
            .line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("not an HTTP status line: {:?}", self.line))?;
        let mut length = None;
        let mut chunked = false;
        loop {
            self.line.clear();
            if self.stream.read_line(&mut self.line).await? == 0 {
                bail!("the server closed the connection in the headers");
            }
            let header = self.line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>()?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
        self.body.clear();
        if chunked {
            self.read_chunks().await?;
        } else {
            let length = length.context("an answer without content-length")?;
            self.body.resize(length, 0);
            self.stream.read_exact(&mut self.body).await?;
        }
        Ok(status)
    }

    async fn read_chunks(&mut self) -> Result<()> {
        loop {
            self.line.clear();
            self.stream.read_line(&mut self.line).await?;
            let size_text = self.line.trim_end().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size_text, 16)
                .with_context(|| format!("bad chunk size {size_text:?}"))?;
            let start = self.body.len();
            self.body.resize(start + size, 0);
            self.stream.read_exact(&mut self.body[start..]).await?;
            self.line.clear();
            self.stream.read_line(&mut self.line).await?;
            if size == 0 {
                return Ok(());
            }
        }
    }
}

/// Sends one request on a fresh connection; returns the status and the body.
///
/// # Errors
/// As [`Connection::send`].
pub async fn once(addr: SocketAddr, request: &Request) -> Result<(u16, Vec<u8>)> {
    let mut connection = Connection::open(addr).await?;
    let status = connection.send(request).await?;
    Ok((status, std::mem::take(&mut connection.body)))
}

/// What a closed-loop run measured.
#[derive(Debug)]
pub struct Run {
    /// Latencies of the requests answered with the expected status.
    pub latencies: Latencies,
    /// Requests answered otherwise, or failed.
    pub errors: u64,
    /// Wall time of the measured part.
    pub elapsed: Duration,
}

impl Run {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Keeps `connections` connections busy sending `requests` (each connection walks the
/// list from its own offset) for `warmup` (not recorded) and then `duration`.
///
/// # Errors
/// When a connection cannot be opened.
pub async fn closed_loop(
    addr: SocketAddr,
    requests: Vec<Request>,
    expect: u16,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<Run> {
    let requests = Arc::new(requests);
    let mut links = Vec::with_capacity(connections);
    for _ in 0..connections {
        links.push(Connection::open(addr).await?);
    }
    let start = Instant::now() + warmup;
    let end = start + duration;
    let mut tasks = Vec::with_capacity(connections);
    for (offset, mut link) in links.into_iter().enumerate() {
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Latencies::with_capacity(16 * 1024);
            let mut errors = 0_u64;
            let mut next = offset;
            loop {
                let request = &requests[next % requests.len()];
                next += 1;
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let answer = link.send(request).await;
                let done = Instant::now();
                if sent < start {
                    continue;
                }
                match answer {
                    Ok(status) if status == expect => latencies.push(done - sent),
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        match Connection::open(addr).await {
                            Ok(fresh) => link = fresh,
                            Err(_) => break,
                        }
                    }
                }
            }
            (latencies, errors)
        }));
    }
    gather(tasks, duration).await
}

/// The run made of what each closed-loop task measured.
///
/// # Errors
/// When a task panicked.
pub async fn gather(
    tasks: Vec<tokio::task::JoinHandle<(Latencies, u64)>>,
    elapsed: Duration,
) -> Result<Run> {
    let mut latencies = Latencies::default();
    let mut errors = 0;
    for task in tasks {
        let (more, failed) = task.await?;
        latencies.extend(more);
        errors += failed;
    }
    Ok(Run {
        latencies,
        errors,
        elapsed,
    })
}
