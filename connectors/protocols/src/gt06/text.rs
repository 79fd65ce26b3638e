//! Text only GT06 devices send, decoded as Java would (so results match
//! Traccar's); the helpers every protocol needs are in `crate::wire::text`.

/// Bytes as UTF-16BE, broken sequences becoming U+FFFD.
pub(crate) fn utf16be(bytes: &[u8]) -> String {
    let units = bytes.chunks(2).map(|c| match c {
        [hi, lo] => u16::from_be_bytes([*hi, *lo]),
        _ => 0xfffd,
    });
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// `Character.isLetter` for a Latin-1 code point.
pub(crate) fn is_latin1_letter(b: u8) -> bool {
    b.is_ascii_alphabetic()
        || matches!(b, 0xaa | 0xb5 | 0xba | 0xc0..=0xd6 | 0xd8..=0xf6 | 0xf8..=0xff)
}

/// Java's `String.split(sep)`: like `str::split`, minus trailing empty parts.
pub(crate) fn java_split(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let trimmed = s.trim_end_matches(sep);
    let parts = if trimmed.is_empty() && !s.is_empty() {
        None
    } else {
        Some(trimmed)
    };
    parts.into_iter().flat_map(move |t| t.split(sep))
}

/// A cursor for the fixed text layouts below; each step consumes what it
/// matched or fails, which is all the regular expressions they replace need.
struct Scan<'a> {
    rest: &'a str,
}

impl<'a> Scan<'a> {
    fn lit(&mut self, text: &str) -> Option<()> {
        self.rest = self.rest.strip_prefix(text)?;
        Some(())
    }

    fn take(&mut self, n: usize) -> Option<&'a str> {
        let head = self.rest.get(..n)?;
        self.rest = self.rest.get(n..)?;
        Some(head)
    }

    fn digits(&mut self) -> Option<&'a str> {
        let n = self.rest.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 { None } else { self.take(n) }
    }

    fn exact_digits(&mut self, n: usize) -> Option<i64> {
        let head = self.take(n)?;
        if head.bytes().all(|b| b.is_ascii_digit()) {
            head.parse().ok()
        } else {
            None
        }
    }

    /// `\d+\.\d+`
    fn decimal(&mut self) -> Option<f64> {
        let start = self.rest;
        self.digits()?;
        self.lit(".")?;
        self.digits()?;
        start.get(..start.len() - self.rest.len())?.parse().ok()
    }

    fn one_of(&mut self, choices: &str) -> Option<char> {
        let c = self.rest.chars().next().filter(|c| choices.contains(*c))?;
        self.rest = self.rest.get(c.len_utf8()..)?;
        Some(c)
    }

    /// `[^,]+`
    fn field(&mut self) -> Option<&'a str> {
        let n = self.rest.find(',').unwrap_or(self.rest.len());
        if n == 0 { None } else { self.take(n) }
    }

    fn spaces(&mut self) -> Option<()> {
        let n = self.rest.bytes().take_while(|b| *b == b' ').count();
        if n == 0 { None } else { self.take(n).map(drop) }
    }

    fn hex2(&mut self) -> Option<()> {
        let head = self.take(2)?;
        head.bytes().all(|b| b.is_ascii_hexdigit()).then_some(())
    }

    fn end(&self) -> Option<()> {
        self.rest.is_empty().then_some(())
    }
}

/// The location a device answers to a "where are you" command.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TextLocation {
    pub lat: f64,
    pub lon: f64,
    pub course: f64,
    /// As sent; Traccar reads it as knots.
    pub speed: f64,
    /// Fields of a UTC date and time.
    pub time: [i64; 6],
}

/// Parses a whole `Current position!Lat:N54.7,Lon:E25.2,Course:126.53,`
/// `Speed:0.0,DateTime:2017-05-26  10:27:47` (one line, no comma break).
pub(crate) fn text_location(data: &str) -> Option<TextLocation> {
    let mut s = Scan { rest: data };
    s.lit("Current position!Lat:")?;
    let lat_sign = if s.one_of("NS")? == 'S' { -1.0 } else { 1.0 };
    let lat = s.decimal()? * lat_sign;
    s.lit(",Lon:")?;
    let lon_sign = if s.one_of("EW")? == 'W' { -1.0 } else { 1.0 };
    let lon = s.decimal()? * lon_sign;
    s.lit(",Course:")?;
    let course = s.decimal()?;
    s.lit(",Speed:")?;
    let speed = s.decimal()?;
    s.lit(",DateTime:")?;
    let year = s.exact_digits(4)?;
    s.lit("-")?;
    let month = s.exact_digits(2)?;
    s.lit("-")?;
    let day = s.exact_digits(2)?;
    s.spaces()?;
    let hour = s.exact_digits(2)?;
    s.lit(":")?;
    let minute = s.exact_digits(2)?;
    s.lit(":")?;
    let second = s.exact_digits(2)?;
    s.end()?;
    Some(TextLocation {
        lat,
        lon,
        course,
        speed,
        time: [year, month, day, hour, minute, second],
    })
}

/// Temperature and measured fuel level from a `!AIOIL,…` sensor line.
pub(crate) fn fuel_sensor(data: &str) -> Option<(f64, f64)> {
    let mut s = Scan { rest: data };
    s.lit("!AIOIL,")?;
    s.digits()?;
    s.lit(",")?;
    s.decimal()?;
    s.lit(",")?;
    let temperature = s.decimal()?;
    s.lit(",")?;
    s.field()?;
    s.lit(",")?;
    s.exact_digits(4)?;
    s.lit(",")?;
    let level = s.decimal()?;
    s.lit(",")?;
    s.one_of("01")?;
    s.lit(",")?;
    s.digits()?;
    s.lit(",")?;
    s.hex2()?;
    s.end()?;
    Some((temperature, level))
}

// invariant: test code (cfg(test) only): the unwraps and expects below never see device input.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_decoding_rules() {
        assert_eq!(utf16be(&[0, b'O', 0, b'K', 0xd8]), "OK\u{fffd}");
        assert_eq!(
            java_split("a=1;;b=;", ';').collect::<Vec<_>>(),
            ["a=1", "", "b="]
        );
        assert_eq!(java_split("4A3=", '=').collect::<Vec<_>>(), ["4A3"]);
        assert_eq!(java_split(";;", ';').count(), 0);
    }

    #[test]
    fn text_location_needs_the_whole_line() {
        let line = "Current position!Lat:N54.739332,Lon:E25.273270,Course:126.53,Speed:0.0000,DateTime:2017-05-26  10:27:47";
        let loc = text_location(line).unwrap();
        assert_eq!(
            (loc.lat, loc.lon, loc.course),
            (54.739332, 25.27327, 126.53)
        );
        assert_eq!(loc.time, [2017, 5, 26, 10, 27, 47]);
        assert!(text_location(&line.replace("N54", "S54")).unwrap().lat < 0.0);
        assert_eq!(text_location(&format!("{line}x")), None);
        assert_eq!(text_location("Current position!"), None);
    }

    #[test]
    fn fuel_sensor_line() {
        let line = "!AIOIL,02,008.290,029.600,519J,0400,008.430,0,00,AB";
        assert_eq!(fuel_sensor(line), Some((29.6, 8.43)));
        assert_eq!(fuel_sensor(&line.replace(",0,00", ",2,00")), None);
    }
}
