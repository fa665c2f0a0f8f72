//! Sessions: the key set, the session JWT, cookies and CSRF tokens.

pub mod cookies;
pub mod csrf;
pub mod feed;
pub mod keys;
pub mod memory;
pub mod token;
pub mod verified;
