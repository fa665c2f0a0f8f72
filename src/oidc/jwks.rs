//! The provider's signing keys (JWKS) and their per-isolate cache policy.

use jwt_compact::jwk::JsonWebKey;

use crate::time::UnixTime;

/// An unknown `kid` may trigger a refetch at most this often.
pub const REFETCH_INTERVAL_SECS: i64 = 60;
/// A cached set may be used this long after its `max-age` when the provider is unreachable.
pub const STALE_IF_ERROR_SECS: i64 = 24 * 3600;
/// `max-age` when the response gives none.
pub const DEFAULT_MAX_AGE_SECS: i64 = 3600;

/// One key of the provider's set.
pub struct ProviderKey {
    kid: String,
    key: Option<RsaKey>,
}

impl ProviderKey {
    /// The key for RS256 verification, if it is one.
    pub fn rs256(&self) -> Option<&RsaKey> {
        self.key.as_ref()
    }
}

/// An RSA public key of the provider (JWK `n` and `e`, big-endian), for RS256. The signature
/// math is done behind the `oidc::rs256` seam (WebCrypto in the worker).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaKey {
    /// `n`, without leading zero bytes.
    pub modulus: Vec<u8>,
    /// `e`, without leading zero bytes.
    pub exponent: Vec<u8>,
}

/// Smallest and largest RSA modulus accepted: RFC 7518 (3.3) requires at least 2048 bits for
/// RS256, and Google's keys have 2048. A weaker key in the provider's set is unusable.
const MODULUS_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

impl RsaKey {
    /// The key of an RSA JWK, if its sizes are sane: a 2048–4096-bit modulus, an odd exponent
    /// of at least 3 that fits in 32 bits (Google's is 65537).
    fn from_jwk(jwk: &JsonWebKey<'_>) -> Option<Self> {
        let JsonWebKey::Rsa {
            modulus,
            public_exponent,
            ..
        } = jwk
        else {
            return None;
        };
        let trim = |b: &[u8]| b[b.iter().take_while(|x| **x == 0).count()..].to_vec();
        let (modulus, exponent) = (trim(modulus), trim(public_exponent));
        let bits = (modulus.len() * 8)
            .saturating_sub(modulus.first().map_or(0, |b| b.leading_zeros() as usize));
        let e = exponent.iter().try_fold(0u64, |acc, b| {
            (exponent.len() <= 4).then_some((acc << 8) | u64::from(*b))
        })?;
        (MODULUS_BITS.contains(&bits) && e >= 3 && e % 2 == 1).then_some(Self { modulus, exponent })
    }
}

/// The provider's JWKS.
#[derive(Default)]
pub struct ProviderKeys {
    keys: Vec<ProviderKey>,
}

impl std::fmt::Debug for ProviderKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<_> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("ProviderKeys").field("kids", &kids).finish()
    }
}

#[derive(serde::Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

impl ProviderKeys {
    /// Parses a JWKS document. Keys that are not RSA signature keys for RS256 are kept by
    /// `kid` but unusable, so a token naming them is refused rather than refetched for.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let raw: RawSet = serde_json::from_slice(body).ok()?;
        let keys = raw
            .keys
            .into_iter()
            .filter_map(|value| {
                let kid = value.get("kid")?.as_str()?.to_owned();
                let str_field = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
                let usable = str_field("use").is_none_or(|u| u == "sig")
                    && str_field("alg").is_none_or(|a| a == "RS256");
                let key = usable
                    .then(|| serde_json::from_value::<JsonWebKey<'_>>(value.clone()).ok())
                    .flatten()
                    .and_then(|jwk| RsaKey::from_jwk(&jwk));
                Some(ProviderKey { kid, key })
            })
            .collect();
        Some(Self { keys })
    }

    /// The key named `kid`.
    pub fn get(&self, kid: &str) -> Option<&ProviderKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// Whether the set has a key named `kid`.
    pub fn has(&self, kid: &str) -> bool {
        self.get(kid).is_some()
    }
}

/// `max-age` of a `Cache-Control` value, if any.
pub fn max_age(cache_control: Option<&str>) -> i64 {
    cache_control
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|n| n.trim_matches('"').parse::<i64>().ok())
        .map_or(DEFAULT_MAX_AGE_SECS, |n| n.clamp(0, 7 * 86_400))
}

struct Entry {
    keys: std::rc::Rc<ProviderKeys>,
    fetched_at: UnixTime,
    max_age: i64,
}

/// Per-isolate cache of the provider's keys.
#[derive(Default)]
pub struct JwksCache {
    entry: Option<Entry>,
    /// Last fetch that counts against the once-a-minute limit: a refetch for an unknown `kid`
    /// while the cache was fresh, or a failed fetch.
    last_limited: Option<UnixTime>,
    /// A fetch under way since then: requests meanwhile use what is cached instead of
    /// starting their own (a stalled provider must not collect one waiting fetch per sign-in).
    in_flight: Option<UnixTime>,
}

/// How long a fetch counts as under way (the HTTP client gives up before this).
const IN_FLIGHT_SECS: i64 = 10;

/// What to do to find the key `kid`.
#[derive(Debug)]
pub enum Lookup {
    /// Use these keys.
    Use(std::rc::Rc<ProviderKeys>),
    /// Fetch the JWKS first.
    Fetch {
        /// The cache was fresh but lacks `kid`: this fetch counts against the limit.
        unknown_kid: bool,
    },
    /// No usable keys and no fetch allowed now.
    Unavailable,
}

impl JwksCache {
    /// Decides whether the cached keys can serve `kid` now. A flood of forged `kid`s, or a
    /// provider that is down, costs one fetch a minute, no more; a cache past its `max-age`
    /// is refreshed as usual, and a new `kid` right after that (key rotation) may still
    /// refetch once.
    pub fn lookup(&self, kid: &str, now: UnixTime) -> Lookup {
        let fetching = self.in_flight.is_some_and(|t| now < t.plus(IN_FLIGHT_SECS));
        let may_fetch = self
            .last_limited
            .is_none_or(|t| now >= t.plus(REFETCH_INTERVAL_SECS));
        let Some(entry) = &self.entry else {
            // Nothing cached: every waiting sign-in needs keys, so it may fetch too.
            return if may_fetch {
                Lookup::Fetch { unknown_kid: false }
            } else {
                Lookup::Unavailable
            };
        };
        let fresh = now < entry.fetched_at.plus(entry.max_age);
        if fresh && entry.keys.has(kid) {
            return Lookup::Use(entry.keys.clone());
        }
        if may_fetch && !fetching {
            return Lookup::Fetch { unknown_kid: fresh };
        }
        self.stale(now).map_or(Lookup::Unavailable, Lookup::Use)
    }

    /// Records that a fetch starts now. An unknown-`kid` refetch counts against the limit from
    /// its start, so concurrent forged `kid`s cost one fetch, not one each.
    pub fn begin(&mut self, now: UnixTime, unknown_kid: bool) {
        self.in_flight = Some(now);
        if unknown_kid {
            self.last_limited = Some(now);
        }
    }

    /// Records a fetch: its keys and `max-age` on success, `None` on failure.
    pub fn fetched(
        &mut self,
        now: UnixTime,
        unknown_kid: bool,
        result: Option<(ProviderKeys, i64)>,
    ) {
        self.in_flight = None;
        match result {
            Some((keys, max_age)) => {
                if unknown_kid {
                    self.last_limited = Some(now);
                }
                self.entry = Some(Entry {
                    keys: std::rc::Rc::new(keys),
                    fetched_at: now,
                    max_age,
                });
            }
            None => self.last_limited = Some(now),
        }
    }

    /// The cached keys if they are at most 24 h past their `max-age` (provider unreachable).
    pub fn stale(&self, now: UnixTime) -> Option<std::rc::Rc<ProviderKeys>> {
        let entry = self.entry.as_ref()?;
        (now < entry.fetched_at.plus(entry.max_age + STALE_IF_ERROR_SECS))
            .then(|| entry.keys.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixTime = UnixTime(1_800_000_000);

    fn keys(kids: &[&str]) -> ProviderKeys {
        ProviderKeys {
            keys: kids
                .iter()
                .map(|k| ProviderKey {
                    kid: (*k).into(),
                    key: None,
                })
                .collect(),
        }
    }

    fn cache_with(kids: &[&str], max_age: i64) -> JwksCache {
        let mut c = JwksCache::default();
        c.fetched(T0, false, Some((keys(kids), max_age)));
        c
    }

    #[test]
    fn empty_cache_fetches() {
        assert!(matches!(
            JwksCache::default().lookup("a", T0),
            Lookup::Fetch { unknown_kid: false }
        ));
    }

    #[test]
    fn fresh_cache_serves_known_kids_without_fetching() {
        let c = cache_with(&["a"], 3600);
        assert!(matches!(c.lookup("a", T0.plus(3599)), Lookup::Use(_)));
        assert!(matches!(
            c.lookup("a", T0.plus(3600)),
            Lookup::Fetch { unknown_kid: false }
        ));
    }

    #[test]
    fn unknown_kid_refetches_at_most_once_a_minute() {
        let mut c = cache_with(&["a"], 3600);
        // A new kid right after a regular fetch (key rotation) may refetch at once...
        assert!(matches!(
            c.lookup("new", T0.plus(1)),
            Lookup::Fetch { unknown_kid: true }
        ));
        c.fetched(T0.plus(1), true, Some((keys(&["a"]), 3600)));
        // ...but the next forged kid waits a minute, using the cached keys meanwhile.
        assert!(matches!(c.lookup("forged", T0.plus(60)), Lookup::Use(_)));
        assert!(matches!(
            c.lookup("forged", T0.plus(61)),
            Lookup::Fetch { unknown_kid: true }
        ));
    }

    #[test]
    fn unreachable_provider_leaves_keys_usable_for_a_day_and_is_retried_once_a_minute() {
        let mut c = cache_with(&["a"], 100);
        c.fetched(T0.plus(100), false, None);
        assert!(matches!(c.lookup("a", T0.plus(120)), Lookup::Use(_)));
        assert!(matches!(c.lookup("a", T0.plus(160)), Lookup::Fetch { .. }));
        c.fetched(T0.plus(160), false, None);
        assert!(c.stale(T0.plus(100 + STALE_IF_ERROR_SECS - 1)).is_some());
        assert!(matches!(
            c.lookup("a", T0.plus(100 + STALE_IF_ERROR_SECS)),
            Lookup::Fetch { .. }
        ));
        c.fetched(T0.plus(100 + STALE_IF_ERROR_SECS), false, None);
        assert!(matches!(
            c.lookup("a", T0.plus(101 + STALE_IF_ERROR_SECS)),
            Lookup::Unavailable
        ));
    }

    #[test]
    fn requests_during_a_fetch_use_the_cache_instead_of_fetching_again() {
        let mut c = cache_with(&["a"], 100);
        // The cache expired: one request starts a fetch...
        assert!(matches!(
            c.lookup("a", T0.plus(100)),
            Lookup::Fetch { unknown_kid: false }
        ));
        c.begin(T0.plus(100), false);
        // ...the others meanwhile use the (stale) keys, and forged kids do not fetch.
        assert!(matches!(c.lookup("a", T0.plus(101)), Lookup::Use(_)));
        assert!(matches!(c.lookup("forged", T0.plus(101)), Lookup::Use(_)));
        c.fetched(T0.plus(102), false, Some((keys(&["a"]), 100)));
        // A forged kid's refetch counts from its start: concurrent ones do not fetch.
        assert!(matches!(
            c.lookup("forged", T0.plus(103)),
            Lookup::Fetch { unknown_kid: true }
        ));
        c.begin(T0.plus(103), true);
        assert!(matches!(c.lookup("forged2", T0.plus(103)), Lookup::Use(_)));
        c.fetched(T0.plus(108), true, None);
        assert!(matches!(c.lookup("forged3", T0.plus(120)), Lookup::Use(_)));
    }

    #[test]
    fn provider_down_before_any_fetch_is_tried_once_a_minute() {
        let mut c = JwksCache::default();
        c.fetched(T0, false, None);
        assert!(matches!(c.lookup("a", T0.plus(59)), Lookup::Unavailable));
        assert!(matches!(c.lookup("a", T0.plus(60)), Lookup::Fetch { .. }));
    }

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            max_age(Some("public, max-age=19432, must-revalidate, no-transform")),
            19432
        );
        assert_eq!(max_age(Some("no-cache")), DEFAULT_MAX_AGE_SECS);
        assert_eq!(max_age(None), DEFAULT_MAX_AGE_SECS);
        assert_eq!(max_age(Some("max-age=-5")), 0);
    }
}
