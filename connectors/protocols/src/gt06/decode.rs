//! Routes a checked frame to the decoder of its type.
//!
//! The order of [`route`] is the order in which Traccar's decoder tries the
//! types: several numbers mean different things for different devices, and
//! the first matching rule wins.

use crate::model::{DeviceId, Record, RecordKind, attr};
use crate::wire::reader::{Reader, u16_at};
use crate::{DecodeError, Decoded};

use super::FRAME;
use super::frame::{self, Header};
use super::types::*;
use super::variant::{Model, Variant};
use super::{basic, extended, supported};

/// Everything a type decoder may consult about the frame and the session.
pub(crate) struct Ctx<'a> {
    pub frame: &'a [u8],
    pub header: Header,
    pub variant: Variant,
    pub model: Model,
    /// The device's clock offset east of UTC, from its login.
    pub offset_s: i64,
}

impl Ctx<'_> {
    pub(crate) fn kind(&self) -> u8 {
        self.header.kind
    }

    /// The length field minus the fixed part; negative when a device misuses it.
    pub(crate) fn data_length(&self) -> i64 {
        i64::try_from(self.header.length).unwrap_or(i64::MAX) - 5
    }

    /// The serial number, which sits six bytes before the end of the frame.
    pub(crate) fn serial(&self) -> Result<u16, DecodeError> {
        let at = self
            .frame
            .len()
            .checked_sub(6)
            .ok_or(DecodeError::Truncated {
                what: "GT06 serial",
            })?;
        u16_at(self.frame, at, FRAME)
    }

    /// A reader positioned after the type byte.
    pub(crate) fn reader(&self) -> Reader<'_> {
        Reader::at(self.frame, self.header.prefix_len() + 1)
    }
}

/// What the device must be sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Reply {
    #[default]
    None,
    /// 0x7878, the frame's type, the frame's serial.
    Ack,
    /// 0x7979, the frame's type, the frame's serial.
    AckExtended,
    /// 0x7878, the frame's type, the given index.
    AckIndex(u16),
    /// Wi-Fi reports are acknowledged with their own BCD time and no CRC.
    WifiTime([u8; 6]),
    /// The address request gets an "unknown address" answer.
    NoAddress,
}

/// The result of decoding one frame, before it is committed to the output.
#[derive(Debug, Default)]
pub(crate) struct Done {
    pub record: Option<Record>,
    pub reply: Reply,
    pub login: Option<Login>,
}

impl Done {
    pub(crate) fn record(record: Record, reply: Reply) -> Done {
        Done {
            record: Some(record),
            reply,
            login: None,
        }
    }

    pub(crate) fn reply(reply: Reply) -> Done {
        Done {
            record: None,
            reply,
            login: None,
        }
    }
}

/// A login's effect on the session.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Login {
    pub device: DeviceId,
    pub offset_s: i64,
}

/// Decodes `ctx.frame` and appends its record and reply to `out`.
pub(crate) fn decode(
    ctx: &Ctx<'_>,
    identified: bool,
    out: &mut Decoded,
) -> Result<Option<Login>, DecodeError> {
    let route = route(ctx);
    if route != Route::Login && !identified {
        return Err(DecodeError::NotIdentified);
    }
    let done = dispatch(ctx, route)?;
    write_reply(ctx, done.reply, &mut out.reply)?;
    out.records.extend(done.record);
    Ok(done.login)
}

fn write_reply(ctx: &Ctx<'_>, reply: Reply, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let kind = ctx.kind();
    match reply {
        Reply::None => {}
        Reply::Ack => frame::write_reply(out, false, kind, &[], ctx.serial()?),
        Reply::AckExtended => frame::write_reply(out, true, kind, &[], ctx.serial()?),
        Reply::AckIndex(index) => frame::write_reply(out, false, kind, &[], index),
        Reply::NoAddress => {
            const TEXT: &[u8] = b"NA&&NA&&0##";
            let mut content = [0u8; 5 + TEXT.len()];
            content[0] = TEXT.len() as u8;
            content[5..].copy_from_slice(TEXT);
            frame::write_reply(out, true, ADDRESS_RESPONSE, &content, 0);
        }
        Reply::WifiTime(time) => {
            out.extend_from_slice(&frame::SHORT_START);
            out.extend_from_slice(&[0, kind]);
            out.extend_from_slice(&time);
            out.extend_from_slice(&frame::STOP);
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Login,
    Heartbeat,
    AddressRequest,
    TimeRequest,
    X1Gps,
    Media,
    Wifi,
    ShortInfo,
    Sr411Mini,
    CellList,
    BluetoothClock,
    Text,
    Bms,
    LongStatus,
    IButton,
    LocationRfid,
    Supported,
    Alarm,
    TextInfo,
    Info,
    Az735,
    Obd,
    Modular,
    Serial,
    Peripheral,
    GpsLbs8,
    Other,
}

fn route(ctx: &Ctx<'_>) -> Route {
    let (kind, ext, v) = (ctx.kind(), ctx.header.extended, ctx.variant);
    let after_type = ctx.reader().remaining();
    match kind {
        LOGIN => Route::Login,
        HEARTBEAT => Route::Heartbeat,
        ADDRESS_REQUEST => Route::AddressRequest,
        TIME_REQUEST => Route::TimeRequest,
        X1_GPS if v != Variant::Sl4x => Route::X1Gps,
        X1_PHOTO_INFO => Route::Media,
        WIFI if v != Variant::Rfid => Route::Wifi,
        WIFI_2 | WIFI_4 => Route::Wifi,
        INFO if !ext => Route::ShortInfo,
        LBS_MULTIPLE_3 if v == Variant::Sr411Mini => Route::Sr411Mini,
        LBS_MULTIPLE_1 | LBS_MULTIPLE_2 | LBS_MULTIPLE_3 | LBS_EXTEND | LBS_WIFI | LBS_2
        | LBS_3 | WIFI_ALARM => Route::CellList,
        WIFI_3 if v != Variant::Lw4g => Route::CellList,
        WIFI_5 if !ext => Route::CellList,
        BLUETOOTH_CLOCK => Route::BluetoothClock,
        STRING => Route::Text,
        BMS => Route::Bms,
        STATUS if after_type == 22 => Route::LongStatus,
        IBUTTON => Route::IButton,
        LOCATION_RFID if v == Variant::Trx16i => Route::LocationRfid,
        _ if supported::is_supported(ctx)
            && !(ext && matches!(kind, GPS_LBS_STATUS_4 | STATUS_2)) =>
        {
            Route::Supported
        }
        _ => route_rest(kind),
    }
}

fn route_rest(kind: u8) -> Route {
    match kind {
        ALARM => Route::Alarm,
        STRING_INFO => Route::TextInfo,
        INFO => Route::Info,
        X1_PHOTO_DATA | MULTIMEDIA => Route::Media,
        AZ735_GPS | AZ735_ALARM => Route::Az735,
        OBD => Route::Obd,
        GPS_MODULAR => Route::Modular,
        SERIAL => Route::Serial,
        PERIPHERAL | DEVICE_STATUS => Route::Peripheral,
        GPS_LBS_8 => Route::GpsLbs8,
        _ => Route::Other,
    }
}

fn dispatch(ctx: &Ctx<'_>, route: Route) -> Result<Done, DecodeError> {
    match route {
        Route::Login => basic::login(ctx),
        Route::Heartbeat => basic::heartbeat(ctx),
        Route::AddressRequest => Ok(Done::reply(Reply::NoAddress)),
        // The answer is the current time, which a sans-IO decoder does not
        // know; the device falls back to its GPS clock.
        Route::TimeRequest => Ok(Done::default()),
        Route::X1Gps => basic::x1_gps(ctx),
        // Drover stores no media: don't request photos it would drop.
        Route::Media => Err(DecodeError::Unsupported(ctx.kind().into())),
        Route::Wifi => basic::wifi(ctx),
        Route::ShortInfo => basic::short_info(ctx),
        Route::Sr411Mini => basic::sr411_mini(ctx),
        Route::CellList => basic::cell_list(ctx),
        Route::BluetoothClock => basic::bluetooth_clock(ctx),
        Route::Text => basic::text(ctx),
        Route::Bms => basic::bms(ctx),
        Route::LongStatus => basic::long_status(ctx),
        Route::IButton => basic::ibutton(ctx),
        Route::LocationRfid => basic::location_rfid(ctx),
        Route::Supported => supported::decode(ctx),
        Route::Alarm => basic::alarm(ctx),
        Route::TextInfo => extended::text_info(ctx),
        Route::Info => extended::info(ctx),
        Route::Az735 => extended::az735(ctx),
        Route::Obd => extended::obd(ctx),
        Route::Modular => extended::modular(ctx),
        Route::Serial => extended::serial(ctx),
        Route::Peripheral => extended::peripheral(ctx),
        Route::GpsLbs8 => extended::gps_lbs_8(ctx),
        Route::Other => other(ctx),
    }
}

/// Types nobody decodes are still acknowledged on 0x7878, as Traccar does,
/// so devices don't resend them forever; commands echoed back are not.
fn other(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let kind = ctx.kind();
    if ctx.header.extended {
        return Err(DecodeError::Unsupported(kind.into()));
    }
    let data = usize::try_from(ctx.data_length()).unwrap_or(0);
    ctx.reader().skip(data, FRAME)?;
    let echo = matches!(kind, COMMAND_0 | COMMAND_1 | COMMAND_2);
    Ok(Done::reply(if echo { Reply::None } else { Reply::Ack }))
}

/// A record with no position of its own (time 0 when the frame has none).
pub(crate) fn status_record(kind: RecordKind, time_ms: i64) -> Record {
    Record {
        time_ms,
        kind,
        ..Record::default()
    }
}

/// Sets the kind of a record that may or may not have a fix: an alarm frame
/// that carries an alarm is an alarm, else a position when it has a fix.
pub(crate) fn settle_kind(record: &mut Record, alarm_frame: bool, otherwise: RecordKind) {
    record.kind = if alarm_frame && record.attributes.get(attr::ALARM).is_some() {
        RecordKind::Alarm
    } else if record.fix.is_some() {
        RecordKind::Position
    } else {
        otherwise
    };
}
