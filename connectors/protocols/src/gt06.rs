//! GT06 / Concox (placeholder while the decoder is written).
