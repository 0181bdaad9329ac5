//! One error type for the whole crate.

use std::time::Duration;

/// What went wrong while starting, driving or stopping the stack or the
/// browser.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A condition did not hold before its deadline.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// The condition waited for.
        what: String,
        /// How long was waited.
        after: Duration,
    },
    /// A child process exited when it should have been running.
    #[error("{what} exited ({status}){log}")]
    Exited {
        /// The process.
        what: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The last lines of its log, with a leading newline, or empty.
        log: String,
    },
    /// A WebDriver command failed.
    #[error("WebDriver: {0}")]
    WebDriver(Box<thirtyfour::error::WebDriverError>),
    /// An HTTP exchange (control API, health check) failed or was refused.
    #[error("HTTP: {0}")]
    Http(String),
    /// Anything else: a malformed ready file, an unexpected answer.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// `what` did not happen within `after`.
    pub fn timeout(what: impl Into<String>, after: Duration) -> Self {
        Error::Timeout {
            what: what.into(),
            after,
        }
    }
}

impl From<thirtyfour::error::WebDriverError> for Error {
    fn from(error: thirtyfour::error::WebDriverError) -> Self {
        Error::WebDriver(Box::new(error))
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
