//! Reading positions back with InfluxQL (`GET /query`, times as ms epochs).
//!
//! Every value that reaches a query is quoted here: identifiers with
//! [`quote_ident`], strings with [`quote_string`], so a device id such as
//! `x' OR '1'='1` is only ever a string to compare with.

use drover_protocols::model::{Attributes, Fix, Record, RecordKind, Value};
use reqwest::StatusCode;
use serde::Deserialize;

use crate::client::{InfluxClient, read_error, unavailable};
use crate::{InfluxError, line};

/// InfluxDB's answer to `/query`.
#[derive(Debug, Deserialize)]
pub(super) struct QueryResponse {
    #[serde(default)]
    results: Vec<StatementResult>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StatementResult {
    #[serde(default)]
    series: Vec<Series>,
    error: Option<String>,
}

impl QueryResponse {
    /// Every series of every statement.
    pub(super) fn series(self) -> impl Iterator<Item = Series> {
        self.results.into_iter().flat_map(|r| r.series)
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Series {
    /// The group's tags, with `GROUP BY`.
    #[serde(default)]
    tags: std::collections::HashMap<String, String>,
    pub(super) columns: Vec<String>,
    #[serde(default)]
    pub(super) values: Vec<Vec<serde_json::Value>>,
}

impl InfluxClient {
    /// The positions of `device` with `from_ms <= time < to_ms` and, when
    /// paging, `time > after_ms` (the time of the last record of the previous
    /// page), oldest first, at most `limit`. Attributes come back with the
    /// types InfluxDB's JSON gives them: a float attribute with an integral
    /// value (12.0) reads as `Value::Int(12)`.
    pub async fn positions(
        &self,
        device: &str,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
        after_ms: Option<i64>,
    ) -> Result<Vec<Record>, InfluxError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let after = after_ms
            .map(|t| format!(" AND time > {t}ms"))
            .unwrap_or_default();
        let q = format!(
            "SELECT * FROM {} WHERE \"device\" = {} AND time >= {from_ms}ms AND time < {to_ms}ms{after} \
             ORDER BY time ASC LIMIT {limit}",
            self.measurement(line::POSITION),
            quote_string(device),
        );
        self.select_positions(&q).await
    }

    /// The most recent position of `device`, if it has any.
    pub async fn latest_position(&self, device: &str) -> Result<Option<Record>, InfluxError> {
        let q = format!(
            "SELECT * FROM {} WHERE \"device\" = {} ORDER BY time DESC LIMIT 1",
            self.measurement(line::POSITION),
            quote_string(device),
        );
        Ok(self.select_positions(&q).await?.pop())
    }

    /// The most recent position of every device, one series per device.
    pub async fn latest_positions(&self) -> Result<Vec<(String, Record)>, InfluxError> {
        let q = format!(
            "SELECT * FROM {} GROUP BY \"device\" ORDER BY time DESC LIMIT 1",
            self.measurement(line::POSITION),
        );
        let response = self.execute(&q, "GET").await?;
        let mut latest = Vec::new();
        for series in response.results.into_iter().flat_map(|r| r.series) {
            let Some(device) = series.tags.get("device") else {
                continue;
            };
            if let Some(row) = series.values.first() {
                latest.push((device.clone(), position_from_row(&series.columns, row)?));
            }
        }
        Ok(latest)
    }

    async fn select_positions(&self, q: &str) -> Result<Vec<Record>, InfluxError> {
        let response = self.execute(q, "GET").await?;
        let mut records = Vec::new();
        for result in response.results {
            for series in result.series {
                for row in &series.values {
                    records.push(position_from_row(&series.columns, row)?);
                }
            }
        }
        Ok(records)
    }

    /// `"rp"."measurement"`, or just the measurement for the default policy.
    pub(super) fn measurement(&self, name: &str) -> String {
        match &self.config.retention_policy {
            Some(rp) => format!("{}.{}", quote_ident(rp), quote_ident(name)),
            None => quote_ident(name),
        }
    }

    /// Runs one InfluxQL statement on the configured database and returns the
    /// answer, with statement errors turned into [`InfluxError`]s.
    pub(super) async fn execute(
        &self,
        q: &str,
        method: &str,
    ) -> Result<QueryResponse, InfluxError> {
        let mut url = self.query_url.clone();
        url.query_pairs_mut()
            .append_pair("db", &self.config.database)
            .append_pair("epoch", "ms")
            .append_pair("q", q);
        let request = if method == "POST" {
            self.http.post(url)
        } else {
            self.http.get(url)
        };
        let response = self.authorize(request).send().await.map_err(unavailable)?;
        let status = response.status();
        if status == StatusCode::BAD_REQUEST {
            return Err(InfluxError::Query {
                message: read_error(response).await,
            });
        }
        if !status.is_success() {
            return Err(self.error_for(status, read_error(response).await, 0));
        }
        let body = response.bytes().await.map_err(unavailable)?;
        let parsed: QueryResponse =
            serde_json::from_slice(&body).map_err(|e| InfluxError::Decode(e.to_string()))?;
        self.check_errors(parsed)
    }

    fn check_errors(&self, response: QueryResponse) -> Result<QueryResponse, InfluxError> {
        let statement_error = response.results.iter().find_map(|r| r.error.clone());
        match response.error.clone().or(statement_error) {
            None => Ok(response),
            Some(message) if message.starts_with("database not found") => {
                Err(InfluxError::DatabaseNotFound {
                    database: self.config.database.clone(),
                })
            }
            Some(message) => Err(InfluxError::Query { message }),
        }
    }
}

/// A record rebuilt from one row of `SELECT * FROM position`.
fn position_from_row(columns: &[String], row: &[serde_json::Value]) -> Result<Record, InfluxError> {
    let mut record = Record {
        kind: RecordKind::Position,
        ..Record::default()
    };
    let mut fix = Fix::default();
    for (column, value) in columns.iter().zip(row) {
        if value.is_null() {
            continue; // a field this point does not have
        }
        let number = || value.as_f64().unwrap_or(f64::NAN);
        match column.as_str() {
            "time" => {
                record.time_ms = value
                    .as_i64()
                    .ok_or_else(|| InfluxError::Decode(format!("time {value} is not ms")))?;
            }
            "device" | "protocol" => {} // tags, known to the caller
            "lat" => fix.lat = number(),
            "lon" => fix.lon = number(),
            "speed_kmh" => fix.speed_kmh = number(),
            "course_deg" => fix.course_deg = number(),
            "altitude_m" => fix.altitude_m = value.as_f64(),
            "satellites" => fix.satellites = value.as_u64().and_then(|n| u8::try_from(n).ok()),
            "valid" => fix.valid = value.as_bool().unwrap_or(false),
            "archived" => record.archived = value.as_bool().unwrap_or(false),
            "kind" => {
                if let Some(kind) = value.as_str().and_then(line::parse_kind) {
                    record.kind = kind;
                }
            }
            name => set_attribute(&mut record.attributes, name, value),
        }
    }
    record.fix = Some(fix);
    Ok(record)
}

fn set_attribute(attributes: &mut Attributes, name: &str, value: &serde_json::Value) {
    let value = match value {
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::String(s) => Value::Text(s.clone()),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        _ => return,
    };
    attributes.set(name.to_owned(), value);
}

/// An InfluxQL identifier: double-quoted, with `\` and `"` escaped.
pub(super) fn quote_ident(name: &str) -> String {
    quote(name, '"')
}

/// An InfluxQL string literal: single-quoted, with `\`, `'` and newlines escaped.
pub(super) fn quote_string(value: &str) -> String {
    quote(value, '\'')
}

fn quote(text: &str, mark: char) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(mark);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c == mark => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(mark);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_backslash_quote_and_newline() {
        assert_eq!(quote_string(r#"a b,c=d"'\"#), r#"'a b,c=d"\'\\'"#);
        assert_eq!(quote_string("x' OR '1'='1"), r"'x\' OR \'1\'=\'1'");
        assert_eq!(quote_string("a\nb"), r"'a\nb'");
        assert_eq!(quote_ident(r#"my "db"\x"#), r#""my \"db\"\\x""#);
    }

    #[test]
    fn rows_become_positions_with_attributes() {
        let answer = r#"{"results":[{"statement_id":0,"series":[{"name":"position",
            "columns":["time","archived","course_deg","device","ignition","kind","lat","lon","power","protocol","satellites","speed_kmh","valid","altitude_m"],
            "values":[[1000,false,90,"d1",true,"alarm",48.5,2,12.5,"gt06",9,0,true,null]]}]}]}"#;
        let parsed: QueryResponse = serde_json::from_str(answer).unwrap();
        let series = &parsed.results[0].series[0];
        let record = position_from_row(&series.columns, &series.values[0]).unwrap();
        assert_eq!(record.time_ms, 1000);
        assert_eq!(record.kind, RecordKind::Alarm);
        let fix = record.fix.unwrap();
        assert_eq!((fix.lat, fix.lon, fix.course_deg), (48.5, 2.0, 90.0));
        assert_eq!(
            (fix.satellites, fix.altitude_m, fix.valid),
            (Some(9), None, true)
        );
        assert_eq!(record.attributes.get("ignition"), Some(&Value::Bool(true)));
        assert_eq!(record.attributes.get("power"), Some(&Value::Float(12.5)));
        assert_eq!(record.attributes.len(), 2);
    }
}
