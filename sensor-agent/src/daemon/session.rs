//! The link's bookkeeping of one MQTT session, without I/O: which outbox events are in flight,
//! which packet id carries which, when each is due again and what a PUBACK or a commit receipt
//! means for it. The [`publisher`](super::publisher) feeds it what happened (with the time) and
//! does what it answers: publish, acknowledge or reject in the outbox, count and log. So every
//! rule of delivery (the window, the doubling backoff, the probe while everything waits, the
//! quick retry after a 0x10, a receipt for other bytes ignored, backoffs reset when the server
//! commits again) is tested here with a clock the tests hold.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use protocol::{Outcome, ReceiptItem};

/// Most events sent and not yet confirmed at a time.
pub const WINDOW: usize = 256;

/// Longest wait between two sends of an event without a receipt.
pub const MAX_RESEND_INTERVAL: Duration = Duration::from_secs(300);

/// First wait before an event the broker could not route (0x10) goes again.
pub const UNROUTED_RETRY: Duration = Duration::from_secs(2);

/// `base` doubled per attempt, up to [`MAX_RESEND_INTERVAL`].
#[must_use]
pub fn doubling(base: Duration, attempts: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(attempts.min(16)))
        .min(MAX_RESEND_INTERVAL)
}

/// What the broker answered to a QoS 1 publish, as far as delivery is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerAck {
    /// Accepted.
    Success,
    /// 0x10: no subscriber, the broker discarded it (the server's session is gone).
    NoSubscribers,
    /// Any other refusal (reason code ≥ 0x80).
    Refused,
}

/// What a PUBACK meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acked {
    /// Not an outbox event's (a status publish), or one forgotten since.
    Other,
    /// The broker took outbox event `seq`.
    Event(u64),
    /// The broker discarded or refused event `seq`: it is due again soon.
    Bounced(u64, BrokerAck),
}

/// What one receipt item means for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Stored (or already stored): acknowledge `seq` in the outbox.
    Committed(u64),
    /// The server will take it later (the reason says why): kept, due again after a timeout.
    Deferred(u64, String),
    /// Refused for good (how, and why): move `seq` to the outbox's rejected events.
    Rejected(u64, Outcome, String),
    /// The digest is not that of our bytes: another client published under our event id.
    OtherBytes(uuid::Uuid, Outcome),
}

/// An event sent in this session and not yet confirmed.
#[derive(Debug)]
struct Flight {
    event_id: uuid::Uuid,
    sha256: String,
    due: Instant,
    attempts: u32,
}

/// What the link knows of the events it has sent in one session.
#[derive(Debug)]
pub struct Session {
    /// Publishes handed to the client, in order: `Some(seq)` for outbox events.
    requested: VecDeque<Option<u64>>,
    by_pkid: HashMap<u16, u64>,
    flights: BTreeMap<u64, Flight>,
    by_event: HashMap<uuid::Uuid, u64>,
    /// Highest outbox sequence number taken this session.
    last_taken: Option<u64>,
    timeout: Duration,
    /// When an outbox event was last sent.
    last_send: Instant,
}

impl Session {
    /// A session whose receipts are awaited `timeout` before an event goes again.
    #[must_use]
    pub fn new(timeout: Duration, now: Instant) -> Self {
        Self {
            requested: VecDeque::new(),
            by_pkid: HashMap::new(),
            flights: BTreeMap::new(),
            by_event: HashMap::new(),
            last_taken: None,
            timeout,
            last_send: now,
        }
    }

    /// Events that may still be sent before the window is full.
    #[must_use]
    pub fn room(&self) -> usize {
        WINDOW.saturating_sub(self.flights.len())
    }

    /// Events in flight.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.flights.len()
    }

    /// The last outbox sequence number taken this session: new events come after it.
    #[must_use]
    pub fn last_taken(&self) -> Option<u64> {
        self.last_taken
    }

    /// Outbox event `seq` was passed over (it cannot be sent).
    pub fn skipped(&mut self, seq: u64) {
        self.last_taken = Some(seq);
    }

    /// Outbox event `seq` (`event_id`, its bytes' SHA-256) was handed to the client.
    pub fn sent(&mut self, seq: u64, event_id: uuid::Uuid, sha256: String, now: Instant) {
        self.requested.push_back(Some(seq));
        self.last_taken = Some(seq);
        self.last_send = now;
        self.by_event.insert(event_id, seq);
        self.flights.insert(
            seq,
            Flight {
                event_id,
                sha256,
                due: now + self.timeout,
                attempts: 0,
            },
        );
    }

    /// A publish that is no outbox event (status, spectrum) was handed to the client.
    pub fn sent_other(&mut self) {
        self.requested.push_back(None);
    }

    /// The events due to go again at `now`: those whose wait is over, or, while everything
    /// waits out a long backoff, the oldest once per timeout (a probe, so that its receipt
    /// says soon when the server is back).
    #[must_use]
    pub fn due(&self, now: Instant) -> Vec<u64> {
        let mut due: Vec<u64> = self
            .flights
            .iter()
            .filter(|(_, f)| f.due <= now)
            .map(|(s, _)| *s)
            .collect();
        if due.is_empty()
            && now.duration_since(self.last_send) >= self.timeout
            && let Some((&first, _)) = self.flights.iter().next()
        {
            due.push(first);
        }
        due
    }

    /// Event `seq` was handed to the client again at `now`: its try number (2 for the first
    /// resend) and the wait before the next, doubled per try.
    pub fn resent(&mut self, seq: u64, now: Instant) -> Option<(u32, Duration)> {
        let timeout = self.timeout;
        let f = self.flights.get_mut(&seq)?;
        self.requested.push_back(Some(seq));
        self.last_send = now;
        f.attempts += 1;
        let wait = doubling(timeout, f.attempts);
        f.due = now + wait;
        Some((f.attempts + 1, wait))
    }

    /// Event `seq` is no longer in flight (gone from the outbox meanwhile).
    pub fn forget(&mut self, seq: u64) {
        if let Some(f) = self.flights.remove(&seq) {
            self.by_event.remove(&f.event_id);
        }
    }

    /// The client sent the next requested publish with packet id `pkid`.
    pub fn outgoing(&mut self, pkid: u16) {
        if let Some(Some(seq)) = self.requested.pop_front() {
            self.by_pkid.insert(pkid, seq);
        }
    }

    /// Whether `pkid` carries an outbox event.
    #[must_use]
    pub fn carries_event(&self, pkid: u16) -> bool {
        self.by_pkid.contains_key(&pkid)
    }

    /// The broker's PUBACK for `pkid`. An event it discarded or refused is due again soon,
    /// backing off like any resend (a server away for hours is not called every two seconds);
    /// it stays in the outbox either way.
    pub fn puback(&mut self, pkid: u16, ack: BrokerAck, now: Instant) -> Acked {
        let Some(seq) = self.by_pkid.remove(&pkid) else {
            return Acked::Other;
        };
        if ack == BrokerAck::Success {
            return Acked::Event(seq);
        }
        if let Some(f) = self.flights.get_mut(&seq) {
            f.due = f.due.min(now + doubling(UNROUTED_RETRY, f.attempts));
        }
        Acked::Bounced(seq, ack)
    }

    /// A commit receipt's items, at `now`. Items for events not in flight (confirmed already, or
    /// sent in an earlier session) mean nothing. When anything was committed, what already
    /// waited out a timeout (sent while the server was down, lost by a broker) goes again in a
    /// second instead of after its long backoff.
    pub fn receipt(&mut self, items: &[ReceiptItem], now: Instant) -> Vec<Verdict> {
        let reason = |i: &ReceiptItem| i.reason.clone().unwrap_or_default();
        let mut out = Vec::new();
        for item in items {
            let Some(&seq) = self.by_event.get(&item.event_id) else {
                continue;
            };
            let Some(f) = self.flights.get_mut(&seq) else {
                continue;
            };
            if f.sha256 != item.sha256 {
                out.push(Verdict::OtherBytes(item.event_id, item.outcome));
                continue;
            }
            match item.outcome {
                Outcome::Stored | Outcome::Duplicate => {
                    self.forget(seq);
                    out.push(Verdict::Committed(seq));
                }
                Outcome::Deferred => {
                    f.due = now + self.timeout;
                    out.push(Verdict::Deferred(seq, reason(item)));
                }
                Outcome::Rejected | Outcome::Conflict => {
                    self.forget(seq);
                    out.push(Verdict::Rejected(seq, item.outcome, reason(item)));
                }
            }
        }
        if out.iter().any(|v| matches!(v, Verdict::Committed(_))) {
            let soon = now + Duration::from_secs(1);
            for f in self.flights.values_mut() {
                if f.attempts > 0 && f.due > soon {
                    f.due = soon;
                    f.attempts = 1;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(15);

    fn id(n: u8) -> uuid::Uuid {
        uuid::Uuid::from_bytes([n; 16])
    }

    fn item(n: u8, sha: &str, outcome: Outcome) -> ReceiptItem {
        ReceiptItem {
            event_id: id(n),
            sha256: sha.to_string(),
            outcome,
            reason: None,
        }
    }

    /// A session at `t0` with events 1..=n sent, each on packet id = its number.
    fn with_events(t0: Instant, n: u8) -> Session {
        let mut s = Session::new(T, t0);
        for k in 1..=n {
            s.sent(u64::from(k), id(k), format!("sha{k}"), t0);
            s.outgoing(u16::from(k));
        }
        s
    }

    #[test]
    fn the_window_bounds_what_is_in_flight() {
        let t0 = Instant::now();
        let mut s = Session::new(T, t0);
        assert_eq!(s.room(), WINDOW);
        for k in 0..WINDOW as u64 {
            s.sent(k, uuid::Uuid::from_u64_pair(0, k), String::new(), t0);
        }
        assert_eq!((s.room(), s.in_flight()), (0, WINDOW));
        assert_eq!(s.last_taken(), Some(WINDOW as u64 - 1));
        s.forget(3);
        assert_eq!(s.room(), 1);
    }

    #[test]
    fn an_event_without_receipt_goes_again_with_a_doubling_wait() {
        let t0 = Instant::now();
        let mut s = with_events(t0, 1);
        assert!(s.due(t0 + T - Duration::from_millis(1)).is_empty());
        let mut now = t0 + T;
        let mut waits = Vec::new();
        for _ in 0..8 {
            assert_eq!(s.due(now), vec![1]);
            let (try_no, wait) = s.resent(1, now).expect("in flight");
            waits.push((try_no, wait.as_secs()));
            now += wait;
        }
        assert_eq!(
            waits,
            [
                (2, 30),
                (3, 60),
                (4, 120),
                (5, 240),
                (6, 300),
                (7, 300),
                (8, 300),
                (9, 300)
            ]
        );
    }

    #[test]
    fn while_everything_backs_off_the_oldest_is_probed_once_per_timeout() {
        let t0 = Instant::now();
        let mut s = with_events(t0, 3);
        let now = t0 + T;
        for seq in s.due(now) {
            s.resent(seq, now);
        }
        // All three now wait 30 s; 15 s after the last send the oldest alone goes.
        assert!(s.due(now + T - Duration::from_millis(1)).is_empty());
        assert_eq!(s.due(now + T), vec![1]);
    }

    #[test]
    fn a_bounced_publish_goes_again_soon_and_a_status_ack_means_nothing() {
        let t0 = Instant::now();
        let mut s = with_events(t0, 2);
        s.sent_other();
        s.outgoing(9);
        assert!(!s.carries_event(9));
        assert_eq!(s.puback(9, BrokerAck::Success, t0), Acked::Other);
        assert_eq!(s.puback(1, BrokerAck::Success, t0), Acked::Event(1));
        assert_eq!(
            s.puback(2, BrokerAck::NoSubscribers, t0),
            Acked::Bounced(2, BrokerAck::NoSubscribers)
        );
        // Event 2 goes again after 2 s, not after the 15 s timeout; event 1 waits its timeout.
        assert!(
            s.due(t0 + UNROUTED_RETRY - Duration::from_millis(1))
                .is_empty()
        );
        assert_eq!(s.due(t0 + UNROUTED_RETRY), vec![2]);
        // The same pkid twice: the second ack is no event's.
        assert_eq!(s.puback(1, BrokerAck::Success, t0), Acked::Other);
    }

    #[test]
    fn receipts_commit_defer_and_reject_only_our_own_bytes() {
        let t0 = Instant::now();
        let mut s = with_events(t0, 4);
        let v = s.receipt(
            &[
                item(1, "sha1", Outcome::Stored),
                item(2, "forged", Outcome::Stored),
                ReceiptItem {
                    reason: Some("unknown sensor".into()),
                    ..item(3, "sha3", Outcome::Rejected)
                },
                item(4, "sha4", Outcome::Deferred),
                item(7, "sha7", Outcome::Stored),
            ],
            t0 + Duration::from_secs(5),
        );
        assert_eq!(
            v,
            [
                Verdict::Committed(1),
                Verdict::OtherBytes(id(2), Outcome::Stored),
                Verdict::Rejected(3, Outcome::Rejected, "unknown sensor".into()),
                Verdict::Deferred(4, String::new()),
            ]
        );
        // 2 (another client's bytes) and 4 (deferred) are still in flight; 1 and 3 are not.
        assert_eq!(s.in_flight(), 2);
        assert!(
            s.receipt(&[item(1, "sha1", Outcome::Stored)], t0)
                .is_empty()
        );
        // Deferred: due a timeout after the receipt, not after the send.
        assert_eq!(s.due(t0 + T), vec![2]);
        assert_eq!(s.due(t0 + Duration::from_secs(20)), vec![2, 4]);
    }

    #[test]
    fn a_commit_brings_long_backoffs_back_to_a_second() {
        let t0 = Instant::now();
        let mut s = with_events(t0, 2);
        let mut now = t0;
        for _ in 0..5 {
            now += T * 20;
            for seq in s.due(now) {
                s.resent(seq, now);
            }
        }
        // Both wait 300 s now; a minute on, only the oldest goes, as the probe.
        assert_eq!(s.due(now + Duration::from_secs(60)), vec![1]);
        s.receipt(&[item(1, "sha1", Outcome::Duplicate)], now);
        assert_eq!(s.due(now + Duration::from_secs(1)), vec![2]);
        // And it backs off from the start again.
        let (_, wait) = s
            .resent(2, now + Duration::from_secs(1))
            .expect("in flight");
        assert_eq!(wait, T * 4);
    }
}
