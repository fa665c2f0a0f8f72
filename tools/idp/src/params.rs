//! `application/x-www-form-urlencoded` parameters (query strings and form bodies).

use std::collections::HashMap;

/// Parameters of one request. OAuth 2.0 forbids repeating a parameter (RFC 6749, section 3.1),
/// so a repeated name is an error rather than "first wins" or "last wins" — except for names the
/// caller declares repeatable (the provider's own `test_twist`), whose values are all kept.
#[derive(Debug, Default, Clone)]
pub struct Params {
    single: HashMap<String, String>,
    repeated: HashMap<String, Vec<String>>,
}

impl Params {
    /// Parses `a=1&b=2`; `Err` names the first repeated parameter.
    pub fn parse(input: &[u8]) -> Result<Self, String> {
        Self::parse_allowing_repeats(input, &[])
    }

    /// Like [`Params::parse`], but the names in `repeatable` may appear any number of times;
    /// read them with [`Params::get_all`].
    pub fn parse_allowing_repeats(input: &[u8], repeatable: &[&str]) -> Result<Self, String> {
        let mut params = Self::default();
        for (name, value) in url::form_urlencoded::parse(input) {
            if repeatable.contains(&name.as_ref()) {
                params
                    .repeated
                    .entry(name.into_owned())
                    .or_default()
                    .push(value.into_owned());
            } else if params
                .single
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(name.into_owned());
            }
        }
        Ok(params)
    }

    /// The value of `name`, if present (possibly empty). For a repeatable name, the first value.
    pub fn get(&self, name: &str) -> Option<&str> {
        match self.single.get(name) {
            Some(v) => Some(v.as_str()),
            None => self
                .repeated
                .get(name)
                .and_then(|vs| vs.first())
                .map(String::as_str),
        }
    }

    /// Every value of `name`, in order (empty when absent).
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        match (self.single.get(name), self.repeated.get(name)) {
            (_, Some(vs)) => vs.iter().map(String::as_str).collect(),
            (Some(v), None) => vec![v.as_str()],
            (None, None) => Vec::new(),
        }
    }

    /// The value of `name`, if present and not empty.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// Whether `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.single.contains_key(name) || self.repeated.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_rejects_repeats() {
        let p = Params::parse(b"a=1+2&b=%26x%3D&c=").unwrap();
        assert_eq!(p.get("a"), Some("1 2"));
        assert_eq!(p.get("b"), Some("&x="));
        assert_eq!(p.get("c"), Some(""));
        assert_eq!(p.non_empty("c"), None);
        assert!(!p.has("d"));
        assert_eq!(Params::parse(b"a=1&a=1").unwrap_err(), "a");
        // Malformed input never panics.
        assert!(Params::parse(b"%zz=%&&=\xff\xfe").is_ok());
    }

    #[test]
    fn declared_names_may_repeat() {
        let p = Params::parse_allowing_repeats(b"t=a&x=1&t=b", &["t"]).unwrap();
        assert_eq!(p.get_all("t"), ["a", "b"]);
        assert_eq!(p.get("t"), Some("a"));
        assert!(p.has("t"));
        assert_eq!(p.get_all("x"), ["1"]);
        assert!(p.get_all("y").is_empty());
        assert_eq!(
            Params::parse_allowing_repeats(b"t=a&x=1&x=2", &["t"]).unwrap_err(),
            "x"
        );
    }
}
