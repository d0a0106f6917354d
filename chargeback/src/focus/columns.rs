//! The FOCUS columns as data: each column's name, type, requirement level and nullability as
//! the FOCUS 1.2 specification states them (`specification/columns/*.md`, tag `v1.2`), the
//! version that introduced it, its allowed values, and how a row fills it. The writers iterate
//! this table; the tests check a written dataset against it.
//!
//! Every 1.0 column is still in 1.2 (1.2 added 14), so one table serves both versions.

use std::borrow::Cow;

use jiff::Timestamp;

use super::FocusVersion;
use super::dataset::{Dataset, FocusRow};
use super::names;

/// A column's FOCUS data type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    String,
    Decimal,
    DateTime,
    /// A JSON object (FOCUS KeyValueFormat).
    Json,
    /// Custom (`x_`) counts.
    Integer,
}

/// A column's feature level in FOCUS 1.2 (`Custom` for Tally's `x_` columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Mandatory,
    Conditional,
    Recommended,
    Custom,
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell<'r> {
    Null,
    Str(Cow<'r, str>),
    /// A decimal at 10^-15.
    Dec(i128),
    Time(Timestamp),
    Int(i64),
}

/// A row and the dataset it belongs to, as a column reads them.
pub type Value = for<'r> fn(&'r FocusRow, &'r Dataset) -> Cell<'r>;

pub struct Column {
    pub name: &'static str,
    pub ty: Type,
    pub level: Level,
    /// The specification allows nulls in it (1.2's "Allows nulls").
    pub nullable: bool,
    /// The only values allowed, when the specification lists them (1.2's lists).
    pub allowed: &'static [&'static str],
    pub since: FocusVersion,
    pub value: Value,
}

/// 10^15: a decimal's scale factor.
pub const SCALE: i128 = 1_000_000_000_000_000;
const NANO: i128 = 1_000_000;

/// `v` × 10^-`scale` as a plain decimal, trailing zeros trimmed but one fractional digit kept
/// (`3.0`, `0.000003`, `-1.5`): exact, and read as a decimal by every CSV reader.
pub fn decimal(v: i128, scale: u32) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let factor = 10u128.pow(scale);
    let abs = v.unsigned_abs();
    let mut frac = format!("{:0width$}", abs % factor, width = scale as usize);
    while frac.len() > 1 && frac.ends_with('0') {
        frac.pop();
    }
    if frac.is_empty() {
        frac.push('0');
    }
    format!("{sign}{}.{frac}", abs / factor)
}

/// An instant as FOCUS writes it: `YYYY-MM-DDTHH:mm:ssZ`.
pub fn datetime(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `bedrock/<model>/<class>`: stable for a model and class, whatever the price.
pub fn sku_id(r: &FocusRow) -> String {
    format!("bedrock/{}/{}", r.sku_model(), r.class.slug())
}

/// The SKU id, the price variant (service tier, long context) and the list price per pricing
/// unit: a new price gets a new id; `unpriced` when no catalog priced the model.
pub fn sku_price_id(r: &FocusRow) -> String {
    let tier = r.service_tier.as_deref().unwrap_or("standard");
    let context = if r.long_context { "/long-context" } else { "" };
    if r.unpriced_calls == r.calls && r.unit_price == 0 {
        return format!("{}/{tier}{context}/unpriced", sku_id(r));
    }
    format!("{}/{tier}{context}/{}", sku_id(r), decimal(r.unit_price, 15))
}

fn s(v: &str) -> Cell<'_> {
    Cell::Str(Cow::Borrowed(v))
}

fn owned<'r>(v: String) -> Cell<'r> {
    Cell::Str(Cow::Owned(v))
}

fn opt(v: &Option<String>) -> Cell<'_> {
    v.as_deref().map_or(Cell::Null, s)
}

fn count(v: u64) -> Cell<'static> {
    Cell::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

/// What Tally charged: `BilledCost`, `EffectiveCost`.
fn billed(r: &FocusRow) -> Cell<'static> {
    Cell::Dec(r.billed_nanos * NANO)
}

/// `PricingQuantity`: consumed units over units per pricing unit (tokens / 10^6).
fn pricing_quantity(r: &FocusRow) -> Cell<'static> {
    let quantity = i128::try_from(r.quantity).unwrap_or(i128::MAX / SCALE);
    Cell::Dec(quantity * SCALE / i128::from(r.class.per_pricing_unit()))
}

fn tags(r: &FocusRow) -> Cell<'_> {
    let mut map = serde_json::Map::new();
    let mut put = |k: &str, v: Option<&String>| {
        if let Some(v) = v {
            map.insert(k.to_string(), serde_json::Value::String(v.clone()));
        }
    };
    put("tally:team", Some(&r.team));
    put("tally:tenant", r.tenant.as_ref());
    put("tally:workflow", r.workflow.as_ref());
    put("tally:cost-center", r.cost_center.as_ref());
    owned(serde_json::Value::Object(map).to_string())
}

fn price_details(r: &FocusRow) -> Cell<'_> {
    let details = serde_json::json!({
        "x_Model": r.sku_model(),
        "x_TokenClass": r.class.slug(),
        "x_ServiceTier": r.service_tier.as_deref().unwrap_or("standard"),
        "x_LongContext": r.long_context,
    });
    owned(details.to_string())
}

fn description(r: &FocusRow) -> Cell<'_> {
    let tier = r.service_tier.as_deref().unwrap_or("standard");
    let context = if r.long_context { ", long context" } else { "" };
    owned(format!(
        "Amazon Bedrock {} of {} ({tier} tier{context})",
        r.class.meter(),
        r.sku_model()
    ))
}

const SERVICE_CATEGORIES: &[&str] = &[
    "AI and Machine Learning",
    "Analytics",
    "Business Applications",
    "Compute",
    "Databases",
    "Developer Tools",
    "Multicloud",
    "Identity",
    "Integration",
    "Internet of Things",
    "Management and Governance",
    "Media",
    "Migration",
    "Mobile",
    "Networking",
    "Security",
    "Storage",
    "Web",
    "Other",
];
/// The "AI and Machine Learning" subcategories (the only parent category these rows have).
const AI_SUBCATEGORIES: &[&str] = &[
    "AI Platforms",
    "Bots",
    "Generative AI",
    "Machine Learning",
    "Natural Language Processing",
    "Other (AI and Machine Learning)",
];

macro_rules! col {
    ($name:literal, $ty:ident, $level:ident, $nullable:literal, $since:ident, $allowed:expr, $value:expr) => {
        Column {
            name: $name,
            ty: Type::$ty,
            level: Level::$level,
            nullable: $nullable,
            allowed: $allowed,
            since: FocusVersion::$since,
            value: $value,
        }
    };
}

/// Every column, FOCUS ones in the specification's (alphabetical) order, then Tally's `x_` ones.
#[rustfmt::skip]
pub static COLUMNS: &[Column] = &[
    col!("AvailabilityZone", String, Recommended, true, V1_0, &[], |_, _| Cell::Null),
    col!("BilledCost", Decimal, Mandatory, false, V1_0, &[], |r, _| billed(r)),
    col!("BillingAccountId", String, Mandatory, false, V1_0, &[], |_, d| s(&d.billing_account)),
    col!("BillingAccountName", String, Mandatory, true, V1_0, &[], |_, _| Cell::Null),
    col!("BillingAccountType", String, Conditional, false, V1_2, &[], |_, _| s("AWS Account")),
    col!("BillingCurrency", String, Mandatory, false, V1_0, &["USD"], |_, _| s("USD")),
    col!("BillingPeriodEnd", DateTime, Mandatory, false, V1_0, &[], |r, _| Cell::Time(r.billing_end)),
    col!("BillingPeriodStart", DateTime, Mandatory, false, V1_0, &[], |r, _| Cell::Time(r.billing_start)),
    col!("CapacityReservationId", String, Conditional, true, V1_2, &[], |_, _| Cell::Null),
    col!("CapacityReservationStatus", String, Conditional, true, V1_2, &["Used", "Unused"], |_, _| Cell::Null),
    col!("ChargeCategory", String, Mandatory, false, V1_0, &["Usage", "Purchase", "Tax", "Credit", "Adjustment"], |_, _| s("Usage")),
    col!("ChargeClass", String, Mandatory, true, V1_0, &["Correction"], |_, _| Cell::Null),
    col!("ChargeDescription", String, Mandatory, true, V1_0, &[], |r, _| description(r)),
    col!("ChargeFrequency", String, Recommended, false, V1_0, &["One-Time", "Recurring", "Usage-Based"], |_, _| s("Usage-Based")),
    col!("ChargePeriodEnd", DateTime, Mandatory, false, V1_0, &[], |r, _| Cell::Time(r.charge_end)),
    col!("ChargePeriodStart", DateTime, Mandatory, false, V1_0, &[], |r, _| Cell::Time(r.charge_start)),
    col!("CommitmentDiscountCategory", String, Conditional, true, V1_0, &["Spend", "Usage"], |_, _| Cell::Null),
    col!("CommitmentDiscountId", String, Conditional, true, V1_0, &[], |_, _| Cell::Null),
    col!("CommitmentDiscountName", String, Conditional, true, V1_0, &[], |_, _| Cell::Null),
    col!("CommitmentDiscountQuantity", Decimal, Conditional, true, V1_2, &[], |_, _| Cell::Null),
    col!("CommitmentDiscountStatus", String, Conditional, true, V1_0, &["Used", "Unused"], |_, _| Cell::Null),
    col!("CommitmentDiscountType", String, Conditional, true, V1_0, &[], |_, _| Cell::Null),
    col!("CommitmentDiscountUnit", String, Conditional, true, V1_2, &[], |_, _| Cell::Null),
    col!("ConsumedQuantity", Decimal, Conditional, true, V1_0, &[], |r, _| Cell::Dec(i128::try_from(r.quantity).unwrap_or(i128::MAX / SCALE) * SCALE)),
    col!("ConsumedUnit", String, Conditional, true, V1_0, &[], |r, _| s(r.class.consumed_unit())),
    col!("ContractedCost", Decimal, Mandatory, false, V1_0, &[], |r, _| Cell::Dec(r.list)),
    col!("ContractedUnitPrice", Decimal, Conditional, true, V1_0, &[], |r, _| Cell::Dec(r.unit_price)),
    col!("EffectiveCost", Decimal, Mandatory, false, V1_0, &[], |r, _| billed(r)),
    col!("InvoiceId", String, Recommended, true, V1_2, &[], |_, _| Cell::Null),
    col!("InvoiceIssuerName", String, Mandatory, false, V1_0, &[], |_, _| s(names::PROVIDER)),
    col!("ListCost", Decimal, Mandatory, false, V1_0, &[], |r, _| Cell::Dec(r.list)),
    col!("ListUnitPrice", Decimal, Conditional, true, V1_0, &[], |r, _| Cell::Dec(r.unit_price)),
    col!("PricingCategory", String, Conditional, true, V1_0, &["Standard", "Dynamic", "Committed", "Other"], |_, _| s("Standard")),
    col!("PricingCurrency", String, Conditional, false, V1_2, &["USD"], |_, _| s("USD")),
    col!("PricingCurrencyContractedUnitPrice", Decimal, Conditional, true, V1_2, &[], |r, _| Cell::Dec(r.unit_price)),
    col!("PricingCurrencyEffectiveCost", Decimal, Conditional, true, V1_2, &[], |r, _| billed(r)),
    col!("PricingCurrencyListUnitPrice", Decimal, Conditional, true, V1_2, &[], |r, _| Cell::Dec(r.unit_price)),
    col!("PricingQuantity", Decimal, Mandatory, true, V1_0, &[], |r, _| pricing_quantity(r)),
    col!("PricingUnit", String, Mandatory, true, V1_0, &[], |r, _| s(r.class.pricing_unit())),
    col!("ProviderName", String, Mandatory, false, V1_0, &[], |_, _| s(names::PROVIDER)),
    col!("PublisherName", String, Mandatory, false, V1_0, &[], |r, _| s(names::publisher(r.sku_model()))),
    col!("RegionId", String, Conditional, true, V1_0, &[], |r, _| s(&r.region)),
    col!("RegionName", String, Conditional, true, V1_0, &[], |r, _| s(names::region_name(&r.region))),
    col!("ResourceId", String, Conditional, true, V1_0, &[], |r, _| s(&r.model_id)),
    col!("ResourceName", String, Conditional, true, V1_0, &[], |r, _| s(&r.model_id)),
    col!("ResourceType", String, Conditional, true, V1_0, &[], |_, _| s("Foundation Model")),
    col!("ServiceCategory", String, Mandatory, false, V1_0, SERVICE_CATEGORIES, |_, _| s("AI and Machine Learning")),
    col!("ServiceName", String, Mandatory, false, V1_0, &[], |_, _| s("Amazon Bedrock")),
    col!("ServiceSubcategory", String, Recommended, false, V1_2, AI_SUBCATEGORIES, |_, _| s("Generative AI")),
    col!("SkuId", String, Conditional, true, V1_0, &[], |r, _| owned(sku_id(r))),
    col!("SkuMeter", String, Conditional, true, V1_2, &[], |r, _| s(r.class.meter())),
    col!("SkuPriceDetails", Json, Conditional, true, V1_2, &[], |r, _| price_details(r)),
    col!("SkuPriceId", String, Conditional, true, V1_0, &[], |r, _| owned(sku_price_id(r))),
    col!("SubAccountId", String, Conditional, true, V1_0, &[], |r, _| s(&r.team)),
    col!("SubAccountName", String, Conditional, true, V1_0, &[], |r, _| s(&r.team)),
    col!("SubAccountType", String, Conditional, true, V1_2, &[], |_, _| s("Tally Team")),
    col!("Tags", Json, Conditional, true, V1_0, &[], |r, _| tags(r)),
    col!("x_Team", String, Custom, false, V1_0, &[], |r, _| s(&r.team)),
    col!("x_Tenant", String, Custom, true, V1_0, &[], |r, _| opt(&r.tenant)),
    col!("x_Workflow", String, Custom, true, V1_0, &[], |r, _| opt(&r.workflow)),
    col!("x_CostCenter", String, Custom, true, V1_0, &[], |r, _| opt(&r.cost_center)),
    col!("x_Model", String, Custom, false, V1_0, &[], |r, _| s(r.sku_model())),
    col!("x_TokenClass", String, Custom, false, V1_0, &[], |r, _| s(r.class.slug())),
    col!("x_ServiceTier", String, Custom, true, V1_0, &[], |r, _| opt(&r.service_tier)),
    col!("x_Calls", Integer, Custom, false, V1_0, &[], |r, _| count(r.calls)),
    col!("x_RefusedCalls", Integer, Custom, false, V1_0, &[], |r, _| count(r.refused_calls)),
    col!("x_UnpricedCalls", Integer, Custom, false, V1_0, &[], |r, _| count(r.unpriced_calls)),
    col!("x_CostNanos", Integer, Custom, false, V1_0, &[], |r, _| Cell::Int(i64::try_from(r.billed_nanos).unwrap_or(i64::MAX))),
];

/// Columns FOCUS 1.2 requires on every Usage row that is not a correction, beyond the ones that
/// never allow nulls ("… MUST NOT be null when ChargeCategory is "Usage" or "Purchase" and
/// ChargeClass is not "Correction"").
pub const NOT_NULL_ON_USAGE: &[&str] = &[
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedUnitPrice",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "SkuId",
    "SkuPriceId",
];

/// (a, b): b is null exactly when a is (FOCUS 1.2's "b MUST be null when a is null" and "b MUST
/// NOT be null when a is not null"; `SkuMeter` says SHOULD NOT, which this export keeps).
pub const NULL_TOGETHER: &[(&str, &str)] = &[
    ("ConsumedQuantity", "ConsumedUnit"),
    ("PricingQuantity", "PricingUnit"),
    ("RegionId", "RegionName"),
    ("SkuId", "SkuMeter"),
    ("SubAccountId", "SubAccountType"),
    ("BillingAccountId", "BillingAccountType"),
    ("CapacityReservationId", "CapacityReservationStatus"),
];

/// The columns of `version`, in order.
pub fn of(version: FocusVersion) -> impl Iterator<Item = &'static Column> {
    COLUMNS
        .iter()
        .filter(move |c| version == FocusVersion::V1_2 || c.since == FocusVersion::V1_0)
}
