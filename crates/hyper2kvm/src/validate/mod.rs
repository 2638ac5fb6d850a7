//! Validation by booting (to be implemented).
