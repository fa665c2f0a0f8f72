//! Time as plain data. `SystemTime::now()` panics on wasm32-unknown-unknown, so the clock is
//! a seam: the runtime reads `Date.now()`, tests pin it.

/// Seconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub i64);

impl UnixTime {
    /// Seconds since the epoch.
    pub fn secs(self) -> i64 {
        self.0
    }

    /// This time plus `secs` seconds.
    #[must_use]
    pub fn plus(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs))
    }

    /// As a chrono time, for jwt-compact's claims.
    pub fn to_chrono(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(self.0, 0).unwrap_or_default()
    }

    /// From a chrono time.
    pub fn from_chrono(t: chrono::DateTime<chrono::Utc>) -> Self {
        Self(t.timestamp())
    }

    /// RFC 3339 in UTC, e.g. `2026-11-26T17:00:00Z`.
    pub fn to_rfc3339(self) -> String {
        self.to_chrono()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}
