//! A secret (a broker password, later tokens): kept as given, never shown by `Debug` or
//! `Display`, so a logged configuration or options struct cannot leak it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret string. `Debug` prints `Secret(***)`; the value is read only through [`expose`].
///
/// [`expose`]: Secret::expose
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that hands it to a library.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        #[derive(Debug)]
        #[allow(dead_code)] // read only through Debug
        struct Options {
            user: String,
            password: Option<Secret>,
        }
        let o = Options {
            user: "sensor-1".into(),
            password: Some(Secret::new("hunter2-very-secret")),
        };
        let shown = format!("{o:?} {o:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("sensor-1") && shown.contains("Secret(***)"),
            "{shown}"
        );
        let back: Secret = serde_json::from_str(r#""p@ss""#).expect("json");
        assert_eq!(back.expose(), "p@ss");
    }
}
