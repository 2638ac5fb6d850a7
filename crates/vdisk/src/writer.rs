//! Output writers (qcow2, raw). Filled in by the conversion work.
