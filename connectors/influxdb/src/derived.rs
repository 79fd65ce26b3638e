//! Measurements the node derives from records (`trip`, `alert`): written as
//! [`Point`]s and read back as [`Row`]s, field by field, since their
//! meaning is the node's, not this connector's.

use crate::client::InfluxClient;
use crate::line::{self, Point};
use crate::query::{quote_ident, quote_string};
use crate::{InfluxError, WriteReport};

/// One point read back: its time and fields by name (tags included).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    pub time_ms: i64,
    fields: Vec<(String, serde_json::Value)>,
}

impl Row {
    /// A row of a query answer: `columns` with `values` (`time` in ms).
    pub fn from_columns(
        columns: &[String],
        values: &[serde_json::Value],
    ) -> Result<Row, InfluxError> {
        let mut row = Row::default();
        for (column, value) in columns.iter().zip(values) {
            if column == "time" {
                row.time_ms = value
                    .as_i64()
                    .ok_or_else(|| InfluxError::Decode(format!("time {value} is not ms")))?;
            } else if !value.is_null() {
                row.fields.push((column.clone(), value.clone()));
            }
        }
        Ok(row)
    }

    fn get(&self, name: &str) -> Option<&serde_json::Value> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value)
    }

    pub fn f64(&self, name: &str) -> Option<f64> {
        self.get(name)?.as_f64()
    }

    pub fn i64(&self, name: &str) -> Option<i64> {
        self.get(name)?.as_i64()
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name)?.as_str()
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name)?.as_bool()
    }
}

/// What [`InfluxClient::rows`] reads.
#[derive(Debug, Clone, Copy)]
pub struct RowQuery<'a> {
    pub measurement: &'a str,
    /// Tags or string fields that must have these values.
    pub equal: &'a [(&'a str, &'a str)],
    /// Inclusive, ms.
    pub from_ms: i64,
    /// Exclusive, ms.
    pub to_ms: i64,
    pub limit: usize,
    pub offset: usize,
}

impl InfluxClient {
    /// Writes `points` in one request (they are few: what a tick derived).
    /// A point line protocol cannot express is skipped with a warning.
    pub async fn write_points(&self, points: &[Point<'_>]) -> Result<WriteReport, InfluxError> {
        let mut body = String::new();
        let mut report = WriteReport {
            messages: points.len(),
            ..WriteReport::default()
        };
        for point in points {
            match line::encode_point(point, &mut body) {
                Ok(lines) => report.lines += lines,
                Err(why) => {
                    report.unencodable += 1;
                    tracing::warn!(device = ?point.device, measurement = point.measurement,
                        reason = %why, "point not written to InfluxDB");
                }
            }
        }
        if report.lines > 0 {
            self.send_lines(&body, report.lines, &mut report).await?;
        }
        Ok(report)
    }

    /// The points of `measurement` with `from_ms <= time < to_ms` whose
    /// tags and string fields equal `equal` (name, value), oldest first,
    /// at most `limit` after skipping `offset`.
    pub async fn rows(&self, query: RowQuery<'_>) -> Result<Vec<Row>, InfluxError> {
        let RowQuery {
            measurement,
            equal,
            from_ms,
            to_ms,
            limit,
            offset,
        } = query;
        if limit == 0 || from_ms >= to_ms {
            return Ok(Vec::new());
        }
        let mut conditions = String::new();
        for (name, value) in equal {
            conditions.push_str(&format!(
                "{} = {} AND ",
                quote_ident(name),
                quote_string(value)
            ));
        }
        let offset = if offset > 0 {
            format!(" OFFSET {offset}")
        } else {
            String::new()
        };
        let q = format!(
            "SELECT * FROM {} WHERE {conditions}time >= {from_ms}ms AND time < {to_ms}ms \
             ORDER BY time ASC LIMIT {limit}{offset}",
            self.measurement(measurement),
        );
        let response = self.execute(&q, "GET").await?;
        let mut rows = Vec::new();
        for series in response.series() {
            for values in &series.values {
                rows.push(Row::from_columns(&series.columns, values)?);
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_protocols::model::Value;

    #[test]
    fn points_are_lines_with_a_device_tag() {
        let fields = [
            ("distance_m", Value::Float(1234.5)),
            ("idle_ms", Value::Int(60_000)),
            ("open", Value::Bool(false)),
            ("note", Value::Text("a \"b\"".to_owned())),
            ("skipped", Value::Float(f64::NAN)),
        ];
        let point = Point {
            measurement: "trip",
            device: "dev 1",
            tags: &[],
            time_ms: 1_000,
            fields: &fields,
        };
        let mut out = String::new();
        assert_eq!(line::encode_point(&point, &mut out), Ok(1));
        assert_eq!(
            out,
            "trip,device=dev\\ 1 distance_m=1234.5,idle_ms=60000i,open=false,note=\"a \\\"b\\\"\" 1000\n"
        );
        let empty = Point {
            fields: &[("x", Value::Float(f64::NAN))],
            ..point
        };
        assert_eq!(line::encode_point(&empty, &mut out), Ok(0));
        assert!(
            line::encode_point(
                &Point {
                    device: "",
                    ..point
                },
                &mut out
            )
            .is_err()
        );
        assert_eq!(out.lines().count(), 1);
    }

    #[test]
    fn rows_keep_fields_by_name() {
        let columns = ["time", "device", "distance_m", "end_ms"].map(str::to_owned);
        let values = serde_json::json!([5, "d", 12.5, null]);
        let row = Row::from_columns(&columns, values.as_array().unwrap()).unwrap();
        assert_eq!(row.time_ms, 5);
        assert_eq!(row.str("device"), Some("d"));
        assert_eq!(row.f64("distance_m"), Some(12.5));
        assert_eq!(row.i64("end_ms"), None);
    }
}
