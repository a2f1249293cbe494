//! Backends and their health, and the choice of a backend for a session:
//! least connections among the healthy ones.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sc_net::Endpoint;

/// One backend, shared by every route (of every listener) that names it.
#[derive(Debug)]
pub(crate) struct Backend {
    pub(crate) endpoint: Endpoint,
    /// Sessions relayed to it now.
    active: AtomicUsize,
    /// Up until a connect or a probe fails; down until a probe (or a
    /// last-resort connect) succeeds.
    healthy: AtomicBool,
}

impl Backend {
    pub(crate) fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            active: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
        }
    }

    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Marks it down; `true` if it was up (the caller logs the change).
    pub(crate) fn mark_down(&self) -> bool {
        self.healthy.swap(false, Ordering::Relaxed)
    }

    /// Marks it up; `true` if it was down.
    pub(crate) fn mark_up(&self) -> bool {
        !self.healthy.swap(true, Ordering::Relaxed)
    }
}

/// A session's claim on a backend: counted in its `active` until dropped.
#[derive(Debug)]
pub(crate) struct Claim(Arc<Backend>);

impl Claim {
    pub(crate) fn backend(&self) -> &Arc<Backend> {
        &self.0
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The backends of one route (or of a listener's default).
#[derive(Debug)]
pub(crate) struct Pool {
    backends: Vec<Arc<Backend>>,
    /// Where the next tie-break starts (so equal loads take turns), behind
    /// a lock so that concurrent choices see each other's claims.
    turn: Mutex<usize>,
}

impl Pool {
    pub(crate) fn new(backends: Vec<Arc<Backend>>) -> Self {
        Self {
            backends,
            turn: Mutex::new(0),
        }
    }

    #[cfg(test)]
    pub(crate) fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    /// Claims the backend for the next attempt, skipping those in `tried`:
    /// the healthy one with the fewest sessions (ties take turns). When no
    /// backend of the pool is healthy any more, an untried down one is the
    /// last resort (its connect then serves as a probe). `None`: every
    /// candidate was tried.
    pub(crate) fn claim(&self, tried: &[Arc<Backend>]) -> Option<Claim> {
        let mut turn = match self.turn.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        let n = self.backends.len();
        let untried = |b: &&Arc<Backend>| !tried.iter().any(|t| Arc::ptr_eq(t, b));
        let any_healthy = self.backends.iter().any(|b| b.is_healthy());
        let pick = (0..n)
            .map(|i| &self.backends[(*turn + i) % n])
            .filter(untried)
            .filter(|b| !any_healthy || b.is_healthy())
            .min_by_key(|b| b.active())?
            .clone();
        *turn = (*turn + 1) % n.max(1);
        pick.active.fetch_add(1, Ordering::Relaxed);
        Some(Claim(pick))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize) -> Pool {
        Pool::new(
            (0..n)
                .map(|i| {
                    Arc::new(Backend::new(Endpoint::Tcp(format!(
                        "127.0.0.1:{}",
                        7000 + i
                    ))))
                })
                .collect(),
        )
    }

    #[test]
    fn least_connections_spreads_evenly_and_ties_take_turns() {
        let p = pool(3);
        let claims: Vec<Claim> = (0..30).map(|_| p.claim(&[]).expect("claim")).collect();
        for b in p.backends() {
            assert_eq!(b.active(), 10);
        }
        drop(claims);
        for b in p.backends() {
            assert_eq!(b.active(), 0);
        }
        // Short sessions one after another go round.
        let mut seen = Vec::new();
        for _ in 0..3 {
            let c = p.claim(&[]).expect("claim");
            seen.push(c.backend().endpoint.clone());
        }
        seen.dedup();
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn a_loaded_backend_gets_the_next_sessions_last() {
        let p = pool(2);
        // Load backend 0 with five sessions.
        let first = Arc::clone(&p.backends()[0]);
        first.active.fetch_add(5, Ordering::Relaxed);
        for _ in 0..5 {
            let c = p.claim(&[]).expect("claim");
            assert_eq!(c.backend().endpoint, p.backends()[1].endpoint);
            std::mem::forget(c);
        }
        // 5 and 5: a tie again.
        assert_eq!(p.backends()[1].active(), 5);
    }

    #[test]
    fn down_backends_are_skipped_until_every_one_is_down() {
        let p = pool(2);
        p.backends()[0].mark_down();
        for _ in 0..4 {
            let c = p.claim(&[]).expect("claim");
            assert_eq!(c.backend().endpoint, p.backends()[1].endpoint);
        }
        // The one tried is skipped; the down one is not used while another is up.
        let tried = vec![p.backends()[1].clone()];
        assert!(p.claim(&tried).is_none());
        // Every one down: the down ones are the last resort, each once.
        p.backends()[1].mark_down();
        let c = p.claim(&tried).expect("last resort");
        assert_eq!(c.backend().endpoint, p.backends()[0].endpoint);
        let all = vec![p.backends()[0].clone(), p.backends()[1].clone()];
        assert!(p.claim(&all).is_none());
        assert!(p.backends()[0].mark_up());
        assert!(!p.backends()[0].mark_up());
    }
}
