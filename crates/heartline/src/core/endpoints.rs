//! The servers a connection may use, in order, and which one is in use.

use std::fmt;

/// An ordered list of socket URLs and the index of the one in use: the
/// servers of one deployment (sharing rooms and identities) that a
/// [`Connection`](super::Connection) fails over between.
///
/// The failover policy, kept by the connection:
/// - every attempt opens the current URL, starting with the first;
/// - the connection stays on a URL while it works;
/// - after a failed attempt (refused, errored, timed out) or a lost link
///   that is followed by a reconnect, it moves to the next URL, round
///   robin. Not after the app stops it, the browser goes offline, or a
///   final close code (the server that said it is asked again on a manual
///   retry);
/// - the backoff is not reset by a move: attempts through the whole list
///   count as one run of failures (and towards `max_retries`), so a
///   deployment whose servers are all down is retried no faster than one
///   server would be. A healthy link resets it as before;
/// - a URL that worked before is chosen again only when the rotation comes
///   back to it: there is no preferred server and no health memory;
/// - after every move the session is replayed as after any reconnect:
///   greeting, standing subscriptions with `since`, then the outbox, whose
///   ids let the servers' de-duplication count each message once.
///
/// The list is kept as given (order and duplicates). An empty list means
/// the driver keeps the URL itself (the core then names none).
///
/// ```
/// use heartline::core::Endpoints;
/// let endpoints = Endpoints::new(["ws://a/ws", "ws://b/ws"]);
/// assert_eq!(endpoints.current(), Some("ws://a/ws"));
/// assert_eq!(endpoints.len(), 2);
/// assert_eq!(Endpoints::from("ws://only/ws").urls(), ["ws://only/ws"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Endpoints {
    urls: Vec<String>,
    current: usize,
}

impl Endpoints {
    /// A list starting at its first URL.
    ///
    /// ```
    /// use heartline::core::Endpoints;
    /// let endpoints = Endpoints::new(vec!["ws://a/ws".to_owned()]);
    /// assert_eq!(endpoints.index(), 0);
    /// assert!(Endpoints::new(Vec::<String>::new()).is_empty());
    /// ```
    pub fn new<I, S>(urls: I) -> Endpoints
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Endpoints {
            urls: urls.into_iter().map(Into::into).collect(),
            current: 0,
        }
    }

    /// Parses a comma-separated list (as in a `?ws=` parameter, a `<meta>`
    /// tag or an environment variable): entries are trimmed and empty ones
    /// skipped.
    ///
    /// ```
    /// use heartline::core::Endpoints;
    /// let endpoints = Endpoints::parse(" wss://a.example/ws, ,wss://b.example/ws ,");
    /// assert_eq!(endpoints.urls(), ["wss://a.example/ws", "wss://b.example/ws"]);
    /// assert!(Endpoints::parse(" , ").is_empty());
    /// ```
    pub fn parse(list: &str) -> Endpoints {
        Endpoints::new(list.split(',').map(str::trim).filter(|url| !url.is_empty()))
    }

    /// Every URL, in rotation order.
    ///
    /// ```
    /// use heartline::core::Endpoints;
    /// assert_eq!(Endpoints::new(["ws://a/ws", "ws://b/ws"]).urls()[1], "ws://b/ws");
    /// ```
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The URL in use (or the next attempt's); `None` for an empty list.
    ///
    /// ```
    /// use heartline::core::Endpoints;
    /// assert_eq!(Endpoints::default().current(), None);
    /// assert_eq!(Endpoints::from("ws://a/ws").current(), Some("ws://a/ws"));
    /// ```
    pub fn current(&self) -> Option<&str> {
        self.urls.get(self.current).map(String::as_str)
    }

    /// The position of [`current`](Self::current) in the list, from 0.
    ///
    /// ```
    /// use heartline::core::Endpoints;
    /// assert_eq!(Endpoints::from("ws://a/ws").index(), 0);
    /// ```
    pub fn index(&self) -> usize {
        self.current
    }

    /// How many URLs there are.
    ///
    /// ```
    /// use heartline::core::Endpoints;
    /// assert_eq!(Endpoints::parse("ws://a/ws,ws://b/ws").len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.urls.len()
    }

    /// True for an empty list.
    ///
    /// ```
    /// use heartline::core::Endpoints;
    /// assert!(Endpoints::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// Moves to the next URL, round robin; true when that changed the URL
    /// in use (never with fewer than two).
    pub(crate) fn advance(&mut self) -> bool {
        if self.urls.len() < 2 {
            return false;
        }
        let before = self.current;
        self.current = (self.current + 1) % self.urls.len();
        self.urls[before] != self.urls[self.current]
    }

    /// Points at `url` if the list holds it; false (unchanged) otherwise.
    pub(crate) fn select(&mut self, url: &str) -> bool {
        match self.urls.iter().position(|u| u == url) {
            Some(index) => {
                self.current = index;
                true
            }
            None => false,
        }
    }
}

impl fmt::Display for Endpoints {
    /// The list, comma-separated (the format [`Endpoints::parse`] reads).
    ///
    /// ```
    /// use heartline::core::Endpoints;
    /// let list = "ws://a/ws,ws://b/ws";
    /// assert_eq!(Endpoints::parse(list).to_string(), list);
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.urls.join(","))
    }
}

impl From<&str> for Endpoints {
    /// One URL, taken as it is (not split at commas).
    ///
    /// ```
    /// use heartline::core::Endpoints;
    /// assert_eq!(Endpoints::from("ws://a/ws").len(), 1);
    /// ```
    fn from(url: &str) -> Endpoints {
        Endpoints::new([url])
    }
}

impl From<String> for Endpoints {
    /// One URL, taken as it is.
    ///
    /// ```
    /// use heartline::core::Endpoints;
    /// assert_eq!(Endpoints::from(String::from("ws://a/ws")).len(), 1);
    /// ```
    fn from(url: String) -> Endpoints {
        Endpoints::new([url])
    }
}

impl From<&String> for Endpoints {
    /// One URL, taken as it is.
    ///
    /// ```
    /// use heartline::core::Endpoints;
    /// let url = String::from("ws://a/ws");
    /// assert_eq!(Endpoints::from(&url).current(), Some("ws://a/ws"));
    /// ```
    fn from(url: &String) -> Endpoints {
        Endpoints::new([url.as_str()])
    }
}

impl From<Vec<String>> for Endpoints {
    /// The URLs in order.
    ///
    /// ```
    /// use heartline::core::Endpoints;
    /// assert_eq!(Endpoints::from(vec!["ws://a/ws".to_owned(), "ws://b/ws".to_owned()]).len(), 2);
    /// ```
    fn from(urls: Vec<String>) -> Endpoints {
        Endpoints::new(urls)
    }
}

impl From<Vec<&str>> for Endpoints {
    /// The URLs in order.
    ///
    /// ```
    /// use heartline::core::Endpoints;
    /// assert_eq!(Endpoints::from(vec!["ws://a/ws", "ws://b/ws"]).len(), 2);
    /// ```
    fn from(urls: Vec<&str>) -> Endpoints {
        Endpoints::new(urls)
    }
}

impl From<&[String]> for Endpoints {
    /// The URLs in order.
    ///
    /// ```
    /// use heartline::core::Endpoints;
    /// let urls = vec!["ws://a/ws".to_owned(), "ws://b/ws".to_owned()];
    /// assert_eq!(Endpoints::from(urls.as_slice()).len(), 2);
    /// ```
    fn from(urls: &[String]) -> Endpoints {
        Endpoints::new(urls.iter().map(String::as_str))
    }
}

impl From<&[&str]> for Endpoints {
    /// The URLs in order.
    ///
    /// ```
    /// use heartline::core::Endpoints;
    /// let urls: &[&str] = &["ws://a/ws", "ws://b/ws"];
    /// assert_eq!(Endpoints::from(urls).len(), 2);
    /// ```
    fn from(urls: &[&str]) -> Endpoints {
        Endpoints::new(urls.iter().copied())
    }
}

impl<const N: usize> From<[&str; N]> for Endpoints {
    /// The URLs in order.
    ///
    /// ```
    /// use heartline::core::Endpoints;
    /// assert_eq!(Endpoints::from(["ws://a/ws", "ws://b/ws"]).len(), 2);
    /// ```
    fn from(urls: [&str; N]) -> Endpoints {
        Endpoints::new(urls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_goes_round_and_stays_put_with_one_url() {
        let mut one = Endpoints::from("ws://a/ws");
        assert!(!one.advance());
        assert_eq!(one.index(), 0);

        let mut three = Endpoints::new(["a", "b", "c"]);
        let seen: Vec<usize> = (0..6)
            .map(|_| {
                assert!(three.advance());
                three.index()
            })
            .collect();
        assert_eq!(seen, [1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn a_repeated_url_is_not_a_move() {
        let mut twice = Endpoints::new(["a", "a"]);
        assert!(!twice.advance());
        assert_eq!(twice.index(), 1);
    }

    #[test]
    fn select_finds_a_url_or_leaves_the_index() {
        let mut endpoints = Endpoints::new(["a", "b"]);
        assert!(endpoints.select("b"));
        assert_eq!(endpoints.index(), 1);
        assert!(!endpoints.select("z"));
        assert_eq!(endpoints.index(), 1);
    }
}
