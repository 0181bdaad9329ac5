//! # The wire contract (v2)
//!
//! Everything the socket layer relies on from a server, written once. The
//! demo server (`heartline-server`) follows it; any other server must too.
//! Frames are JSON text objects tagged by a string `socketType`; the core
//! reads only the fields named here and passes every message on whole.
//!
//! ## Heartbeat: `ping` / `pong` with `t`
//!
//! The client sends `{"socketType":"ping","t":<ms>}` after
//! [`HeartbeatConfig::interval`](super::HeartbeatConfig::interval) of silence.
//! The server answers `{"socketType":"pong","t":<same>}`, echoing `t`
//! exactly (as an integer or the same number as a float). A pong is matched
//! to the outstanding ping by `t`: only the matching one gives a round-trip
//! sample; a stale or unsolicited pong proves the link alive and nothing
//! more. A server `ping` is answered with a `pong` echoing its `t`. Any
//! inbound frame counts as life; a link silent for `interval + timeout`
//! (10 s + 4 s by default) is closed with 4000 and reconnected.
//!
//! ## Acks and refusals: `id` on any message
//!
//! Any client frame may carry `"id"` (a string, 1-128 bytes, no control
//! characters). [`Connection::send`](super::Connection::send) sets it on
//! every reliable message, whatever its type. The server answers every
//! frame that carries an id exactly once per receipt:
//!
//! - `{"socketType":"ack","id"}` once handled (for a duplicate id too,
//!   without handling it twice): the message leaves the outbox
//!   ([`DeliveryState::Acked`](super::DeliveryState::Acked));
//! - or `{"socketType":"error","code","message","id"}` when refused. Codes:
//!   `invalid_field`, `unknown_type`, `not_welcomed`, `limit_reached`,
//!   `internal` are final: the message fails
//!   ([`MessageFailure::Refused`](super::MessageFailure::Refused)) and is
//!   never re-sent;
//! - `rate_limited` (below) is not final.
//!
//! An `error` is handled by the core and also delivered to handlers.
//!
//! ## Flow control: the client's window, the server's limits
//!
//! | Client (this core) | Server |
//! |---|---|
//! | [`Config::send_window`](super::Config::send_window) = 32: reliable messages written and unacked on the live socket; an ack (or a final refusal) lets the next one go | `limits` first on every connection: `{"socketType":"limits","rate":R,"burst":B,"max_frame_bytes":M}`; defaults R = 50 frames/s, B = 100 |
//! | After `limits`, every frame written is paced under a bucket of 80% of R and half of B (pings, pongs and the greeting always go, and count) | A per-connection token bucket of R/s and B; each frame takes a token |
//! | A volatile send over the pace is refused: [`SendError::RateLimited`](super::SendError::RateLimited) | A frame without a token is refused: `{"socketType":"error","code":"rate_limited","message","id"?,"retry_after_ms"}`, not handled |
//! | `rate_limited` naming an outbox id: that message goes back to `Queued`, the outbox writes nothing for `retry_after_ms` ([`TimerKind::Pace`](super::TimerKind::Pace)), then re-sends in order | `retry_after_ms` >= 1 is the wait until a token is back |
//! | Frames are never larger than M (nor [`Config::max_frame_bytes`](super::Config::max_frame_bytes)) | Larger frames are refused |
//! | The window (32) sits well under B: a client that keeps it never trips the close | Closes with 4002 only after more than B refusals in a row |
//!
//! So an outbox of 500 messages drains at the paced rate with no refusal.
//!
//! ## Streams: `stream`, `seq`, `epoch`
//!
//! A message of a resumable stream carries `stream` (a string key, a room
//! name for chat), `seq` (an integer from 1, without gaps within one epoch)
//! and `epoch` (an integer in [1, 2^53) chosen when the stream's history
//! starts, again after a wipe). The core delivers each `(epoch, seq)` once
//! and in order, holding out-of-order messages until the gap fills
//! ([`Config::stream_gap_timeout`](super::Config::stream_gap_timeout)).
//! A standing subscription that resumes a stream is re-sent with `since`
//! (the last `seq` delivered) and `epoch` (the epoch it belongs to). When
//! the stream's epoch differs, the server ignores `since` and sends the
//! history from seq 1. Any inbound with `stream` and an `epoch` other than
//! the one known for it (a message, or a `joined` without `seq`) resets the
//! stream's position: held messages of the old epoch are dropped
//! ([`Report::EpochChanged`](super::Report::EpochChanged)) and every message
//! of the new epoch is kept.
//!
//! ## Close codes
//!
//! | Code | Meaning | Client |
//! |---|---|---|
//! | 1000 | normal close | reconnects unless the app stopped it |
//! | 4000 | heartbeat lost (sent by the client) | reconnects |
//! | 4001 | auth refused | final ([`FailureReason::AuthRefused`](super::FailureReason::AuthRefused)) |
//! | 4002 | rate limited (too many refusals in a row) | reconnects |
//! | 4003 | protocol error | final ([`FailureReason::ProtocolError`](super::FailureReason::ProtocolError)) |
//! | 4004 | try again later | reconnects |
//! | 4005 | idle timeout | reconnects |
//!
//! Final codes are [`Config::final_close_codes`](super::Config::final_close_codes).
//!
//! ```
//! // The contract as the core sees it: an ack for a non-chat message.
//! use heartline::core::*;
//! use serde_json::json;
//! let mut conn = Connection::new(Config::default(), 1);
//! let Some(Action::Open { socket, .. }) = conn.handle(0, Event::Start).first().cloned() else { panic!() };
//! conn.handle(1, Event::Opened { socket });
//! let id = conn.send(2, json!({"socketType":"metrics.subscribe"}), SendOptions::default()).unwrap();
//! let ack = format!(r#"{{"socketType":"ack","id":"{id}"}}"#);
//! conn.handle(3, Event::Frame { socket, data: FrameData::Text(ack) });
//! assert!(conn.outbox_ids().is_empty());
//! ```
