//! `heartline-chaos`: does delivery hold while everything fails?
//!
//! Starts the real demo server (a child process on a file database) behind
//! the fault proxy, connects native clients that run the real socket core
//! (`heartline::native`), has each send numbered chat messages into one room
//! at a steady pace, and meanwhile kills the server with SIGKILL (restarting
//! it on the same address and database), cuts the link and stalls it
//! (half-open). At the end it checks, from a fresh client that reads the
//! whole history and from what every client received, that no message was
//! lost, duplicated or reordered, and that every message ended acked.
//!
//! With `--servers 2 --db postgres://… --bus redis://…` it runs a cluster:
//! two servers sharing the database and the bus, each behind its own fault
//! proxy, the clients given both addresses (spread so that each server has
//! some first), and the kills alternating between the servers; cuts and
//! stalls hit every link at once.
//!
//! Loopback only, bounded in count and time. Prints one summary line:
//!
//! ```text
//! chaos: clients=3 sent=3000 acked=3000 stored=3000 delivered=9000/9000 lost=0 duplicated=0 reordered=0 kills=20 cuts=20 stalls=5 in 212 s
//! ```
//!
//! and exits non-zero on any loss, duplicate, reorder, unacked message or
//! missed deadline.

mod checks;
mod client;
mod server;
mod timing;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use heartline::core::Transport;
use heartline_faultproxy::{Mode, Proxy};
use tokio::time::Instant;

use crate::client::ChaosClient;
use crate::server::ServerProcess;
use crate::timing::Samples;

#[derive(Debug, Parser)]
#[command(about = "Chaos run of the Heartline socket core against the real server")]
struct Args {
    /// The heartline-server binary to run (and kill).
    #[arg(long)]
    server_bin: PathBuf,
    /// Clients, all in one room.
    #[arg(long, default_value_t = 3)]
    clients: usize,
    /// Messages each client sends.
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    /// Messages per second each client sends.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Times the server is killed with SIGKILL and restarted.
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// Times the proxy cuts every connection (TCP RST) and refuses new ones
    /// for --cut-ms.
    #[arg(long, default_value_t = 20)]
    cuts: usize,
    /// Times the proxy stalls the link (half-open) until every client has
    /// noticed.
    #[arg(long, default_value_t = 5)]
    stalls: usize,
    /// How long the server stays dead after a kill, ms.
    #[arg(long, default_value_t = 300)]
    down_ms: u64,
    /// How long a cut lasts, ms.
    #[arg(long, default_value_t = 1_000)]
    cut_ms: u64,
    /// Longest wait for any one recovery, acks or deliveries, seconds.
    #[arg(long, default_value_t = 120)]
    deadline_secs: u64,
    /// Room name.
    #[arg(long, default_value = "chaos")]
    room: String,
    /// Server processes; more than one needs a shared PostgreSQL `--db`
    /// and a `--bus`.
    #[arg(long, default_value_t = 1)]
    servers: usize,
    /// The servers' database; default: a SQLite file in a temp dir.
    #[arg(long)]
    db: Option<String>,
    /// The servers' bus (`redis://…`), for a cluster.
    #[arg(long)]
    bus: Option<String>,
    /// The proxies refuse WebSocket upgrades (as some corporate proxies
    /// do) for the first half of the faults, so the clients run on the
    /// HTTP long-poll fallback; then they allow them again, and every
    /// client must move back to WebSocket while messages flow.
    #[arg(long)]
    fallback: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Kill,
    Cut,
    Stall,
}

/// Faults spread evenly: kills and cuts alternate, stalls in between.
fn schedule(kills: usize, cuts: usize, stalls: usize) -> Vec<Fault> {
    let mut faults = Vec::with_capacity(kills + cuts + stalls);
    let (mut k, mut c) = (0, 0);
    while k < kills || c < cuts {
        if k < kills {
            faults.push(Fault::Kill);
            k += 1;
        }
        if c < cuts {
            faults.push(Fault::Cut);
            c += 1;
        }
    }
    let total = faults.len() + stalls;
    for s in 0..stalls {
        // Evenly spaced positions in the final list.
        let at = ((s + 1) * total / (stalls + 1)).min(faults.len());
        faults.insert(at, Fault::Stall);
    }
    faults
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,heartline_faultproxy=error")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("chaos: error: temp dir: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = run(&args, dir.path()).await;
    if !matches!(outcome, Ok(true)) {
        // The servers' logs are the first clue: keep them.
        eprintln!("chaos: server logs kept in {}", dir.keep().display());
    }
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chaos: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn free_loopback_port() -> Result<SocketAddr, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port on 127.0.0.1: {e}"))?;
    listener.local_addr().map_err(|e| e.to_string())
}

/// Polls `done` every 20 ms until it holds or `deadline` passes.
async fn wait_until(
    what: &str,
    deadline: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), String> {
    let give_up = Instant::now() + deadline;
    while !done() {
        if Instant::now() > give_up {
            return Err(format!("timed out after {deadline:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn run(args: &Args, dir: &std::path::Path) -> Result<bool, String> {
    let started = Instant::now();
    let deadline = Duration::from_secs(args.deadline_secs);
    if args.servers == 0 {
        return Err("--servers must be at least 1".into());
    }
    if args.servers > 1 && (args.bus.is_none() || args.db.is_none()) {
        return Err("--servers > 1 needs a shared --db postgres://… and a --bus redis://…".into());
    }
    // Every message of the run must come back from one `join`.
    let history_max = args.clients * args.messages + 100;
    let mut servers = Vec::with_capacity(args.servers);
    let mut proxies = Vec::with_capacity(args.servers);
    let mut urls = Vec::with_capacity(args.servers);
    for i in 0..args.servers {
        let mut server = ServerProcess::new(
            args.server_bin.clone(),
            free_loopback_port()?,
            dir,
            &format!("server-{i}"),
            (args.db.clone(), args.bus.clone()),
            history_max,
        );
        server.start().await?;
        let proxy = Proxy::start(heartline_faultproxy::Config::new(server.addr()))
            .await
            .map_err(|e| format!("fault proxy: {e}"))?;
        proxy.refuse_upgrades(args.fallback);
        let url = format!("ws://{}/ws", proxy.listen_addr());
        eprintln!(
            "chaos: server {i} on {} (log {}), proxy {url}",
            server.addr(),
            server.log_path().display()
        );
        servers.push(server);
        proxies.push(proxy);
        urls.push(url);
    }
    let set_mode = |mode: Mode| {
        for proxy in &proxies {
            proxy.set_mode(mode);
        }
    };

    let t0 = Instant::now();
    let mut clients = Vec::with_capacity(args.clients);
    for n in 0..args.clients {
        let name = format!("chaos-{n}");
        // Each client starts on another server.
        let mut mine = urls.clone();
        mine.rotate_left(n % urls.len());
        clients.push(ChaosClient::start(mine, name, &args.room, 0x5eed + n as u64).await?);
    }
    wait_until("every client to open and join", deadline, || {
        clients.iter().all(|c| c.recovered_after(t0).is_some())
    })
    .await?;
    if args.fallback {
        wait_until(
            "every client to fall back to long-polling",
            deadline,
            || {
                clients
                    .iter()
                    .all(|c| c.transport() == Some(Transport::LongPoll))
            },
        )
        .await?;
        eprintln!("chaos: upgrades refused: every client is long-polling");
    }

    // Senders run while the faults happen.
    let every = Duration::from_secs_f64(1.0 / args.rate.max(0.01));
    let senders: Vec<_> = clients
        .iter()
        .cloned()
        .map(|c| {
            let room = args.room.clone();
            let count = args.messages;
            tokio::spawn(async move { c.send_paced(&room, count, every).await })
        })
        .collect();

    let faults = schedule(args.kills, args.cuts, args.stalls);
    let sending_for = every.mul_f64(args.messages as f64);
    let gap = sending_for.div_f64((faults.len() + 1) as f64);
    let mut recovery_kill = Samples::default();
    let mut reopen_kill = Samples::default();
    let mut recovery_cut = Samples::default();
    let mut recovery_stall = Samples::default();
    let mut stall_noticed = Samples::default();
    let sending_started = Instant::now();
    for (i, fault) in faults.iter().enumerate() {
        let due = sending_started + gap.mul_f64((i + 1) as f64);
        tokio::time::sleep_until(due).await;
        if args.fallback && i == faults.len() / 2 {
            for proxy in &proxies {
                proxy.refuse_upgrades(false);
            }
            eprintln!("chaos: upgrades allowed again");
        }
        // Clients whose server a kill takes down; with one server, all.
        let mut hit = vec![true; clients.len()];
        let mut killed_at = Instant::now();
        let back = match fault {
            Fault::Kill => {
                let kills_so_far = faults[..i].iter().filter(|f| **f == Fault::Kill).count();
                let target = kills_so_far % servers.len();
                if servers.len() > 1 {
                    hit = clients
                        .iter()
                        .map(|c| c.endpoint() == urls[target])
                        .collect();
                }
                killed_at = Instant::now();
                servers[target].kill().await?;
                // The outage itself: a dead server for a while, on purpose.
                tokio::time::sleep(Duration::from_millis(args.down_ms)).await;
                servers[target].start().await?
            }
            Fault::Cut => {
                set_mode(Mode::Cut);
                tokio::time::sleep(Duration::from_millis(args.cut_ms)).await;
                set_mode(Mode::Pass);
                Instant::now()
            }
            Fault::Stall => {
                let stalled_at = Instant::now();
                set_mode(Mode::Stall);
                wait_until("every client to notice the stall", deadline, || {
                    clients
                        .iter()
                        .all(|c| c.lost_link_after(stalled_at).is_some())
                })
                .await?;
                for c in &clients {
                    if let Some(at) = c.lost_link_after(stalled_at) {
                        stall_noticed.push(at - stalled_at);
                    }
                }
                set_mode(Mode::Pass);
                Instant::now()
            }
        };
        // A client the kill hit may have failed over before the server
        // came back: its recovery counts from the kill. One it missed only
        // has to get its messages acked.
        let recovered = |n: usize, c: &ChaosClient| match (fault, hit[n]) {
            (Fault::Kill, true) if servers.len() > 1 => c.recovered_after(killed_at),
            (_, true) => c.recovered_after(back),
            (_, false) => c.drained_after(back),
        };
        if let Err(e) = wait_until(
            &format!("recovery from fault {} ({fault:?})", i + 1),
            deadline,
            || {
                clients
                    .iter()
                    .enumerate()
                    .all(|(n, c)| recovered(n, c).is_some())
            },
        )
        .await
        {
            for (n, c) in clients.iter().enumerate() {
                if recovered(n, c).is_none() {
                    eprintln!("chaos: not recovered: {}", c.describe(back));
                }
            }
            return Err(e);
        }
        for (n, c) in clients.iter().enumerate() {
            if !hit[n] {
                continue;
            }
            let Some(done) = recovered(n, c) else {
                continue;
            };
            match fault {
                Fault::Kill => {
                    recovery_kill.push(done - back);
                    if let Some(open) = c
                        .record()
                        .open_edges
                        .iter()
                        .find(|(at, open)| *open && *at >= back)
                    {
                        reopen_kill.push(open.0 - back);
                    }
                }
                Fault::Cut => recovery_cut.push(done - back),
                Fault::Stall => recovery_stall.push(done - back),
            }
        }
        eprintln!(
            "chaos: fault {}/{} {fault:?} recovered",
            i + 1,
            faults.len()
        );
    }

    for sender in senders {
        sender
            .await
            .map_err(|e| format!("a sender task failed: {e}"))?;
    }
    if args.fallback {
        for proxy in &proxies {
            proxy.refuse_upgrades(false);
        }
        wait_until("every client to be back on WebSocket", deadline, || {
            clients
                .iter()
                .all(|c| c.transport() == Some(Transport::WebSocket))
        })
        .await?;
    }
    // Every message acked, by the core's own account.
    let give_up = Instant::now() + deadline;
    loop {
        let mut pending = 0;
        for c in &clients {
            pending += c.unacked().await.len();
        }
        if pending == 0 {
            break;
        }
        if Instant::now() > give_up {
            eprintln!("chaos: {pending} messages still unacked after {deadline:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let stored = checks::read_history(&urls[0], &args.room, deadline).await?;
    wait_until("every client to receive the whole room", deadline, || {
        clients
            .iter()
            .all(|c| c.record().deliveries.len() >= stored.len())
    })
    .await
    .unwrap_or_else(|e| eprintln!("chaos: {e}"));

    let mut reconnects = Vec::new();
    let mut moves = Vec::new();
    for c in &clients {
        reconnects.push((c.name.clone(), c.reconnects().await));
        moves.push((c.name.clone(), c.transport_moves().await));
    }
    let mut unacked = 0;
    for c in &clients {
        unacked += c.unacked().await.len();
    }
    let verdict = checks::verdict(&clients, &stored, args.messages, unacked);
    for c in &clients {
        c.stop();
    }
    for proxy in proxies {
        proxy.shutdown().await;
    }
    for server in &mut servers {
        server.kill().await?;
    }

    let elapsed = started.elapsed().as_secs();
    if args.servers > 1 {
        println!(
            "chaos: cluster of {} servers on {} with bus {}",
            args.servers,
            args.db.as_deref().unwrap_or("?"),
            args.bus.as_deref().unwrap_or("?")
        );
    }
    println!(
        "chaos: clients={} sent={} acked={} stored={} delivered={}/{} lost={} duplicated={} reordered={} kills={} cuts={} stalls={} in {elapsed} s",
        args.clients,
        verdict.sent,
        verdict.acked,
        verdict.stored,
        verdict.delivered,
        verdict.delivered_expected,
        verdict.lost,
        verdict.duplicated,
        verdict.reordered,
        args.kills,
        args.cuts,
        args.stalls,
    );
    let reconnects: Vec<String> = reconnects
        .iter()
        .map(|(name, n)| format!("{name}={n}"))
        .collect();
    println!("chaos: reconnects {}", reconnects.join(" "));
    // Over the fallback, every client must have used both transports.
    let mut transports_ok = true;
    if args.fallback {
        let shown: Vec<String> = moves
            .iter()
            .map(|(name, (down, up))| format!("{name}={down}/{up}"))
            .collect();
        println!(
            "chaos: fallbacks to long-polling / upgrades back to WebSocket {}",
            shown.join(" ")
        );
        for (name, (down, up)) in &moves {
            if *down == 0 || *up == 0 {
                println!("chaos: problem: {name} fell back {down} times and moved back {up} times");
                transports_ok = false;
            }
        }
    }
    println!(
        "chaos: server back -> client open: {}",
        reopen_kill.summary()
    );
    println!(
        "chaos: server back -> open, re-joined, outbox drained: {}",
        recovery_kill.summary()
    );
    println!(
        "chaos: cut restored -> recovered: {}",
        recovery_cut.summary()
    );
    println!(
        "chaos: stall -> noticed (link declared dead): {}",
        stall_noticed.summary()
    );
    println!(
        "chaos: stall restored -> recovered: {}",
        recovery_stall.summary()
    );
    for problem in &verdict.problems {
        println!("chaos: problem: {problem}");
    }
    Ok(verdict.passed() && transports_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_has_every_fault_and_spreads_stalls() {
        let faults = schedule(20, 20, 5);
        assert_eq!(faults.len(), 45);
        assert_eq!(faults.iter().filter(|f| **f == Fault::Kill).count(), 20);
        assert_eq!(faults.iter().filter(|f| **f == Fault::Cut).count(), 20);
        let stalls: Vec<usize> = faults
            .iter()
            .enumerate()
            .filter(|(_, f)| **f == Fault::Stall)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(stalls.len(), 5);
        assert!(stalls.windows(2).all(|w| w[1] - w[0] > 3), "{stalls:?}");
        assert_eq!(schedule(0, 0, 0), Vec::new());
        assert_eq!(schedule(1, 0, 1).len(), 2);
    }
}
