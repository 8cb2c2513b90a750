//! Round-trip baselines: raw tokio channels, raw TCP ping-pong, and tarpc over its in-memory
//! channel and its TCP transport, each with 1 and with `inflight` calls outstanding.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::prelude::*;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::{client, context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::measure::{rate, rate_one, Budget, Counter};

/// Message size of the raw TCP ping-pong: a request id and a value, like an echo call.
const MSG: usize = 16;

/// Raw tokio channels: a server task answering `(value, reply)` requests.
pub(crate) async fn channel(budget: Budget, inflight: usize) -> f64 {
    let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(1024);
    tokio::spawn(async move {
        while let Some((v, reply)) = rx.recv().await {
            let _ = reply.send(v);
        }
    });
    rate(budget, inflight, move |counter| {
        let tx = tx.clone();
        async move {
            let mut v = 0u64;
            while counter.running() {
                let (reply, wait) = oneshot::channel();
                if tx.send((v, reply)).await.is_err() {
                    return;
                }
                v = wait.await.unwrap_or(v) + 1;
                counter.add(1);
            }
        }
    })
    .await
}

async fn tcp_echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            stream.set_nodelay(true).ok();
            tokio::spawn(async move {
                let (mut r, mut w) = stream.into_split();
                let mut buf = [0u8; MSG];
                while r.read_exact(&mut buf).await.is_ok() {
                    if w.write_all(&buf).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Raw TCP ping-pong: fixed 16-byte messages echoed back, `inflight` pipelined on one connection.
pub(crate) async fn tcp(budget: Budget, inflight: usize) -> f64 {
    let addr = tcp_echo_server().await;
    rate_one(budget, move |counter| async move {
        let stream = TcpStream::connect(addr).await.expect("connect loopback");
        stream.set_nodelay(true).ok();
        let (mut r, mut w) = stream.into_split();
        let window = Arc::new(Semaphore::new(inflight));
        let writer_window = window.clone();
        let writer = tokio::spawn(async move {
            let msg = [7u8; MSG];
            loop {
                let Ok(permit) = writer_window.acquire().await else {
                    return;
                };
                permit.forget();
                if w.write_all(&msg).await.is_err() {
                    return;
                }
            }
        });
        let mut buf = [0u8; MSG];
        while counter.running() && r.read_exact(&mut buf).await.is_ok() {
            counter.add(1);
            window.add_permits(1);
        }
        writer.abort();
    })
    .await
}

#[tarpc::service]
pub(crate) trait Echo {
    async fn echo(value: u64) -> u64;
}

#[derive(Clone)]
struct EchoServer;

impl Echo for EchoServer {
    async fn echo(self, _: context::Context, value: u64) -> u64 {
        value
    }
}

async fn spawn(fut: impl Future<Output = ()> + Send + 'static) {
    tokio::spawn(fut);
}

async fn tarpc_calls(client: EchoClient, budget: Budget, inflight: usize) -> f64 {
    rate(budget, inflight, move |counter: Counter| {
        let client = client.clone();
        async move {
            let mut v = 0u64;
            while counter.running() {
                match client.echo(context::current(), v).await {
                    Ok(back) => v = back + 1,
                    Err(_) => return,
                }
                counter.add(1);
            }
        }
    })
    .await
}

/// tarpc over its in-memory channel transport.
pub(crate) async fn tarpc_channel(budget: Budget, inflight: usize) -> f64 {
    let (client_transport, server_transport) = tarpc::transport::channel::unbounded();
    let server = BaseChannel::with_defaults(server_transport);
    tokio::spawn(server.execute(EchoServer.serve()).for_each(spawn));
    let client = EchoClient::new(client::Config::default(), client_transport).spawn();
    tarpc_calls(client, budget, inflight).await
}

/// tarpc over its TCP transport (length-delimited bincode frames).
pub(crate) async fn tarpc_tcp(budget: Budget, inflight: usize) -> f64 {
    let mut incoming = tarpc::serde_transport::tcp::listen("127.0.0.1:0", Bincode::default)
        .await
        .expect("bind loopback");
    let addr = incoming.local_addr();
    tokio::spawn(async move {
        while let Some(Ok(transport)) = incoming.next().await {
            let server = BaseChannel::with_defaults(transport);
            tokio::spawn(server.execute(EchoServer.serve()).for_each(spawn));
        }
    });
    let transport = tarpc::serde_transport::tcp::connect(addr, Bincode::default)
        .await
        .expect("connect loopback");
    let client = EchoClient::new(client::Config::default(), transport).spawn();
    tarpc_calls(client, budget, inflight).await
}
