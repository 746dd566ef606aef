//! Which of its cluster's servers the agent talks to, and when it moves on to another.
//!
//! An agent may be given every server of its cluster (`--server`, repeated or comma-separated).
//! They are one Raft group with replicated state: the agent's credential is known to all of
//! them and a follower forwards writes to the leader itself, so any server will do. The agent
//! stays with one until a call to it fails in a way another server could fix, then moves on to
//! the next in the list, round-robin:
//!
//! ```text
//!   current ── a call fails transiently (unreachable, timeout, 5xx, 429) ──► the next server,
//!      ▲                                                                     tried at once
//!      └── it answers: stay there ◄── every server failed once: the caller backs off, again
//! ```
//! Every call of the agent (supervisors' reports, the poll) shares one [`Endpoints`], so the
//! first call to find a server gone moves everyone on, and a call that failed on a server the
//! others have already left does not move them again. This module only decides;
//! `crate::client` does the I/O.

/// A server URL the agent was given is not one it can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointsError {
    /// No server was given.
    #[error("no server given: name at least one, e.g. --server http://127.0.0.1:8642")]
    Empty,
    /// Not an `http://host:port` or `https://host:port` URL.
    #[error("'{url}' is not a server URL ({why}); expected http://HOST:PORT or https://HOST:PORT")]
    Malformed { url: String, why: String },
}

/// Checks one server URL and returns it without a trailing slash.
pub fn parse_server(url: &str) -> Result<String, EndpointsError> {
    let trimmed = url.trim();
    let malformed = |why: &str| EndpointsError::Malformed {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    if trimmed.is_empty() {
        return Err(malformed("it is empty"));
    }
    let uri: hyper::Uri =
        trimmed.parse().map_err(
            |e: hyper::http::uri::InvalidUri| EndpointsError::Malformed {
                url: url.to_owned(),
                why: e.to_string(),
            },
        )?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(malformed(&format!("the scheme is {other}, not http(s)"))),
        None => return Err(malformed("it has no http:// or https://")),
    }
    match uri.authority() {
        Some(a) if !a.host().is_empty() => {}
        _ => return Err(malformed("it names no host")),
    }
    if uri.query().is_some() || !matches!(uri.path(), "" | "/") {
        return Err(malformed("a server URL has no path or query"));
    }
    Ok(trimmed.trim_end_matches('/').to_owned())
}

/// The servers an agent may talk to, and the one it talks to now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    urls: Vec<String>,
    current: usize,
}

/// What to do after a call to one server failed transiently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failover {
    /// The failed server was the current one: the agent moves on to `to` (and says so, once).
    Switched { from: usize, to: usize },
    /// Another call has already moved on from the failed server: try the current one, `to`.
    AlreadyMoved { to: usize },
    /// There is no other server to try.
    Alone,
}

impl Endpoints {
    /// The servers in the order given (each once), starting with the first.
    pub fn new<S: AsRef<str>>(urls: &[S]) -> Result<Endpoints, EndpointsError> {
        let mut out: Vec<String> = Vec::with_capacity(urls.len());
        for url in urls {
            let url = parse_server(url.as_ref())?;
            if !out.contains(&url) {
                out.push(url);
            }
        }
        if out.is_empty() {
            return Err(EndpointsError::Empty);
        }
        Ok(Endpoints {
            urls: out,
            current: 0,
        })
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    pub fn len(&self) -> usize {
        self.urls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// The server calls go to now.
    pub fn current(&self) -> usize {
        self.current
    }

    pub fn url(&self, index: usize) -> &str {
        &self.urls[index % self.urls.len()]
    }

    /// A call to server `at` failed transiently. Moves on to the next server only if `at` is
    /// still the current one, so that calls failing together on one server move the agent
    /// once, not once each.
    pub fn failed(&mut self, at: usize) -> Failover {
        if self.urls.len() == 1 {
            return Failover::Alone;
        }
        if at != self.current {
            return Failover::AlreadyMoved { to: self.current };
        }
        let from = self.current;
        self.current = (from + 1) % self.urls.len();
        Failover::Switched {
            from,
            to: self.current,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Endpoints {
        Endpoints::new(&["http://a:1", "http://b:2", "https://c:3/"]).unwrap()
    }

    #[test]
    fn starts_with_the_first_and_goes_round_the_list() {
        let mut e = three();
        assert_eq!(e.current(), 0);
        assert_eq!(e.failed(0), Failover::Switched { from: 0, to: 1 });
        assert_eq!(e.failed(1), Failover::Switched { from: 1, to: 2 });
        assert_eq!(e.url(e.current()), "https://c:3");
        assert_eq!(e.failed(2), Failover::Switched { from: 2, to: 0 });
        assert_eq!(e.current(), 0);
    }

    #[test]
    fn calls_failing_together_on_one_server_move_the_agent_once() {
        let mut e = three();
        // The poll and two reports were all in flight to server 0 when it went away.
        assert_eq!(e.failed(0), Failover::Switched { from: 0, to: 1 });
        assert_eq!(e.failed(0), Failover::AlreadyMoved { to: 1 });
        assert_eq!(e.failed(0), Failover::AlreadyMoved { to: 1 });
        assert_eq!(e.current(), 1);
        // A late failure from a server the agent left long ago does not move it either.
        assert_eq!(e.failed(1), Failover::Switched { from: 1, to: 2 });
        assert_eq!(e.failed(0), Failover::AlreadyMoved { to: 2 });
        assert_eq!(e.current(), 2);
    }

    #[test]
    fn a_single_server_is_never_left() {
        let mut e = Endpoints::new(&["http://127.0.0.1:8642"]).unwrap();
        assert_eq!(e.failed(0), Failover::Alone);
        assert_eq!(e.current(), 0);
    }

    #[test]
    fn the_list_keeps_its_order_without_repeats() {
        let e = Endpoints::new(&["http://b:2/", " http://a:1", "http://b:2"]).unwrap();
        assert_eq!(e.urls(), ["http://b:2", "http://a:1"]);
    }

    #[test]
    fn an_empty_list_or_a_malformed_url_is_refused_with_a_reason() {
        assert_eq!(
            Endpoints::new::<&str>(&[]).unwrap_err(),
            EndpointsError::Empty
        );
        for (url, why) in [
            ("", "empty"),
            ("127.0.0.1:8642", "no http"),
            ("localhost", "no http"),
            ("ftp://a:1", "scheme is ftp"),
            ("http://", ""),
            ("http://a:1/v1", "no path"),
            ("http://a:1/?x=1", "no path or query"),
            ("http://a b:1", ""),
        ] {
            let err = Endpoints::new(&["http://ok:1", url]).unwrap_err();
            let EndpointsError::Malformed { url: named, .. } = &err else {
                panic!("{url:?}: {err:?}");
            };
            assert_eq!(named, url);
            let message = err.to_string();
            assert!(message.contains(why), "{url:?}: {message}");
            assert!(message.contains("expected http://HOST:PORT"), "{message}");
        }
    }
}
