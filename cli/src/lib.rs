//! The taskrow operator commands, as a library (placeholder).
