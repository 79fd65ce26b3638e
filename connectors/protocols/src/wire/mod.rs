//! Wire-format primitives every protocol needs, kept here so a bounds or
//! Java-compatibility fix lands in all decoders at once.

pub(crate) mod reader;
pub(crate) mod text;
