//! partition (to be implemented).
