//! Teltonika (placeholder while the decoder is written).
