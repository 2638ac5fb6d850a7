//! Parallel conversion pipeline. Filled in by the conversion work.
