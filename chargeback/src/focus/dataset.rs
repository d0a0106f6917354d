//! Ledger rows → FOCUS rows: each call's lines ([`super::lines`]) summed per team × tenant ×
//! workflow × model × region × service tier × class × unit price × charge period. Pure.
//!
//! Group keys are interned (a string becomes a `u32` once), so a scan of millions of calls
//! allocates per distinct value, not per call; memory grows with the rows, not the calls.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use tally_config::compiled::PriceEntry;
use tally_config::pricing::PriceBook;

use super::Grain;
use super::lines::{self, Class, Line};
use crate::ledger::Row;

/// What the rows are built against.
pub struct Context<'a> {
    /// The catalog whose prices are the list prices (the one Tally priced the calls with).
    pub catalog: &'a PriceBook,
    /// Team → cost center (TeamBudget `spec.costCenter`).
    pub cost_centers: &'a HashMap<String, String>,
    /// Days (and months) are local days of this zone; FOCUS times are written in UTC.
    pub tz: TimeZone,
    pub grain: Grain,
    /// `BillingAccountId`: the AWS payer account the bill comes from, when the user names it.
    pub billing_account: String,
}

/// One FOCUS row before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FocusRow {
    pub charge_start: Timestamp,
    pub charge_end: Timestamp,
    /// The calendar month (in the context's zone) holding the charge period.
    pub billing_start: Timestamp,
    pub billing_end: Timestamp,
    pub team: String,
    pub tenant: Option<String>,
    pub workflow: Option<String>,
    pub cost_center: Option<String>,
    pub model_id: String,
    /// The catalog model (empty when unpriced).
    pub model: String,
    pub region: String,
    pub service_tier: Option<String>,
    pub class: Class,
    pub long_context: bool,
    /// Tokens or units consumed.
    pub quantity: u128,
    /// List price per pricing unit, 10^-15 USD.
    pub unit_price: i128,
    /// quantity × unit price, 10^-15 USD.
    pub list: i128,
    /// What Tally charged for these tokens or units, nano-USD.
    pub billed_nanos: i128,
    pub calls: u64,
    pub refused_calls: u64,
    pub unpriced_calls: u64,
}

impl FocusRow {
    /// The model a SKU is named for: the catalog's, else the id as sent.
    pub fn sku_model(&self) -> &str {
        if self.model.is_empty() {
            &self.model_id
        } else {
            &self.model
        }
    }
}

/// The rows of a period, in a stable order, and what the columns need besides them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pub rows: Vec<FocusRow>,
    pub billing_account: String,
}

const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    start: Timestamp,
    team: u32,
    tenant: u32,
    workflow: u32,
    model_id: u32,
    model: u32,
    region: u32,
    tier: u32,
    class: Class,
    unit_price: i128,
    long_context: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    quantity: u128,
    list: i128,
    billed: i128,
    calls: u64,
    refused: u64,
    unpriced: u64,
}

/// A multiply-rotate hasher for the integer group keys (SipHash's flooding defence buys nothing
/// for a ledger's own keys, and hashing is most of the time per row).
#[derive(Default, Clone, Copy)]
struct Mixer(u64);

impl std::hash::Hasher for Mixer {
    fn write(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|b| self.write_u64(u64::from(*b)));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_i32(&mut self, n: i32) {
        self.write_u64(n as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_isize(&mut self, n: isize) {
        self.write_u64(n as u64);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }

    fn write_i128(&mut self, n: i128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Mix = std::hash::BuildHasherDefault<Mixer>;

/// Strings ↔ small ids, so group keys are plain integers.
#[derive(Default)]
struct Interner {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    /// `s`'s id (NONE for none), trying `last` — the same field of the previous row — before
    /// hashing: a ledger file holds one team's calls, so most fields repeat row after row.
    fn near(&mut self, s: Option<&str>, last: &mut u32) -> u32 {
        let Some(s) = s else { return NONE };
        if *last == NONE || *self.names[*last as usize] != *s {
            *last = self.id(s);
        }
        *last
    }

    fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    fn opt_name(&self, id: u32) -> Option<String> {
        (id != NONE).then(|| self.name(id).to_string())
    }
}

/// Accumulates calls; [`Builder::finish`] gives the dataset.
pub struct Builder<'a> {
    ctx: &'a Context<'a>,
    strings: Interner,
    entries: HashMap<(u32, u32), Option<Arc<PriceEntry>>, Mix>,
    groups: HashMap<Key, Sums, Mix>,
    lines: Vec<Line>,
    /// The previous row's ids, field by field (see [`Interner::near`]).
    last: [u32; 7],
    /// The last charge period seen: calls arrive mostly in time order.
    period: (Timestamp, Timestamp),
}

impl<'a> Builder<'a> {
    pub fn new(ctx: &'a Context<'a>) -> Builder<'a> {
        Builder {
            ctx,
            strings: Interner::default(),
            entries: HashMap::default(),
            groups: HashMap::default(),
            lines: Vec::with_capacity(Class::ALL.len()),
            last: [NONE; 7],
            period: (Timestamp::MAX, Timestamp::MAX),
        }
    }

    pub fn add(&mut self, call: &Row<'_>) {
        let [team, tenant, workflow, model_id, model, region, tier] = &mut self.last;
        let strings = &mut self.strings;
        let model_id = strings.near(Some(call.model_id), model_id);
        let region = strings.near(Some(call.region), region);
        let team = strings.near(Some(call.team), team);
        let tenant = strings.near(call.tenant, tenant);
        let workflow = strings.near(call.workflow, workflow);
        let model = strings.near(Some(call.model), model);
        let tier = strings.near(call.service_tier, tier);
        let book = self.ctx.catalog;
        let entry = self
            .entries
            .entry((model_id, region))
            .or_insert_with(|| {
                book.lookup(book.alias(call.model_id), call.region)
                    .map(|p| Arc::clone(p.entry))
            })
            .clone();
        lines::split(call, entry.as_deref(), &mut self.lines);
        let start = self.charge_period(call.time).0;
        let base = Key {
            start,
            team,
            tenant,
            workflow,
            model_id,
            model,
            region,
            tier,
            class: Class::Input,
            unit_price: 0,
            long_context: false,
        };
        let unpriced = u64::from(call.unpriced || entry.is_none());
        for line in &self.lines {
            let key = Key {
                class: line.class,
                unit_price: line.unit_price,
                long_context: line.long_context,
                ..base
            };
            let sums = self.groups.entry(key).or_default();
            sums.quantity += u128::from(line.quantity);
            sums.list += line.list;
            sums.billed += i128::from(line.billed_nanos);
            sums.calls += 1;
            sums.refused += u64::from(lines::refused(call));
            sums.unpriced += unpriced;
        }
    }

    /// `[start, end)` of the day or hour holding `t`.
    fn charge_period(&mut self, t: Timestamp) -> (Timestamp, Timestamp) {
        if !(self.period.0 <= t && t < self.period.1) {
            self.period = period_of(t, &self.ctx.tz, self.ctx.grain);
        }
        self.period
    }

    pub fn finish(self) -> Dataset {
        let s = &self.strings;
        let mut rows: Vec<FocusRow> = self
            .groups
            .into_iter()
            .map(|(k, sums)| {
                let (billing_start, billing_end) = month_of(k.start, &self.ctx.tz);
                let team = s.name(k.team).to_string();
                FocusRow {
                    charge_start: k.start,
                    charge_end: period_of(k.start, &self.ctx.tz, self.ctx.grain).1,
                    billing_start,
                    billing_end,
                    cost_center: self.ctx.cost_centers.get(&team).cloned(),
                    team,
                    tenant: s.opt_name(k.tenant),
                    workflow: s.opt_name(k.workflow),
                    model_id: s.name(k.model_id).to_string(),
                    model: s.name(k.model).to_string(),
                    region: s.name(k.region).to_string(),
                    service_tier: s.opt_name(k.tier),
                    class: k.class,
                    long_context: k.long_context,
                    quantity: sums.quantity,
                    unit_price: k.unit_price,
                    list: sums.list,
                    billed_nanos: sums.billed,
                    calls: sums.calls,
                    refused_calls: sums.refused,
                    unpriced_calls: sums.unpriced,
                }
            })
            .collect();
        rows.sort_by(|a, b| order(a).cmp(&order(b)));
        Dataset {
            rows,
            billing_account: self.ctx.billing_account.clone(),
        }
    }
}

type Order<'r> = (
    Timestamp,
    &'r str,
    Option<&'r str>,
    Option<&'r str>,
    &'r str,
    &'r str,
    Option<&'r str>,
    Class,
    i128,
    bool,
);

/// The rows' order: by period, attribution, model, region, tier and price class — stable, so two
/// exports of one ledger are byte for byte the same.
fn order(r: &FocusRow) -> Order<'_> {
    (
        r.charge_start,
        &r.team,
        r.tenant.as_deref(),
        r.workflow.as_deref(),
        &r.model_id,
        &r.region,
        r.service_tier.as_deref(),
        r.class,
        r.unit_price,
        r.long_context,
    )
}

/// The local day or hour (in `tz`) holding `t`, as instants.
pub fn period_of(t: Timestamp, tz: &TimeZone, grain: Grain) -> (Timestamp, Timestamp) {
    let local = t.to_zoned(tz.clone());
    match grain {
        Grain::Day => {
            let start = local.start_of_day().map(|z| z.timestamp()).unwrap_or(t);
            let end = local
                .date()
                .tomorrow()
                .ok()
                .and_then(|d| d.to_zoned(tz.clone()).ok())
                .and_then(|z| z.start_of_day().ok())
                .map_or(start + SignedDuration::from_hours(24), |z| z.timestamp());
            (start, end)
        }
        Grain::Hour => {
            // Hours are whole in every zone's offset from UTC except a few (+05:30, +05:45):
            // round in local time, so an hour row matches the local clock.
            let into_hour = SignedDuration::from_secs(i64::from(local.minute()) * 60 + i64::from(local.second()))
                + SignedDuration::from_nanos(i64::from(local.subsec_nanosecond()));
            let start = t - into_hour;
            (start, start + SignedDuration::from_hours(1))
        }
    }
}

/// The calendar month (in `tz`) holding `t`, as instants.
pub fn month_of(t: Timestamp, tz: &TimeZone) -> (Timestamp, Timestamp) {
    let first = t.to_zoned(tz.clone()).date().first_of_month();
    let at = |d: jiff::civil::Date| {
        d.to_zoned(tz.clone())
            .and_then(|z| z.start_of_day())
            .map(|z| z.timestamp())
    };
    let start = at(first).unwrap_or(t);
    let end = first.checked_add(1.month()).ok().and_then(|d| at(d).ok()).unwrap_or(t);
    (start, end)
}
