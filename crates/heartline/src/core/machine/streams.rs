//! Standing subscriptions and the resume of streams.

use super::*;

impl Connection {
    /// Asks again for a stream from its last delivered message, by
    /// re-sending the standing subscription that resumes it.
    pub(super) fn request_resume(&mut self, socket: SocketId, stream: &str) {
        let indexes: Vec<usize> = (0..self.standing.len())
            .filter(|&i| self.standing[i].resume_stream.as_deref() == Some(stream))
            .collect();
        for index in indexes {
            let text = self.standing_frame(index);
            self.write(socket, text);
        }
    }

    pub(super) fn standing_frame(&self, index: usize) -> String {
        let Some(standing) = self.standing.get(index) else {
            return String::new();
        };
        let mut value = standing.value.clone();
        if let (Some(stream), Value::Object(object)) = (&standing.resume_stream, &mut value)
            && let Some(last) = self.streams.last_seq(stream)
        {
            object.insert("since".to_owned(), Value::from(last));
        }
        value.to_string()
    }

    pub(super) fn arm_gap(&mut self) {
        match self
            .streams
            .next_gap_deadline(self.config.stream_gap_timeout)
        {
            Some(at) => self.set_timer(TimerKind::StreamGap, at),
            None => self.cancel_timer(TimerKind::StreamGap),
        }
    }
}
