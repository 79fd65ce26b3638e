//! Alarm codes and the terminal-information status byte.

use crate::DecodeError;
use crate::model::{Attributes, Value, attr};
use crate::wire::reader::Reader;

use super::FRAME;
use super::variant::{Model, Variant};

// Traccar's alarm names, which integrations match on.
pub(crate) const GENERAL: &str = "general";
pub(crate) const SOS: &str = "sos";
pub(crate) const VIBRATION: &str = "vibration";
pub(crate) const OVERSPEED: &str = "overspeed";
pub(crate) const FALL_DOWN: &str = "fallDown";
pub(crate) const LOW_POWER: &str = "lowPower";
pub(crate) const LOW_BATTERY: &str = "lowBattery";
pub(crate) const POWER_OFF: &str = "powerOff";
pub(crate) const POWER_ON: &str = "powerOn";
pub(crate) const DOOR: &str = "door";
pub(crate) const LOCK: &str = "lock";
pub(crate) const UNLOCK: &str = "unlock";
pub(crate) const GEOFENCE: &str = "geofence";
pub(crate) const GEOFENCE_ENTER: &str = "geofenceEnter";
pub(crate) const GEOFENCE_EXIT: &str = "geofenceExit";
pub(crate) const ACCIDENT: &str = "accident";
pub(crate) const TOW: &str = "tow";
pub(crate) const IDLE: &str = "idle";
pub(crate) const ACCELERATION: &str = "hardAcceleration";
pub(crate) const BRAKING: &str = "hardBraking";
pub(crate) const CORNERING: &str = "hardCornering";
pub(crate) const POWER_CUT: &str = "powerCut";
pub(crate) const JAMMING: &str = "jamming";
pub(crate) const TEMPERATURE: &str = "temperature";
pub(crate) const FUEL_LEAK: &str = "fuelLeak";
pub(crate) const TAMPERING: &str = "tampering";
pub(crate) const REMOVING: &str = "removing";

/// Adds an alarm, keeping earlier ones: one frame can raise several, and
/// Traccar joins them with commas. Unlike Traccar, the same alarm raised by
/// two fields of a frame is listed once.
pub(crate) fn add(attrs: &mut Attributes, alarm: Option<&'static str>) {
    let Some(alarm) = alarm else { return };
    match attrs.get(attr::ALARM) {
        Some(Value::Text(earlier)) if earlier.split(',').any(|a| a == alarm) => {}
        Some(Value::Text(earlier)) => {
            let joined = format!("{earlier},{alarm}");
            attrs.set(attr::ALARM, joined);
        }
        _ => attrs.set(attr::ALARM, alarm),
    }
}

/// The alarm byte of status frames (with the language nibble as bits 8..12
/// where the device uses it to extend the code).
pub(crate) fn from_code(code: u32, model: Model, variant: Variant) -> Option<&'static str> {
    let trx16i = variant == Variant::Trx16i;
    Some(match code {
        0x01 => SOS,
        0x02 => POWER_CUT,
        0x03 => VIBRATION,
        0x04 => GEOFENCE_ENTER,
        0x05 => GEOFENCE_EXIT,
        0x06 => OVERSPEED,
        0x09 if trx16i => GEOFENCE,
        0x09 if model.vl => TOW,
        0x09 => VIBRATION,
        0x0e if trx16i => LOW_POWER,
        0x0e | 0x0f => LOW_BATTERY,
        0x11 => POWER_OFF,
        0x0c | 0x13 | 0x25 | 0x32 => TAMPERING,
        0x14 => DOOR,
        0x18 if model.lw => ACCIDENT,
        0x18 => REMOVING,
        0x19 if model.lw => ACCELERATION,
        0x19 => LOW_BATTERY,
        0x1a | 0x27 | 0xf1 => BRAKING,
        0x1b | 0x2a | 0x2b | 0x2e => CORNERING,
        0x23 => FALL_DOWN,
        0x26 | 0xf0 => ACCELERATION,
        0x28 if model.seeworld => CORNERING,
        0x28 if model.vl => POWER_OFF,
        0x28 => BRAKING,
        0x29 if model.seeworld => ACCIDENT,
        0x29 => ACCELERATION,
        0x2c | 0xf2 => ACCIDENT,
        0x30 if model.vl => BRAKING,
        0x30 => JAMMING,
        0x33 => LOCK,
        0x34 => UNLOCK,
        0x53 => FUEL_LEAK,
        0x5b | 0x5c => TEMPERATURE,
        0xc9 => IDLE,
        0x0107 | 0x010b => JAMMING,
        _ => return None,
    })
}

/// Event codes of the JC100/JC400 alarm frame (0x95).
pub(crate) fn from_event(event: u8, extended: bool) -> Option<&'static str> {
    Some(match event {
        0x01 if extended => SOS,
        0x01 => GENERAL,
        0x0e => LOW_POWER,
        0x76 => TEMPERATURE,
        0x80 => VIBRATION,
        0x87 => OVERSPEED,
        0x88 => POWER_CUT,
        0x90 => ACCELERATION,
        0x91 => BRAKING,
        0x92 => CORNERING,
        0x93 => ACCIDENT,
        _ => return None,
    })
}

/// Event codes of the modular frame's event module (0x70, module 0x34).
pub(crate) fn from_module_event(event: u8) -> Option<&'static str> {
    Some(match event {
        0x10 => DOOR,
        0x12 => REMOVING,
        0x14 => GEOFENCE_ENTER,
        0x15 => GEOFENCE_EXIT,
        0x16 => TEMPERATURE,
        0x1a => LOW_BATTERY,
        0x1b => OVERSPEED,
        0x1c => POWER_ON,
        0x1d => POWER_OFF,
        0x20 => VIBRATION,
        0x21 => POWER_CUT,
        0x23 => TAMPERING,
        _ => return None,
    })
}

/// The terminal-information byte: ACC, charging, cut-off relay, and an alarm
/// in bits 3..6.
pub(crate) fn status_byte(
    r: &mut Reader<'_>,
    variant: Variant,
    attrs: &mut Attributes,
) -> Result<(), DecodeError> {
    let status = r.u8(FRAME)?;
    attrs.set("status", i64::from(status));
    attrs.set(attr::IGNITION, status & 0x02 != 0);
    attrs.set(attr::CHARGE, status & 0x04 != 0);
    attrs.set("blocked", status & 0x80 != 0);
    let alarm = match (status >> 3) & 0x07 {
        1 => Some(VIBRATION),
        2 => Some(POWER_CUT),
        3 => Some(LOW_BATTERY),
        4 => Some(SOS),
        6 => Some(GEOFENCE),
        7 if variant == Variant::Vxt01 => Some(OVERSPEED),
        7 => Some(REMOVING),
        _ => None,
    };
    add(attrs, alarm);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarms_accumulate() {
        let mut attrs = Attributes::new();
        add(&mut attrs, Some(SOS));
        add(&mut attrs, None);
        add(&mut attrs, Some(POWER_CUT));
        add(&mut attrs, Some(SOS));
        assert_eq!(attrs.get(attr::ALARM), Some(&Value::from("sos,powerCut")));
    }

    #[test]
    fn model_changes_the_meaning_of_a_code() {
        let std = Variant::Standard;
        assert_eq!(from_code(0x09, Model::default(), std), Some(VIBRATION));
        assert_eq!(from_code(0x09, Model::from_name("VL103"), std), Some(TOW));
        assert_eq!(
            from_code(0x19, Model::from_name("LW4G"), std),
            Some(ACCELERATION)
        );
        assert_eq!(
            from_code(0x0e, Model::default(), Variant::Trx16i),
            Some(LOW_POWER)
        );
        assert_eq!(from_code(0x00, Model::default(), std), None);
    }
}
