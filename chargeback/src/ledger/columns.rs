//! The ledger columns a scan reads, taken by name from a record batch and typed once per
//! batch, and one [`Row`] of them. Pure. A missing or mistyped column is an error naming it
//! (a file rewritten by a tool that changed a type is refused, not misread).

use arrow_array::cast::AsArray;
use arrow_array::types::{
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, TimeUnit};
use jiff::Timestamp;
use tally_config::tariff::Units;

use super::Row;

/// The columns of schema version 1 a scan projects (the rest stay unread on disk); the first
/// three are the ids, which [`super::Projection::WithoutIds`] leaves unread too.
pub(super) const PROJECTED: [&str; 26] = [
    "stream_id",
    "request_id",
    "charge_id",
    "time",
    "team",
    "tenant",
    "workflow",
    "operation",
    "model_id",
    "model",
    "region",
    "service_tier",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "unit_requests",
    "unit_images",
    "unit_video_seconds",
    "unit_guardrail_text_units",
    "status",
    "outcome",
    "cost_nanos",
    "unpriced",
    "price_source",
];

/// One batch's columns, typed.
pub(super) struct Columns<'b> {
    /// `stream_id`, `request_id`, `charge_id`: absent when the scan does not project them.
    ids: [Option<&'b StringArray>; 3],
    /// `team` … `service_tier`.
    text: [&'b StringArray; 8],
    counts: [&'b Int64Array; 9],
    /// Raw times and nanoseconds per unit (the exporter writes microseconds; a compaction
    /// tool may write another unit).
    times: &'b [i64],
    nanos_per_tick: i128,
    status: &'b Int32Array,
    outcome: &'b StringArray,
    cost_nanos: &'b Int64Array,
    unpriced: &'b BooleanArray,
    price_source: &'b StringArray,
}

fn column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b dyn Array, String> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| format!("it has no {name:?} column"))
}

fn typed<'b, T: 'static>(batch: &'b RecordBatch, name: &str, want: &str) -> Result<&'b T, String> {
    let c = column(batch, name)?;
    c.as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| format!("its {name:?} column is {}, not {want}", c.data_type()))
}

impl<'b> Columns<'b> {
    /// The typed columns of `batch`; the id columns only `with_ids`.
    pub(super) fn of(batch: &'b RecordBatch, with_ids: bool) -> Result<Columns<'b>, String> {
        let text = |i: usize| typed::<StringArray>(batch, PROJECTED[i], "Utf8");
        let count = |i: usize| typed::<Int64Array>(batch, PROJECTED[i], "Int64");
        let (times, nanos_per_tick) = times(column(batch, "time")?)?;
        Ok(Columns {
            // stream_id … service_tier, skipping "time" (index 3).
            ids: if with_ids {
                [Some(text(0)?), Some(text(1)?), Some(text(2)?)]
            } else {
                [None; 3]
            },
            text: [
                text(4)?,
                text(5)?,
                text(6)?,
                text(7)?,
                text(8)?,
                text(9)?,
                text(10)?,
                text(11)?,
            ],
            counts: [
                count(12)?,
                count(13)?,
                count(14)?,
                count(15)?,
                count(16)?,
                count(17)?,
                count(18)?,
                count(19)?,
                count(20)?,
            ],
            times,
            nanos_per_tick,
            status: typed(batch, "status", "Int32")?,
            outcome: text(22)?,
            cost_nanos: typed(batch, "cost_nanos", "Int64")?,
            unpriced: typed(batch, "unpriced", "Boolean")?,
            price_source: text(25)?,
        })
    }

    /// The row's time; `None` beyond what a timestamp can hold.
    pub(super) fn time(&self, i: usize) -> Option<Timestamp> {
        Timestamp::from_nanosecond(i128::from(self.times[i]) * self.nanos_per_tick).ok()
    }

    pub(super) fn row(&self, i: usize, time: Timestamp) -> Row<'b> {
        let id = |k: usize| self.ids[k].map_or("", |a| a.value(i));
        let s = |k: usize| self.text[k].value(i);
        let o = |k: usize| Some(self.text[k]).filter(|a| !a.is_null(i)).map(|a| a.value(i));
        // Counts are written from u64s that fit i64; a null unit count is "not billed by it".
        let n = |k: usize| {
            let a = self.counts[k];
            if a.is_null(i) {
                0
            } else {
                u64::try_from(a.value(i)).unwrap_or(0)
            }
        };
        Row {
            time,
            stream_id: id(0),
            request_id: id(1),
            charge_id: id(2),
            team: s(0),
            tenant: o(1),
            workflow: o(2),
            operation: s(3),
            model_id: s(4),
            model: s(5),
            region: s(6),
            service_tier: o(7),
            input_tokens: n(0),
            output_tokens: n(1),
            cache_read_tokens: n(2),
            cache_write_5m_tokens: n(3),
            cache_write_1h_tokens: n(4),
            units: Units {
                requests: n(5),
                images: n(6),
                seconds: n(7),
                text_units: n(8),
            },
            status: self.status.value(i),
            outcome: self.outcome.value(i),
            cost_nanos: self.cost_nanos.value(i),
            unpriced: self.unpriced.value(i),
            price_source: self.price_source.value(i),
        }
    }
}

/// A time column's raw values and the nanoseconds one of them stands for.
fn times(c: &dyn Array) -> Result<(&[i64], i128), String> {
    Ok(match c.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            (&c.as_primitive::<TimestampSecondType>().values()[..], 1_000_000_000)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            (&c.as_primitive::<TimestampMillisecondType>().values()[..], 1_000_000)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            (&c.as_primitive::<TimestampMicrosecondType>().values()[..], 1_000)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => (&c.as_primitive::<TimestampNanosecondType>().values()[..], 1),
        other => return Err(format!("its \"time\" column is {other}, not a timestamp")),
    })
}
