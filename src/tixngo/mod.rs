//! TIXNGO: the diff endpoint's wire format, the organizer's API key and the HTTP client that
//! fetches it.

pub mod api_key;
pub mod client;
pub mod dump;
pub mod wire;
