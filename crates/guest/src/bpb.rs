//! bpb (to be implemented).
