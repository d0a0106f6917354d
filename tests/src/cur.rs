//! A realistic AWS CUR 2.0 export made from a known ledger: the Bedrock usage lines AWS would
//! bill for the ledger's calls (one line per UTC day × region × usage type, first-party or
//! Marketplace), plus what a real bill carries besides — and the differences a test injects
//! (traffic that bypassed the gateway, a cut stream AWS billed in full, a price change from a
//! day on, credits, discounts, tax, other services). Written as CSV, gzip'd CSV, or Parquet
//! (through pyarrow, as Athena and the AWS Data Exports write it: TIMESTAMP dates, DOUBLE
//! amounts and costs).
//!
//! Prices and names are the test's: [`Model`] says how the bill names a model and what it
//! charges; costs are exact decimals of nano-USD, rounded half up per line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::civil::Date;
use tally_config::money::Nanos;

/// How the bill names and prices one catalog model.
#[derive(Debug, Clone)]
pub struct Model {
    /// The ledger's `model` (the catalog id that priced the call).
    pub id: &'static str,
    /// First party: the usage types' model part; Marketplace: `None`.
    pub usage_type_model: Option<&'static str>,
    /// Marketplace: the product name.
    pub marketplace_product: Option<&'static str>,
    /// USD per million tokens: input, output, cache read, cache write.
    pub prices: [&'static str; 4],
}

/// The token classes, in the order of [`Model::prices`].
pub const CLASSES: [(&str, &str); 4] = [
    ("input-tokens", "InputTokenCount"),
    ("output-tokens", "OutputTokenCount"),
    ("cache-read-input-token-count", "CacheReadInputTokenCount"),
    ("cache-write-input-token-count", "CacheWriteInputTokenCount"),
];

/// One line of the export, as CSV text per column.
#[derive(Debug, Clone, Default)]
pub struct Line {
    pub entity: String,
    pub line_type: String,
    pub product_code: String,
    pub start: Option<Date>,
    pub usage_type: String,
    pub operation: String,
    pub amount: String,
    pub cost: Nanos,
    pub net_cost: Nanos,
    pub region: String,
    pub product_name: String,
    pub pricing_unit: String,
    pub description: String,
}

/// Usage keyed by (day, region, model id, class).
type Usage = BTreeMap<(Date, String, &'static str, usize), u64>;

/// A bill being made.
#[derive(Debug, Default)]
pub struct Bill {
    usage: Usage,
    /// Price multipliers in percent per (model id, class) from a day on.
    changes: Vec<(&'static str, usize, Date, u64)>,
    extra: Vec<Line>,
}

impl Bill {
    /// Bills `tokens` (by class) of `model` in `region` on `day`: a ledger call, or traffic
    /// the ledger never saw.
    pub fn usage(&mut self, day: Date, region: &str, model: &'static str, tokens: [u64; 4]) {
        for (class, n) in tokens.into_iter().enumerate().filter(|(_, n)| *n > 0) {
            *self.usage.entry((day, region.to_string(), model, class)).or_default() += n;
        }
    }

    /// From `day` on, `model`'s `class` costs `percent` % of its catalog price.
    pub fn price_change(&mut self, model: &'static str, class: usize, day: Date, percent: u64) {
        self.changes.push((model, class, day, percent));
    }

    /// A line that is not token usage: a credit, a discount, tax, another service.
    pub fn other(&mut self, line_type: &str, product_code: &str, usage_type: &str, cost: Nanos) {
        self.extra.push(Line {
            entity: "AWS".into(),
            line_type: line_type.into(),
            product_code: product_code.into(),
            start: "2026-11-01".parse().ok(),
            usage_type: usage_type.into(),
            amount: "0".into(),
            cost,
            net_cost: cost,
            region: "us-east-1".into(),
            product_name: product_code.into(),
            ..Line::default()
        });
    }

    /// Every line of the bill, usage first.
    pub fn lines(&self, models: &[Model]) -> Vec<Line> {
        let mut lines = vec![];
        for ((day, region, id, class), tokens) in &self.usage {
            let model = models.iter().find(|m| m.id == *id).expect("a test model");
            let percent = self
                .changes
                .iter()
                .filter(|(m, c, from, _)| m == id && c == class && day >= from)
                .map(|(.., p)| *p)
                .next_back()
                .unwrap_or(100);
            lines.push(usage_line(model, *day, region, *class, *tokens, percent));
        }
        lines.extend(self.extra.iter().cloned());
        lines
    }

    /// The cost of the usage lines: what the split invoice must add up to.
    pub fn usage_cost(&self, models: &[Model]) -> Nanos {
        let bedrock =
            |l: &Line| l.product_code == "AmazonBedrock" || l.product_name.ends_with("(Amazon Bedrock Edition)");
        let usage = self
            .lines(models)
            .into_iter()
            .filter(|l| l.line_type == "Usage" && bedrock(l));
        usage.fold(Nanos::ZERO, |a, l| a.saturating_add(l.cost))
    }
}

/// One usage line; Marketplace lines count millions of tokens, first-party lines tokens.
fn usage_line(model: &Model, day: Date, region: &str, class: usize, tokens: u64, percent: u64) -> Line {
    let price = Nanos::parse_usd(model.prices[class]).expect("a test price").0 as u128;
    let cost = (u128::from(tokens) * price * u128::from(percent) + 50_000_000) / 100_000_000;
    let cost = Nanos(i64::try_from(cost).expect("a small test cost"));
    let code = tally_config::billing::code_of_region(region).expect("a known region");
    let (kind, mp_kind) = CLASSES[class];
    let mut line = Line {
        entity: "AWS".into(),
        line_type: "Usage".into(),
        product_code: "AmazonBedrock".into(),
        start: Some(day),
        operation: "InvokeModelInference".into(),
        cost,
        net_cost: cost,
        region: region.into(),
        ..Line::default()
    };
    match (model.usage_type_model, model.marketplace_product) {
        (Some(name), _) => {
            line.usage_type = format!("{code}-{name}-{kind}");
            line.amount = tokens.to_string();
            line.product_name = "Amazon Bedrock".into();
            line.pricing_unit = "tokens".into();
            line.description = format!("{} per million {kind} of {name}", model.prices[class]);
        }
        (None, Some(product)) => {
            line.entity = "AWS Marketplace".into();
            line.product_code = "prod-bedrock-edition".into();
            line.usage_type = format!("{code}-MP:{code}_{mp_kind}-Units");
            line.operation = "Usage".into();
            line.amount = format!("{}.{:06}", tokens / 1_000_000, tokens % 1_000_000);
            line.product_name = product.into();
            line.pricing_unit = "Units".into();
            line.description = format!("${} per 1M {mp_kind}", model.prices[class]);
        }
        (None, None) => panic!("a test model names its billing path"),
    }
    line
}

/// The CSV header: CUR 2.0's column names (and two columns reconciliation does not read).
pub const HEADER: &str = "identity_line_item_id,bill_billing_entity,line_item_line_item_type,line_item_product_code,\
line_item_usage_start_date,line_item_usage_end_date,line_item_usage_type,line_item_operation,line_item_usage_amount,\
line_item_unblended_cost,line_item_net_unblended_cost,product_region_code,product_product_name,pricing_unit,\
line_item_line_item_description,line_item_resource_id";

/// The lines as a CUR 2.0 CSV file.
pub fn to_csv(lines: &[Line]) -> String {
    let mut out = format!("{HEADER}\n");
    for (i, l) in lines.iter().enumerate() {
        let (start, end) = match l.start {
            Some(d) => (
                format!("{d}T00:00:00Z"),
                format!("{}T00:00:00Z", d.tomorrow().expect("a day")),
            ),
            None => (String::new(), String::new()),
        };
        let fields = [
            i.to_string(),
            l.entity.clone(),
            l.line_type.clone(),
            l.product_code.clone(),
            start,
            end,
            l.usage_type.clone(),
            l.operation.clone(),
            l.amount.clone(),
            l.cost.to_string(),
            l.net_cost.to_string(),
            l.region.clone(),
            l.product_name.clone(),
            l.pricing_unit.clone(),
            l.description.clone(),
            String::new(),
        ];
        let quoted: Vec<String> = fields
            .iter()
            .map(|f| {
                if f.contains([',', '"']) {
                    format!("\"{}\"", f.replace('"', "\"\""))
                } else {
                    f.clone()
                }
            })
            .collect();
        let _ = writeln!(out, "{}", quoted.join(","));
    }
    out
}

/// The Python (pyarrow) that turns a CUR CSV into Parquet with the types AWS writes: argv
/// `[csv path, parquet path]`.
pub const CSV_TO_PARQUET: &str = r#"
import sys, pyarrow as pa, pyarrow.csv as pc, pyarrow.parquet as pq
src, dst = sys.argv[-2:]
strings = ["identity_line_item_id", "bill_billing_entity", "line_item_line_item_type", "line_item_product_code",
           "line_item_usage_type", "line_item_operation", "product_region_code", "product_product_name",
           "pricing_unit", "line_item_line_item_description", "line_item_resource_id"]
types = {c: pa.string() for c in strings}
types.update({c: pa.float64() for c in ["line_item_usage_amount", "line_item_unblended_cost", "line_item_net_unblended_cost"]})
types.update({c: pa.timestamp("ms", tz="UTC") for c in ["line_item_usage_start_date", "line_item_usage_end_date"]})
table = pc.read_csv(src, convert_options=pc.ConvertOptions(column_types=types, strings_can_be_null=False))
pq.write_table(table, dst, compression="snappy")
"#;
