//! The end-to-end suite lives in tests/.
