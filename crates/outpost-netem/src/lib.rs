//! `outpost-netem`: a fault-injecting TCP proxy between an Outpost device and its server.
//!
//! The device's server URL points at the proxy; the proxy forwards to the real server and plays
//! the network a field worker has: online, offline (airplane switch), a 2G link, a flaky link
//! that drops connections, a reply cut after the server committed, or a stall.
//!
//! Why not the `noxious` crate (a Rust port of Toxiproxy): its toxic runners are private
//! (`mod toxics`), so the only public way in is its whole proxy with its own REST state; it pins
//! rand 0.8 and tokio-util 0.6 (2021); and the two faults Outpost cares most about are not
//! toxics there: a seeded, replayable connection drop, and a cut that is aware of HTTP requests
//! (the reply to a request the server has already applied). The pump below is small: one
//! reader and one writer per direction, the writer applying the current mode to each chunk.

mod flaky;
mod mode;
mod pump;

pub mod control;

pub use flaky::drops as flaky_drops;
pub use mode::{Mode, TWO_G_KBIT_PER_S, TWO_G_LATENCY_MS};

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

/// What can go wrong when starting or steering the proxy.
#[derive(Debug, thiserror::Error)]
pub enum NetemError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid mode: {0}")]
    InvalidMode(String),
    #[error("the proxy has stopped")]
    Stopped,
}

/// Counters a tester reads with `outpost-netem ctl status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    #[serde(flatten)]
    pub mode: Mode,
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
    pub seed: u64,
    pub connections_open: u64,
    pub connections_total: u64,
    /// Connections reset by the proxy: flaky drops, offline cuts, stalls ended.
    pub connections_cut: u64,
    /// Bytes delivered to the server.
    pub bytes_up: u64,
    /// Bytes delivered to the device.
    pub bytes_down: u64,
    pub replies_cut: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub open: AtomicU64,
    pub total: AtomicU64,
    pub cut: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub replies_cut: AtomicU64,
    /// Connections accepted since the switch to flaky: the index the seeded drop is drawn for.
    pub flaky_seq: AtomicU64,
}

pub(crate) struct Shared {
    pub upstream: SocketAddr,
    pub seed: u64,
    /// The current mode; connections watch it to react to a switch while they are open.
    pub mode: watch::Sender<Mode>,
    pub counters: Counters,
}

impl Shared {
    /// Counts one request going up in cut-reply mode; true if its reply is to be cut.
    /// After the last one the proxy goes back online by itself, so a tester's
    /// `ctl cut-reply` cuts exactly one exchange and the retry goes through.
    pub fn take_reply_cut(&self) -> bool {
        let mut take = false;
        self.mode.send_if_modified(|mode| match mode {
            Mode::CutReply { next } if *next > 0 => {
                take = true;
                *next -= 1;
                if *next == 0 {
                    *mode = Mode::Online;
                }
                true
            }
            _ => false,
        });
        take
    }
}

type Reply = oneshot::Sender<Result<(), NetemError>>;

/// A running proxy. Dropping it stops it and cuts every connection.
pub struct Netem {
    shared: Arc<Shared>,
    listen: SocketAddr,
    commands: mpsc::Sender<(Mode, Reply)>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Drop for Netem {
    fn drop(&mut self) {
        self.accept_task.abort();
        // Open connections watch the mode: going offline cuts them, so none outlives the proxy.
        self.shared.mode.send_replace(Mode::Offline);
    }
}

impl Netem {
    /// Starts an online proxy on `listen` (port 0 picks one: see [`Netem::local_addr`]) in front
    /// of `upstream`, with flaky seed 0.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> Result<Netem, NetemError> {
        Netem::start_seeded(listen, upstream, 0).await
    }

    /// As [`Netem::start`], with the seed that decides which connections `flaky` drops.
    pub async fn start_seeded(
        listen: SocketAddr,
        upstream: SocketAddr,
        seed: u64,
    ) -> Result<Netem, NetemError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| NetemError::Bind {
                addr: listen,
                source,
            })?;
        let listen = listener.local_addr().map_err(|source| NetemError::Bind {
            addr: listen,
            source,
        })?;
        let shared = Arc::new(Shared {
            upstream,
            seed,
            mode: watch::Sender::new(Mode::Online),
            counters: Counters::default(),
        });
        let (commands, receiver) = mpsc::channel(8);
        let accept_task = tokio::spawn(accept_loop(listener, listen, shared.clone(), receiver));
        tracing::info!(%listen, %upstream, seed, "netem started, online");
        Ok(Netem {
            shared,
            listen,
            commands,
            accept_task,
        })
    }

    /// The address the proxy listens on: give it to the device instead of the server's.
    pub fn local_addr(&self) -> SocketAddr {
        self.listen
    }

    /// Switches the mode. When this returns, new connections already see it: going offline has
    /// closed the listening socket, going back online has reopened it.
    pub async fn set_mode(&self, mode: Mode) -> Result<(), NetemError> {
        mode.validate().map_err(NetemError::InvalidMode)?;
        let (reply, answer) = oneshot::channel();
        self.commands
            .send((mode, reply))
            .await
            .map_err(|_| NetemError::Stopped)?;
        answer.await.map_err(|_| NetemError::Stopped)?
    }

    /// The current mode (cut-reply turns into online by itself once its replies are cut).
    pub fn mode(&self) -> Mode {
        *self.shared.mode.borrow()
    }

    /// Follows mode changes, including cut-reply's return to online.
    pub fn subscribe(&self) -> watch::Receiver<Mode> {
        self.shared.mode.subscribe()
    }

    pub fn status(&self) -> Status {
        let c = &self.shared.counters;
        Status {
            mode: self.mode(),
            listen: self.listen,
            upstream: self.shared.upstream,
            seed: self.shared.seed,
            connections_open: c.open.load(Ordering::SeqCst),
            connections_total: c.total.load(Ordering::SeqCst),
            connections_cut: c.cut.load(Ordering::SeqCst),
            bytes_up: c.bytes_up.load(Ordering::SeqCst),
            bytes_down: c.bytes_down.load(Ordering::SeqCst),
            replies_cut: c.replies_cut.load(Ordering::SeqCst),
        }
    }
}

/// Owns the listening socket, so that offline can close it (the device then gets a real
/// "connection refused", not a connection that opens and dies) and online can reopen it, both
/// before `set_mode` returns.
async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
    mut commands: mpsc::Receiver<(Mode, Reply)>,
) {
    let mut listener = Some(listener);
    loop {
        let command = match &listener {
            Some(l) => tokio::select! {
                // A switch first: a connection accepted after `offline` must not get through.
                biased;
                command = commands.recv() => command,
                accepted = l.accept() => {
                    match accepted {
                        Ok((client, peer)) => {
                            tracing::debug!(%peer, "accepted");
                            tokio::spawn(pump::serve(client, shared.clone()));
                        }
                        // Out of file descriptors and the like: keep serving the others.
                        Err(error) => tracing::warn!(%error, "accept failed"),
                    }
                    continue;
                }
            },
            None => commands.recv().await,
        };
        let Some((mode, reply)) = command else {
            return; // the Netem is gone
        };
        let result = match mode {
            Mode::Offline => {
                listener = None;
                Ok(())
            }
            _ if listener.is_none() => match TcpListener::bind(addr).await {
                Ok(l) => {
                    listener = Some(l);
                    Ok(())
                }
                Err(source) => Err(NetemError::Bind { addr, source }),
            },
            _ => Ok(()),
        };
        if result.is_ok() {
            if let Mode::Flaky { .. } = mode {
                // Count from zero at each switch, so the same seed replays the same drops.
                shared.counters.flaky_seq.store(0, Ordering::SeqCst);
            }
            shared.mode.send_replace(mode);
            tracing::info!(%mode, "mode changed");
        }
        // The caller may have given up waiting; the switch stands regardless.
        let _ = reply.send(result);
    }
}

#[cfg(test)]
mod tests;
