//! `application/x-www-form-urlencoded` parameters (query strings and form bodies).

use std::collections::HashMap;

/// Parameters of one request. OAuth 2.0 forbids repeating a parameter (RFC 6749, section 3.1),
/// so a repeated name is an error rather than "first wins" or "last wins".
#[derive(Debug, Default, Clone)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses `a=1&b=2`; `Err` names the first repeated parameter.
    pub fn parse(input: &[u8]) -> Result<Self, String> {
        let mut map = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(input) {
            if map.insert(name.to_string(), value.into_owned()).is_some() {
                return Err(name.into_owned());
            }
        }
        Ok(Self(map))
    }

    /// The value of `name`, if present (possibly empty).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The value of `name`, if present and not empty.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// Whether `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
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
}
