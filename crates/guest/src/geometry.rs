//! geometry (to be implemented).
