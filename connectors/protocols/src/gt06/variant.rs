//! Device families that reuse a message type with a different layout.
//!
//! Some are recognised from the frame alone (type and length), others only
//! from the device model configured for the device.

use super::frame::Header;
use super::types::*;

/// A layout recognised from the frame's own type and length (Traccar's
/// variant detection, which runs per frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    Vxt01,
    WanwayS20,
    Sr411Mini,
    Gt06eCard,
    Benway,
    S5,
    Space10x,
    Standard,
    Obd6,
    Wetrust,
    Jc400,
    Sl4x,
    Seeworld,
    Rfid,
    Lw4g,
    Trx16i,
}

impl Variant {
    pub(crate) fn detect(header: &Header, frame: &[u8]) -> Variant {
        if header.extended {
            return Variant::Standard;
        }
        let jc400_marker = frame.get(4..6) == Some(&[0xff, 0xff][..]);
        match (header.kind, header.length) {
            (GPS_LBS_1 | GPS_LBS_STATUS_1, 0x24) => Variant::Vxt01,
            (LBS_MULTIPLE_3, 0x31) => Variant::WanwayS20,
            (LBS_MULTIPLE_3, 0x2e) => Variant::Sr411Mini,
            (GPS_LBS_1, 0x71..) => Variant::Gt06eCard,
            (GPS_LBS_1, 0x21) => Variant::Benway,
            (GPS_LBS_1, 0x2b) => Variant::S5,
            (LBS_STATUS, 0x17..) => Variant::Space10x,
            (STATUS, 0x13) => Variant::Obd6,
            (GPS_LBS_1, 0x29) => Variant::Wetrust,
            (ALARM, _) if jc400_marker => Variant::Jc400,
            (LBS_3, 0x37) | (GPS_LBS_5, 0x2a) | (GPS_LBS_STATUS_4, 0x27 | 0x29) => Variant::Sl4x,
            (GPS_LBS_2, 0x2f) | (GPS_LBS_STATUS_1, 0x26) | (STATUS_3, 0x0c | 0x18) => {
                Variant::Seeworld
            }
            (GPS_LBS_RFID, 0x28) => Variant::Rfid,
            (GPS_LBS_STATUS_5, 0x40) => Variant::Lw4g,
            (LOCATION_RFID, 0x35) | (GPS_LBS_STATUS_1, 0x2d) => Variant::Trx16i,
            _ => Variant::Standard,
        }
    }
}

/// What the configured device model changes in decoding.
///
/// Built once from the model name, so decoding compares flags, not strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Model {
    /// LW… models (LW4G and friends): other alarm codes, power in status.
    pub(crate) lw: bool,
    /// SEEWORLD: power instead of an alarm in status frames.
    pub(crate) seeworld: bool,
    /// NT11/NT20/…/XT40: 0x22 and 0x25 carry IMEI, power, hours, driver.
    pub(crate) nt: bool,
    /// VL103/LL303/VL512/G18: other alarm codes.
    pub(crate) vl: bool,
    /// QH302R: 0x12 starts with the IMEI.
    pub(crate) qh302r: bool,
    /// R11: status frames carry power instead of a battery level.
    pub(crate) r11: bool,
}

const NT_MODELS: [&str; 7] = ["NT11", "NT20", "NT26", "NT40", "NT46", "VL100", "XT40"];
const VL_MODELS: [&str; 4] = ["VL103", "LL303", "VL512", "G18"];

impl Model {
    /// Flags for a model name as configured (case does not matter).
    pub(crate) fn from_name(name: &str) -> Model {
        let upper = name.trim().to_ascii_uppercase();
        let is = |list: &[&str]| list.contains(&upper.as_str());
        Model {
            lw: upper.starts_with("LW"),
            seeworld: upper == "SEEWORLD",
            nt: is(&NT_MODELS),
            vl: is(&VL_MODELS),
            qh302r: upper == "QH302R",
            r11: upper == "R11",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_are_case_insensitive() {
        assert!(Model::from_name("vl103").vl);
        assert!(Model::from_name("LW4G-4B").lw);
        assert!(Model::from_name("xt40").nt);
        assert_eq!(Model::from_name("GT06N"), Model::default());
    }
}
