//! Outpost server.
