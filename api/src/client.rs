//! The HTTP client (work in progress).
