//! What berth's load harnesses share: one keep-alive HTTP/1.1 connection speaking raw AWS JSON
//! 1.1, so that the client costs little CPU next to the server it measures.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDBERTHLOAD/20260101/us-east-1/ecs/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0";

pub struct Conn {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Conn { addr, sender })
    }

    /// One ECS call; returns the HTTP status and body.
    pub async fn call(&mut self, op: &str, body: Bytes) -> Result<(u16, Bytes)> {
        self.sender.ready().await?;
        let req = hyper::Request::post("/")
            .header("host", self.addr.to_string())
            .header("content-type", "application/x-amz-json-1.1")
            .header(
                "x-amz-target",
                format!("AmazonEC2ContainerServiceV20141113.{op}"),
            )
            .header("authorization", AUTH)
            .body(Full::new(body))?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    pub async fn call_json(&mut self, op: &str, body: Value) -> Result<Value> {
        let (status, bytes) = self.call(op, Bytes::from(body.to_string())).await?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status != 200 {
            bail!("{op} answered {status}: {v}");
        }
        Ok(v)
    }
}

/// What `/proc` tells about a process: its resident set and the CPU time it has used.
#[derive(Debug, Clone, Copy)]
pub struct ProcStats {
    pub rss_mib: f64,
    /// User + system CPU seconds since the process started.
    pub cpu_s: f64,
}

/// Reads `/proc/PID/status` and `/proc/PID/stat` (Linux only; `None` elsewhere or when the
/// process is gone). CPU ticks are taken as 1/100 s, the USER_HZ of every Linux port.
pub fn proc_stats(pid: u32) -> Option<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it start with the state (3),
    // so utime (14) and stime (15) are the 12th and 13th after the closing parenthesis.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
    Some(ProcStats {
        rss_mib: rss_kib / 1024.0,
        cpu_s: ticks / 100.0,
    })
}
