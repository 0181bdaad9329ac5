//! Several server processes sharing rooms: PostgreSQL holds the history
//! (the source of truth) and Redis, through the [`Bus`], is only the
//! doorbell.
//!
//! - Every message a process commits is published on the bus; the others
//!   hand it to their hub like their own commits ([`StreamSync`]), which
//!   delivers each room in `seq` order and fills any gap from the database.
//! - A process that may have missed bus traffic (the link dropped, Redis
//!   restarted, it read too slowly) re-syncs: it reads every room's stream
//!   position from the database and fills what its members miss. It also
//!   re-syncs every [`RESYNC_PERIOD`], so even with Redis down for good a
//!   message reaches every process within that period.
//! - Presence is the union over the processes: each one sends its members
//!   of a room when they change (once per presence window) and every
//!   heartbeat; a process not heard from for [`Bus::expiry`] is forgotten,
//!   and one that shuts down cleanly says so ([`BusEvent::Gone`]).
//! - Typing events are relayed as they come.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::bus::{Bus, BusEvent, BusNotice};
use crate::chat::Hub;
use crate::store::{ChatStore, Store};
use crate::sync::StreamSync;

/// How often each process compares every room's stream with the database,
/// bus or no bus.
pub const RESYNC_PERIOD: Duration = Duration::from_secs(2);

/// Starts this process's part of the cluster: routes local presence
/// changes to the bus, and spawns the tasks that read the bus, send
/// heartbeats and re-sync, until `shutdown`.
pub(crate) fn spawn(
    bus: &Bus,
    notices: mpsc::Receiver<BusNotice>,
    hub: &Arc<Hub>,
    sync: &Arc<StreamSync>,
    store: &Store,
    shutdown: watch::Receiver<bool>,
) {
    let sink_bus = bus.clone();
    hub.set_presence_sink(Box::new(move |room, names, users| {
        sink_bus.publish(BusEvent::Presence {
            room: room.to_string(),
            names,
            users,
        });
    }));
    tokio::spawn(read_bus(
        notices,
        bus.clone(),
        hub.clone(),
        sync.clone(),
        store.clone(),
    ));
    tokio::spawn(tick(
        bus.clone(),
        hub.clone(),
        sync.clone(),
        store.clone(),
        shutdown,
    ));
}

/// Applies what the other processes say. Ends when the bus goes.
async fn read_bus(
    mut notices: mpsc::Receiver<BusNotice>,
    bus: Bus,
    hub: Arc<Hub>,
    sync: Arc<StreamSync>,
    store: Store,
) {
    while let Some(notice) = notices.recv().await {
        match notice {
            BusNotice::Event { node, event } => match event {
                BusEvent::Chat(msg) => sync.committed(&msg),
                BusEvent::Typing { room, from } => {
                    hub.typing_elsewhere(&room, &from);
                }
                BusEvent::Presence { room, names, users } => {
                    if hub.set_remote_presence(node, &room, names, users) {
                        hub.presence_changed(&room, None);
                    }
                }
                BusEvent::Alive => hub.remote_alive(node),
                BusEvent::Gone => {
                    for room in hub.forget_remote(Some(node), Duration::ZERO) {
                        hub.presence_changed(&room, None);
                    }
                }
            },
            BusNotice::Resubscribed => {
                tracing::info!("bus back: re-syncing rooms and presence");
                send_presence(&bus, &hub);
                resync(&hub, &sync, &store).await;
            }
            BusNotice::Lagged { missed } => {
                tracing::warn!(missed, "bus events missed: re-syncing rooms");
                resync(&hub, &sync, &store).await;
            }
        }
    }
}

/// Heartbeats (this process's presence), expiry of silent processes, and
/// the periodic re-sync.
async fn tick(
    bus: Bus,
    hub: Arc<Hub>,
    sync: Arc<StreamSync>,
    store: Store,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut heartbeat = tokio::time::interval(bus.heartbeat());
    let mut resync_tick = tokio::time::interval(RESYNC_PERIOD);
    for t in [&mut heartbeat, &mut resync_tick] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                send_presence(&bus, &hub);
                for room in hub.forget_remote(None, bus.expiry()) {
                    tracing::info!(room, "presence of a silent process expired");
                    hub.presence_changed(&room, None);
                }
            }
            _ = resync_tick.tick() => resync(&hub, &sync, &store).await,
            // The guard `wait_for` returns is not `Send`: drop it inside.
            () = async { drop(shutdown.wait_for(|down| *down).await) } => return,
        }
    }
}

fn send_presence(bus: &Bus, hub: &Hub) {
    for (room, names, users) in hub.local_presence() {
        bus.publish(BusEvent::Presence { room, names, users });
    }
}

/// Compares every room with the database: rooms made by other processes
/// appear here, and members get whatever they missed.
async fn resync(hub: &Hub, sync: &StreamSync, store: &Store) {
    match store.room_streams().await {
        Ok(streams) => {
            for room in streams {
                hub.add_existing_room(&room.name);
                sync.observed(&room.name, room.epoch, room.last_seq);
            }
        }
        Err(e) => tracing::warn!(error = %e, "re-sync: store failed"),
    }
}
