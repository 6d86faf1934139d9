//! Fuzz targets: every reader of untrusted bytes, as a function of one input. The same targets
//! run under AFL++ (`tests/fuzz`, `cargo afl`, for long coverage-guided runs) and in `cargo
//! test` over the committed corpus and seeded mutations of it (`tests/tests/offline/fuzz.rs`, a
//! short bounded run in CI). A target panics only on a bug: a crash in a reader, or a broken
//! invariant of what it accepted.

use std::path::PathBuf;

/// A fuzz target: one input, a panic on a bug.
pub type Target = fn(&[u8]);

/// The targets by name, as the fuzzing binary and the corpus folders call them.
pub const TARGETS: [(&str, Target); 6] = [
    ("decode", decode),
    ("sigmf_meta", sigmf_meta),
    ("iq", iq),
    ("outbox_entry", outbox_entry),
    ("agent_config", agent_config),
    ("server_config", server_config),
];

/// A target by name.
#[must_use]
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

const TOPICS: [&str; 5] = [
    "centinela/v1/f/s/gap",
    "centinela/v1/f/s/jammer",
    "centinela/v1/f/s/status",
    "centinela/v1/f/s/spectrum",
    "centinela/v1/f/s/receipt",
];

/// `protocol::decode` and the time check behind it, signed envelopes, receipts, and the
/// event-id peek. The first
/// byte picks the topic (or, past the list, the input up to its first newline is the topic).
///
/// # Panics
/// When a decoded message breaks what decode promises (its facility and sensor are the topic's).
pub fn decode(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (topic, payload): (String, &[u8]) = match TOPICS.get(usize::from(sel) % 8) {
        Some(t) => ((*t).to_string(), rest),
        None => {
            let cut = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            (
                String::from_utf8_lossy(&rest[..cut]).into_owned(),
                rest.get(cut + 1..).unwrap_or_default(),
            )
        }
    };
    if let Ok(m) = protocol::decode(&topic, payload) {
        let (f, s, _) = protocol::parse_topic(&topic).expect("decode accepted the topic");
        assert_eq!(
            m.source(),
            (f.as_str(), s.as_str()),
            "topic and payload agree"
        );
        let now = time::OffsetDateTime::from_unix_timestamp(1_790_000_000).expect("time");
        let _ = m.check_time(
            &topic,
            &protocol::TimeBounds {
                now,
                max_skew: time::Duration::minutes(5),
                max_age: time::Duration::days(90),
            },
        );
    }
    if let Ok(env) = protocol::signed::Envelope::open(payload) {
        // The message is the payload's own bytes, verbatim; checking a signature never panics.
        let range = payload.as_ptr_range();
        assert!(
            range.contains(&env.msg.as_ptr()),
            "msg borrowed from the payload"
        );
        let _ = env.verify(&topic);
        let _ = protocol::decode(&topic, env.msg);
    }
    if let Ok(r) = protocol::Receipt::decode(payload, "f", "s") {
        assert_eq!((r.facility_id.as_str(), r.sensor_id.as_str()), ("f", "s"));
    }
    let _ = protocol::peek_event_id(payload);
}

/// The SigMF metadata reader: the first 8 bytes are the data file's length (little-endian),
/// the rest the `.sigmf-meta` text.
///
/// # Panics
/// When accepted metadata describes samples outside the data file.
pub fn sigmf_meta(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let (len, text) = data.split_at(8);
    let mut l = [0u8; 8];
    l.copy_from_slice(len);
    // Lengths a file can have here, and some past 2^40 to reach the arithmetic's edges.
    let data_len = u64::from_le_bytes(l) >> (l[7] % 24);
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    if let Ok(m) = hardware::sigmf::Metadata::parse(
        text,
        data_len,
        PathBuf::from("fuzz.sigmf-meta"),
        PathBuf::from("fuzz.sigmf-data"),
    ) {
        let sb = m.datatype.sample_bytes() as u64;
        assert!(m.captures.len() <= hardware::sigmf::MAX_CAPTURES);
        assert!(
            (hardware::sigmf::MIN_SAMPLE_RATE_HZ..=hardware::sigmf::MAX_SAMPLE_RATE_HZ)
                .contains(&m.sample_rate_hz)
        );
        for c in &m.captures {
            let end = c.data_offset + c.sample_count * sb;
            assert!(end <= data_len, "capture {c:?} ends past {data_len} bytes");
            assert!(
                c.frequency_hz
                    .is_none_or(|f| (0.0..=hardware::sigmf::MAX_FREQUENCY_HZ).contains(&f))
            );
        }
        assert!(m.total_samples * sb <= data_len);
    }
}

/// The IQ decoder of every datatype: the first byte picks it, the rest are sample bytes.
///
/// # Panics
/// When it decodes a partial sample, or leaves a non-finite value after sanitising.
pub fn iq(data: &[u8]) {
    const TYPES: [&str; 9] = [
        "cu8", "ci8", "ci16_le", "ci16_be", "cu16_le", "ci32_le", "cf32_le", "cf32_be", "cf64_le",
    ];
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let dt = hardware::sigmf::Datatype::parse(TYPES[usize::from(sel) % TYPES.len()])
        .expect("a known datatype");
    let mut out = vec![dsp::Complex32::default(); bytes.len() / dt.sample_bytes() + 1];
    let (n, _) = dt.decode_finite(bytes, &mut out);
    assert_eq!(n, bytes.len() / dt.sample_bytes());
    assert!(
        out[..n]
            .iter()
            .all(|s| s.re.is_finite() && s.im.is_finite()),
        "a non-finite sample got through"
    );
}

/// The outbox file reader.
///
/// # Panics
/// When an accepted entry has a topic that is not a Centinela topic.
pub fn outbox_entry(data: &[u8]) {
    if let Ok(e) = sensor_agent::daemon::outbox::Entry::from_bytes(data) {
        assert!(protocol::parse_topic(&e.topic).is_ok());
    }
}

/// The agent's configuration parser (with no environment overrides).
///
/// # Panics
/// When an accepted configuration still has problems.
pub fn agent_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = sensor_agent::daemon::config::AgentConfig::load_with_env(
        text,
        "fuzz.toml",
        std::iter::empty(),
    ) {
        assert!(c.problems("fuzz.toml").is_empty());
    }
}

/// The server's configuration parser.
///
/// # Panics
/// When an accepted configuration still has problems.
pub fn server_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = central_server::config::ServerConfig::from_toml(text, "fuzz.toml") {
        assert!(c.problems("fuzz.toml").is_empty());
    }
}

/// A seeded byte mutator for the bounded run in `cargo test`: flips, inserts, deletes, copies
/// within the input, splices from another corpus entry, and swaps in interesting numbers. Not a
/// coverage-guided fuzzer (that is AFL++'s job); a cheap guard that runs everywhere.
#[derive(Debug)]
pub struct Mutator {
    state: u64,
}

impl Mutator {
    /// A mutator from a seed.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self { state: seed | 1 }
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// A mutant of `input` (with `other` for splicing), at most `max_len` bytes.
    pub fn mutate(&mut self, input: &[u8], other: &[u8], max_len: usize) -> Vec<u8> {
        const INTERESTING: [&[u8]; 14] = [
            b"0",
            b"-1",
            b"1e308",
            b"-1e308",
            b"5e-324",
            b"18446744073709551615",
            b"9223372036854775808",
            b"NaN",
            b"null",
            b"\"\"",
            b"[]",
            b"{}",
            b"2199-01-01T00:00:00Z",
            b"\"\\u0000\"",
        ];
        let mut v = input.to_vec();
        for _ in 0..=self.below(4) {
            let len = v.len();
            match self.below(7) {
                0 if len > 0 => {
                    let i = self.below(len);
                    v[i] ^= 1 << self.below(8);
                }
                1 => {
                    let i = self.below(len + 1);
                    let b = self.next() as u8;
                    v.insert(i, b);
                }
                2 if len > 0 => {
                    let i = self.below(len);
                    let n = self.below(len - i).min(16) + 1;
                    v.drain(i..(i + n).min(len));
                }
                3 if len > 1 => {
                    let a = self.below(len);
                    let n = self.below(len - a).min(64) + 1;
                    let chunk = v[a..(a + n).min(len)].to_vec();
                    let at = self.below(v.len() + 1);
                    v.splice(at..at, chunk);
                }
                4 if !other.is_empty() => {
                    let a = self.below(other.len());
                    let n = self.below(other.len() - a).min(128) + 1;
                    let at = self.below(len + 1);
                    v.splice(at..at, other[a..(a + n).min(other.len())].iter().copied());
                }
                5 => {
                    // Replace a run of digits (a number in JSON or TOML) by an interesting one.
                    let digits: Vec<usize> = (0..len).filter(|&i| v[i].is_ascii_digit()).collect();
                    let pick = INTERESTING[self.below(INTERESTING.len())];
                    if digits.is_empty() {
                        let at = self.below(len + 1);
                        v.splice(at..at, pick.iter().copied());
                    } else {
                        let s = digits[self.below(digits.len())];
                        let mut e = s;
                        while e < len && (v[e].is_ascii_digit() || v[e] == b'.') {
                            e += 1;
                        }
                        v.splice(s..e, pick.iter().copied());
                    }
                }
                _ if len > 0 => {
                    let i = self.below(len);
                    v[i] = self.next() as u8;
                }
                _ => v.push(self.next() as u8),
            }
        }
        v.truncate(max_len);
        v
    }
}
