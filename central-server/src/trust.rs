//! Who may speak: the sensor registry of the configuration and the checks every message passes
//! before it is decoded. A message is heard only when its topic names a registered sensor that
//! is not revoked, its payload is a [`protocol::signed`] envelope naming that sensor's key, and
//! the signature verifies over the topic, the sequence number and the message's exact bytes.
//! Whether the sequence number was already used (a replay) is the store's check, in the same
//! transaction that stores the message.

use std::collections::HashMap;

use protocol::signed::{Envelope, PublicKey, SignedError};

use crate::config::ServerConfig;

/// Why the registry or the signature refuses a message. `reason()` is a finite label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// No registered sensor has this facility and id.
    #[error("{topic}: no sensor `{facility}/{sensor}` is registered")]
    UnknownSensor {
        /// Topic.
        topic: String,
        /// Facility.
        facility: String,
        /// Sensor.
        sensor: String,
    },
    /// The sensor is registered without a public key: nothing it sends can be verified.
    #[error("{topic}: sensor `{facility}/{sensor}` has no public key in the registry")]
    NotEnrolled {
        /// Topic.
        topic: String,
        /// Facility.
        facility: String,
        /// Sensor.
        sensor: String,
    },
    /// The sensor is revoked.
    #[error("{topic}: sensor `{facility}/{sensor}` is revoked")]
    Revoked {
        /// Topic.
        topic: String,
        /// Facility.
        facility: String,
        /// Sensor.
        sensor: String,
    },
    /// The payload is not a signed envelope, or a broken one, or its signature fails.
    #[error("{topic}: {source}")]
    Envelope {
        /// Topic.
        topic: String,
        /// What is wrong.
        source: SignedError,
    },
    /// The envelope names a key other than the sensor's.
    #[error("{topic}: signed with {key}, which is not the key registered for this sensor")]
    WrongKey {
        /// Topic.
        topic: String,
        /// The key the envelope names.
        key: String,
    },
    /// A sequence number already used by other bytes.
    #[error(
        "{topic}: sequence number {seq} of this sensor was already used by another message (a replay, or a sensor whose counter went back)"
    )]
    Replayed {
        /// Topic.
        topic: String,
        /// The number.
        seq: u64,
    },
    /// The message names a zone other than the registry's.
    #[error("{topic}: the message says zone `{said}`, the registry `{registered}`")]
    WrongZone {
        /// Topic.
        topic: String,
        /// Zone in the message.
        said: String,
        /// Zone in the registry.
        registered: String,
    },
}

impl TrustError {
    /// A short label for counting.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownSensor { .. } => "unknown_sensor",
            Self::NotEnrolled { .. } => "not_enrolled",
            Self::Revoked { .. } => "revoked",
            Self::Envelope { source, .. } => source.reason(),
            Self::WrongKey { .. } => "wrong_key",
            Self::Replayed { .. } => "replayed",
            Self::WrongZone { .. } => "wrong_zone",
        }
    }

    /// Every label `reason()` can return.
    pub const REASONS: [&'static str; 10] = [
        "unknown_sensor",
        "not_enrolled",
        "revoked",
        "unsigned",
        "bad_envelope",
        "bad_signature",
        "bad_key",
        "wrong_key",
        "replayed",
        "wrong_zone",
    ];

    /// Whether the refusal points at someone speaking for a registered sensor (a forgery, a
    /// replay, a revoked or cloned sensor): these raise a `tamper` alert. A wrong zone is the
    /// sensor's own (signed) misconfiguration, and an unknown sensor names no one.
    #[must_use]
    pub fn is_tamper(&self) -> bool {
        !matches!(
            self,
            Self::UnknownSensor { .. } | Self::NotEnrolled { .. } | Self::WrongZone { .. }
        )
    }
}

/// A registered sensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    /// Its public key, if enrolled.
    pub key: Option<PublicKey>,
    /// Revoked.
    pub revoked: bool,
    /// The zone it covers.
    pub zone: String,
}

/// The sensors of the configuration, by facility and id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    sensors: HashMap<(String, String), Enrolled>,
}

/// A message that passed the registry and its signature: the sensor's key (text) and number,
/// and the message's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'a> {
    /// The key, as the envelope names it.
    pub key: PublicKey,
    /// Sequence number.
    pub seq: u64,
    /// The message, verbatim.
    pub msg: &'a [u8],
}

impl Registry {
    /// The registry of a configuration's facilities.
    #[must_use]
    pub fn from_config(cfg: &ServerConfig) -> Self {
        let mut sensors = HashMap::new();
        for f in &cfg.facilities {
            for s in &f.sensors {
                sensors.insert(
                    (f.id.clone(), s.id.clone()),
                    Enrolled {
                        key: s.public_key,
                        revoked: s.revoked,
                        zone: s.zone.clone(),
                    },
                );
            }
        }
        Self { sensors }
    }

    /// A registered sensor.
    #[must_use]
    pub fn get(&self, facility: &str, sensor: &str) -> Option<&Enrolled> {
        self.sensors
            .get(&(facility.to_string(), sensor.to_string()))
    }

    /// Sensors registered, and how many of them have a key and are not revoked.
    #[must_use]
    pub fn counts(&self) -> (usize, usize) {
        let live = self
            .sensors
            .values()
            .filter(|e| e.key.is_some() && !e.revoked)
            .count();
        (self.sensors.len(), live)
    }

    /// Checks a payload received on `topic`, which names `facility`/`sensor`.
    ///
    /// # Errors
    /// The first check that fails.
    pub fn check<'a>(
        &self,
        topic: &str,
        facility: &str,
        sensor: &str,
        payload: &'a [u8],
    ) -> Result<Verified<'a>, TrustError> {
        let named = || (topic.to_string(), facility.to_string(), sensor.to_string());
        let Some(e) = self.get(facility, sensor) else {
            let (topic, facility, sensor) = named();
            return Err(TrustError::UnknownSensor {
                topic,
                facility,
                sensor,
            });
        };
        let env = Envelope::open(payload).map_err(|source| TrustError::Envelope {
            topic: topic.to_string(),
            source,
        })?;
        if e.revoked {
            let (topic, facility, sensor) = named();
            return Err(TrustError::Revoked {
                topic,
                facility,
                sensor,
            });
        }
        let Some(key) = e.key else {
            let (topic, facility, sensor) = named();
            return Err(TrustError::NotEnrolled {
                topic,
                facility,
                sensor,
            });
        };
        if !env.key.is(&key) {
            return Err(TrustError::WrongKey {
                topic: topic.to_string(),
                key: env.key.to_string(),
            });
        }
        env.verify_with(&key, topic)
            .map_err(|source| TrustError::Envelope {
                topic: topic.to_string(),
                source,
            })?;
        if env.seq == 0 || i64::try_from(env.seq).is_err() {
            return Err(TrustError::Envelope {
                topic: topic.to_string(),
                source: SignedError::Malformed {
                    field: "seq",
                    why: format!("{} is not 1–{}", env.seq, i64::MAX),
                },
            });
        }
        Ok(Verified {
            key,
            seq: env.seq,
            msg: env.msg,
        })
    }

    /// Checks that a decoded message's zone is the registry's.
    ///
    /// # Errors
    /// [`TrustError::WrongZone`].
    pub fn check_zone(
        &self,
        topic: &str,
        facility: &str,
        sensor: &str,
        zone: Option<&str>,
    ) -> Result<(), TrustError> {
        match (self.get(facility, sensor), zone) {
            (Some(e), Some(z)) if e.zone != z => Err(TrustError::WrongZone {
                topic: topic.to_string(),
                said: z.to_string(),
                registered: e.zone.clone(),
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::signed::SensorKey;

    fn registry(key: &SensorKey, revoked: bool) -> Registry {
        let mut sensors = HashMap::new();
        sensors.insert(
            ("f".to_string(), "s".to_string()),
            Enrolled {
                key: Some(key.public()),
                revoked,
                zone: "z".into(),
            },
        );
        sensors.insert(
            ("f".to_string(), "bare".to_string()),
            Enrolled {
                key: None,
                revoked: false,
                zone: "z".into(),
            },
        );
        Registry { sensors }
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let key = SensorKey::from_seed(&[1; 32]);
        let other = SensorKey::from_seed(&[2; 32]);
        let t = "centinela/v1/f/s/gap";
        let msg = br#"{"schema":"centinela.gap/1"}"#;
        let good = key.seal(t, 5, msg).expect("seal");
        let r = registry(&key, false);
        let v = r.check(t, "f", "s", &good).expect("good");
        assert_eq!((v.seq, v.msg), (5, &msg[..]));
        let reason = |topic: &str, s: &str, p: &[u8], r: &Registry| {
            r.check(topic, "f", s, p).expect_err("refused").reason()
        };
        assert_eq!(reason(t, "s", msg, &r), "unsigned");
        assert_eq!(reason(t, "nobody", &good, &r), "unknown_sensor");
        assert_eq!(reason(t, "bare", &good, &r), "not_enrolled");
        assert_eq!(reason(t, "s", &good, &registry(&key, true)), "revoked");
        let forged = other.seal(t, 5, msg).expect("seal");
        assert_eq!(reason(t, "s", &forged, &r), "wrong_key");
        let moved = key.seal("centinela/v1/f/s/jammer", 5, msg).expect("seal");
        assert_eq!(reason(t, "s", &moved, &r), "bad_signature");
        let zero = key.seal(t, 0, msg).expect("seal");
        assert_eq!(reason(t, "s", &zero, &r), "bad_envelope");
        let mut flipped = good.clone();
        let at = flipped.len() - 3;
        flipped[at] ^= 1;
        assert!(r.check(t, "f", "s", &flipped).is_err());
        assert!(r.check_zone(t, "f", "s", Some("z")).is_ok());
        assert_eq!(
            r.check_zone(t, "f", "s", Some("y"))
                .expect_err("zone")
                .reason(),
            "wrong_zone"
        );
        for e in [
            r.check(t, "f", "s", msg).expect_err("x"),
            r.check(t, "f", "s", &forged).expect_err("x"),
        ] {
            assert!(TrustError::REASONS.contains(&e.reason()));
            assert!(e.is_tamper());
        }
    }
}
