//! Streaming aggregation: every ledger row of the period folded into one cell per team ×
//! tenant × workflow × model × region × operation × local day, with strings interned so a
//! cell key is seven integers. Memory grows with the number of distinct cells, never with
//! the number of rows; every view of the report is computed from the cells afterwards.

use std::collections::HashMap;

use jiff::Timestamp;
use tally_config::pricing::Usage;

use super::routing::Routing;
use crate::ledger::Row;
use crate::period::Period;

/// Strings seen in the ledger, each stored once and named by its index.
#[derive(Debug, Default)]
pub struct Interner {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    pub fn id(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = u32::try_from(self.names.len()).expect("fewer than 2^32 distinct strings");
        self.names.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// [`Interner::id`], trying `last` first: consecutive rows mostly repeat a column's value
    /// (a file holds one team), and comparing two strings is cheaper than hashing one.
    fn id_after(&mut self, last: &mut u32, s: &str) -> u32 {
        if self.names.get(*last as usize).is_some_and(|n| &**n == s) {
            return *last;
        }
        *last = self.id(s);
        *last
    }
}

/// The finest grain the report needs. `tenant`/`workflow` are the interned empty string
/// when the call carried none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellKey {
    pub team: u32,
    pub tenant: u32,
    pub workflow: u32,
    pub model: u32,
    pub region: u32,
    pub operation: u32,
    /// Index into the period's local days.
    pub day: u16,
}

/// Sums over calls. Money in nano-USD, summed in i128 so no realistic ledger overflows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub calls: u64,
    /// Refused before Bedrock (`blocked`, `denied`).
    pub refused: u64,
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cost: i128,
    /// What the same calls would have cost on the team's cheapest allowed model.
    pub routed: i128,
    pub unpriced: u64,
}

impl Totals {
    pub fn add(&mut self, o: &Totals) {
        self.calls += o.calls;
        self.refused += o.refused;
        self.input += o.input;
        self.output += o.output;
        self.cache_read += o.cache_read;
        self.cache_write_5m += o.cache_write_5m;
        self.cache_write_1h += o.cache_write_1h;
        self.cost += o.cost;
        self.routed += o.routed;
        self.unpriced += o.unpriced;
    }
}

/// Folds rows into cells.
pub struct Aggregator<'c> {
    pub strings: Interner,
    pub cells: HashMap<CellKey, Totals>,
    /// The first instant of each local day of the period, ascending.
    day_starts: Vec<Timestamp>,
    pub routing: Routing<'c>,
    /// The previous row's ids per string column of [`CellKey`].
    last: [u32; 6],
}

impl<'c> Aggregator<'c> {
    pub fn new(period: &Period, routing: Routing<'c>) -> Aggregator<'c> {
        let day_starts = period
            .days()
            .into_iter()
            .map(|d| d.to_zoned(period.tz.clone()).map_or(period.from, |z| z.timestamp()))
            .collect();
        Aggregator {
            strings: Interner::default(),
            cells: HashMap::new(),
            day_starts,
            routing,
            last: [u32::MAX; 6],
        }
    }

    /// Adds one row (the caller keeps only rows inside the period).
    pub fn add(&mut self, row: &Row<'_>) {
        let day = self.day_starts.partition_point(|s| *s <= row.time).saturating_sub(1);
        let model = if row.model.is_empty() { row.model_id } else { row.model };
        let (s, last) = (&mut self.strings, &mut self.last);
        let key = CellKey {
            team: s.id_after(&mut last[0], row.team),
            tenant: s.id_after(&mut last[1], row.tenant.unwrap_or("")),
            workflow: s.id_after(&mut last[2], row.workflow.unwrap_or("")),
            model: s.id_after(&mut last[3], model),
            region: s.id_after(&mut last[4], row.region),
            operation: s.id_after(&mut last[5], row.operation),
            day: u16::try_from(day).unwrap_or(u16::MAX),
        };
        let routed = self.routing.cost_on_cheapest(key.team, row.team, row);
        let t = self.cells.entry(key).or_default();
        t.calls += 1;
        t.refused += u64::from(matches!(row.outcome, "blocked" | "denied"));
        t.input += row.input_tokens;
        t.output += row.output_tokens;
        t.cache_read += row.cache_read_tokens;
        t.cache_write_5m += row.cache_write_5m_tokens;
        t.cache_write_1h += row.cache_write_1h_tokens;
        t.cost += i128::from(row.cost_nanos);
        t.routed += routed;
        t.unpriced += u64::from(row.unpriced);
    }
}

/// A row's tokens as the tariff reads them.
pub fn usage(row: &Row<'_>) -> Usage {
    Usage {
        input: row.input_tokens,
        output: row.output_tokens,
        cache_read: row.cache_read_tokens,
        cache_write_5m: row.cache_write_5m_tokens,
        cache_write_1h: row.cache_write_1h_tokens,
    }
}
