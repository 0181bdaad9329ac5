use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use yew::prelude::*;
use yew_hooks::use_local_storage;

const LAST_READ_KEY: &str = "heartline.last_read";

/// Where the reader got to in one room: the epoch and the highest `seq` seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadMark {
    /// The room's stream epoch the mark belongs to.
    pub epoch: u64,
    /// Highest `seq` shown to the reader.
    pub seq: u64,
}

impl ReadMark {
    /// Messages after this mark in a room now at `last_seq` of `epoch`. A new
    /// epoch means a new history: all of it is unread.
    ///
    /// ```
    /// use heartline_app::hooks::use_last_read::ReadMark;
    /// let mark = ReadMark { epoch: 7, seq: 10 };
    /// assert_eq!(mark.unread(7, 14), 4);
    /// assert_eq!(mark.unread(7, 9), 0);
    /// assert_eq!(mark.unread(8, 3), 3);
    /// ```
    pub fn unread(&self, epoch: u64, last_seq: u64) -> u64 {
        if epoch == self.epoch {
            last_seq.saturating_sub(self.seq)
        } else {
            last_seq
        }
    }
}

/// Read marks per room, kept in localStorage.
#[derive(Clone, PartialEq)]
pub struct LastReadHandle {
    stored: yew_hooks::UseLocalStorageHandle<BTreeMap<String, ReadMark>>,
}

impl LastReadHandle {
    /// The mark of `room`, if it was ever opened here.
    pub fn get(&self, room: &str) -> Option<ReadMark> {
        (*self.stored)
            .as_ref()
            .and_then(|marks| marks.get(room).copied())
    }

    /// Moves the mark of `room` forward to `seq` of `epoch` (never back
    /// within one epoch).
    pub fn mark(&self, room: &str, epoch: u64, seq: u64) {
        let mut marks = (*self.stored).clone().unwrap_or_default();
        let mark = marks.entry(room.to_owned()).or_default();
        if mark.epoch == epoch && mark.seq >= seq {
            return;
        }
        *mark = ReadMark { epoch, seq };
        self.stored.set(marks);
    }
}

/// Read marks per room, for unread counts.
#[hook]
pub fn use_last_read() -> LastReadHandle {
    LastReadHandle {
        stored: use_local_storage::<BTreeMap<String, ReadMark>>(LAST_READ_KEY.to_owned()),
    }
}

impl std::fmt::Debug for LastReadHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LastReadHandle")
            .field("stored", &*self.stored)
            .finish()
    }
}
