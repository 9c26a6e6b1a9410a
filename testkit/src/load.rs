//! Load of the tests' own: clients that ping pingpong over real HTTP until
//! stopped, recording every number answered (with when) and every refusal
//! (with its reason), so that a test checks that no number was answered
//! twice across whatever it did meanwhile.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// What the clients of a load saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Every number acknowledged with `pong N`, and when.
    answers: Mutex<Vec<(Instant, u64)>>,
    /// 503s, by their one-line reason.
    reasons: Mutex<HashMap<String, usize>>,
    /// 503s.
    pub refused: AtomicUsize,
    /// Requests that got no answer (a killed process).
    pub failed: AtomicUsize,
}

impl Seen {
    /// Every number acknowledged, in the order the clients saw them.
    ///
    /// # Panics
    /// A client panicked holding the lock.
    #[must_use]
    pub fn acked(&self) -> Vec<u64> {
        self.answers.lock().unwrap().iter().map(|&(_, n)| n).collect()
    }

    /// The first answer at or after `since`, if any.
    ///
    /// # Panics
    /// As [`Seen::acked`].
    #[must_use]
    pub fn first_answer_since(&self, since: Instant) -> Option<Instant> {
        self.answers.lock().unwrap().iter().map(|&(at, _)| at).filter(|&at| at >= since).min()
    }

    /// The numbers acknowledged more than once, each with how often.
    ///
    /// # Panics
    /// As [`Seen::acked`].
    #[must_use]
    pub fn repeats(&self) -> Vec<(u64, usize)> {
        let mut times: HashMap<u64, usize> = HashMap::new();
        for n in self.acked() {
            *times.entry(n).or_default() += 1;
        }
        let mut repeated: Vec<_> = times.into_iter().filter(|&(_, k)| k > 1).collect();
        repeated.sort_unstable();
        repeated
    }

    /// No number acknowledged twice; returns how many were.
    ///
    /// # Panics
    /// A number was acknowledged twice.
    pub fn assert_distinct(&self) -> usize {
        let repeats = self.repeats();
        assert!(
            repeats.is_empty(),
            "{} numbers were acknowledged twice: {:?}…",
            repeats.len(),
            &repeats[..repeats.len().min(10)]
        );
        self.answers.lock().unwrap().len()
    }

    /// The refusals' reasons, with how many of each.
    ///
    /// # Panics
    /// As [`Seen::acked`].
    #[must_use]
    pub fn reasons(&self) -> HashMap<String, usize> {
        self.reasons.lock().unwrap().clone()
    }
}

/// `connections` clients pinging `urls` (round robin; the list may change
/// while they run).
#[derive(Debug)]
pub struct Load {
    /// What they saw so far.
    pub seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts the clients (call within a runtime). Each request is bounded
    /// by 10 s, so that a hang shows as a failure.
    #[must_use]
    pub fn start(connections: usize, urls: Arc<RwLock<Vec<String>>>) -> Self {
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..connections)
            .map(|i| {
                let (urls, seen, stop) = (urls.clone(), seen.clone(), stop.clone());
                tokio::spawn(async move { client(i, &urls, &seen, &stop).await })
            })
            .collect();
        Self { seen, stop, clients }
    }

    /// Stops the clients and waits for them.
    ///
    /// # Panics
    /// A client panicked (a ping hung, or an answer was neither a pong nor a 503).
    pub async fn stop(self) -> Arc<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            client.await.unwrap();
        }
        self.seen
    }

    /// Waits until `by` more pings have been acknowledged.
    pub async fn grows(&self, by: usize) {
        let target = self.seen.acked().len() + by;
        crate::eventually("pings to be acknowledged", || async { (self.seen.acked().len() >= target).then_some(()) })
            .await;
    }
}

async fn client(i: usize, urls: &RwLock<Vec<String>>, seen: &Seen, stop: &AtomicBool) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut k = i;
    while !stop.load(Ordering::Relaxed) {
        let url = {
            let urls = urls.read().unwrap();
            format!("{}/pingpong", urls[k % urls.len()])
        };
        k += 1;
        match client.get(&url).send().await {
            Ok(response) if response.status() == 200 => {
                let body = response.text().await.unwrap_or_default();
                let n = body.strip_prefix("pong ").and_then(|n| n.parse().ok());
                let n = n.unwrap_or_else(|| panic!("not a pong: {body:?}"));
                seen.answers.lock().unwrap().push((Instant::now(), n));
            }
            Ok(response) => {
                assert_eq!(response.status(), 503, "only 503 refuses a ping");
                seen.refused.fetch_add(1, Ordering::Relaxed);
                let body = response.text().await.unwrap_or_default();
                // The reason without the numbers and times that vary.
                let reason: String = body.trim().chars().take(160).collect();
                *seen.reasons.lock().unwrap().entry(reason).or_default() += 1;
                // A refusal is fast; do not spin on it.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => {
                assert!(!e.is_timeout(), "a ping hung for 10 s: {e}");
                seen.failed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}
