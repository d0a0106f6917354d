use std::io::Write;

use tally_config::billing::{BillingName, TokenClass};

use super::*;

const HEADER: &str = "identity_line_item_id,bill_billing_entity,line_item_line_item_type,line_item_product_code,\
line_item_usage_start_date,line_item_usage_end_date,line_item_usage_type,line_item_operation,line_item_usage_amount,\
line_item_unblended_cost,line_item_net_unblended_cost,product_region_code,product_product_name,pricing_unit,\
line_item_line_item_description,resource_tags";

fn billing() -> Billing {
    Billing {
        names: vec![
            BillingName {
                pattern: "anthropic.claude-sonnet-4-6".into(),
                regions: vec![],
                usage_type_model: Some("Claude4.6Sonnet".into()),
                marketplace_product: None,
            },
            BillingName {
                pattern: "vendor.model-x".into(),
                regions: vec![],
                usage_type_model: None,
                marketplace_product: Some("Model X (Amazon Bedrock Edition)".into()),
            },
        ],
    }
}

/// A month of lines: usage on both paths, what is excluded, other services, an unmapped
/// model, non-token usage and a line of the next month.
fn csv_text() -> String {
    let lines = [
        "1,AWS,Usage,AmazonBedrock,2026-11-03T00:00:00Z,2026-11-04T00:00:00Z,USE1-Claude4.6Sonnet-input-tokens,InvokeModelInference,1500000,4.5,4.5,us-east-1,Amazon Bedrock,tokens,Claude input,{}",
        "2,AWS,Usage,AmazonBedrock,2026-11-03T00:00:00Z,2026-11-04T00:00:00Z,USE1-Claude4.6Sonnet-output-tokens,InvokeModelInference,1E+5,1.5,1.4,us-east-1,Amazon Bedrock,tokens,Claude output,{}",
        "3,AWS,Usage,AmazonBedrock,2026-11-03 05:00:00,2026-11-03 06:00:00,USE1-Claude4.6Sonnet-cache-read-input-token-count-priority,InvokeModelInference,2000,0.0012,,us-east-1,Amazon Bedrock,1K tokens,Claude cache read,{}",
        "4,AWS Marketplace,Usage,,2026-11-04T00:00:00Z,2026-11-05T00:00:00Z,USW2-MP:USW2_InputTokenCount-Units,Usage,0.25,0.5,0.5,us-west-2,Model X (Amazon Bedrock Edition),Units,$2.00 per 1M input tokens,{}",
        "5,AWS,Credit,AmazonBedrock,2026-11-01T00:00:00Z,2026-12-01T00:00:00Z,USE1-Claude4.6Sonnet-input-tokens,,0,-2.25,-2.25,us-east-1,Amazon Bedrock,,Credit,{}",
        "6,AWS,Tax,AmazonBedrock,,,,,0,0.63,0.63,,Amazon Bedrock,,Tax,{}",
        "7,AWS,EdpDiscount,AmazonBedrock,2026-11-03T00:00:00Z,2026-11-04T00:00:00Z,USE1-Claude4.6Sonnet-input-tokens,,0,-0.45,-0.45,us-east-1,Amazon Bedrock,,Discount,{}",
        "8,AWS,Usage,AmazonEC2,2026-11-03T00:00:00Z,2026-11-04T00:00:00Z,USE1-BoxUsage:m5.large,RunInstances,24,2.3,2.3,us-east-1,Amazon EC2,Hrs,EC2,{}",
        "9,AWS,Usage,AmazonBedrock,2026-11-05T00:00:00Z,2026-11-06T00:00:00Z,EUC1-Llama9Huge-output-tokens,InvokeModelInference,1000,0.01,0.01,,Amazon Bedrock,tokens,Llama,{}",
        "10,AWS,Usage,AmazonBedrock,2026-11-05T00:00:00Z,2026-11-06T00:00:00Z,USE1-ProvisionedThroughput-ModelUnits,Hours,1,21.18,21.18,us-east-1,Amazon Bedrock,Hours,PT,{}",
        "11,AWS,Usage,AmazonBedrock,2026-12-01T00:00:00Z,2026-12-02T00:00:00Z,USE1-Claude4.6Sonnet-input-tokens,InvokeModelInference,10,0.00003,0.00003,us-east-1,Amazon Bedrock,tokens,next month,{}",
    ];
    format!("{HEADER}\n{}\n", lines.join("\n"))
}

fn november() -> (Timestamp, Timestamp) {
    (
        "2026-11-01T00:00:00Z".parse().unwrap(),
        "2026-12-01T00:00:00Z".parse().unwrap(),
    )
}

async fn read_text(dir: &std::path::Path, name: &str, bytes: &[u8]) -> Result<Bill, CurError> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let (from, to) = november();
    read(path.to_str().unwrap(), &billing(), from, to).await
}

fn key(day: &str, region: &str, model: &str, class: TokenClass, tier: &str) -> CellKey {
    CellKey {
        day: day.parse().unwrap(),
        region: region.into(),
        model: model.into(),
        class,
        tier: tier.into(),
    }
}

fn check_november(bill: &Bill) {
    let cell = |k| bill.cells.get(&k).copied().unwrap_or_default();
    let input = cell(key("2026-11-03", "us-east-1", "Claude4.6Sonnet", TokenClass::Input, ""));
    assert_eq!(
        (input.tokens, input.cost, input.lines),
        (1_500_000, Nanos(4_500_000_000), 1)
    );
    let output = cell(key(
        "2026-11-03",
        "us-east-1",
        "Claude4.6Sonnet",
        TokenClass::Output,
        "",
    ));
    assert_eq!(
        (output.tokens, output.cost, output.net_cost),
        (100_000, Nanos(1_500_000_000), Nanos(1_400_000_000))
    );
    let cache = cell(key(
        "2026-11-03",
        "us-east-1",
        "Claude4.6Sonnet",
        TokenClass::CacheRead,
        "priority",
    ));
    assert_eq!(
        (cache.tokens, cache.cost, cache.net_cost),
        (2_000_000, Nanos(1_200_000), Nanos(1_200_000))
    );
    let mp = cell(key(
        "2026-11-04",
        "us-west-2",
        "Model X (Amazon Bedrock Edition)",
        TokenClass::Input,
        "",
    ));
    assert_eq!((mp.tokens, mp.cost), (250_000, Nanos(500_000_000)));
    assert_eq!(bill.cells.len(), 4);
    let unmapped: Vec<&CellKey> = bill.unmapped.keys().collect();
    assert_eq!(
        unmapped,
        [&key("2026-11-05", "eu-central-1", "Llama9Huge", TokenClass::Output, "")]
    );
    let excluded: Vec<(&str, u64, Nanos)> = bill
        .excluded
        .iter()
        .map(|(k, t)| (k.as_str(), t.lines, t.cost))
        .collect();
    assert_eq!(
        excluded,
        [
            ("Credit", 1, Nanos(-2_250_000_000)),
            ("EdpDiscount", 1, Nanos(-450_000_000)),
            ("Tax", 1, Nanos(630_000_000))
        ]
    );
    assert_eq!(
        bill.other_usage["USE1-ProvisionedThroughput-ModelUnits"].cost,
        Nanos(21_180_000_000)
    );
    assert_eq!((bill.other_services, bill.outside_period, bill.lines), (1, 1, 11));
    assert_eq!(
        bill.usage_cost(),
        Nanos(4_500_000_000 + 1_500_000_000 + 1_200_000 + 500_000_000 + 10_000_000 + 21_180_000_000)
    );
}

#[tokio::test]
async fn csv_lines_are_kept_excluded_or_set_apart_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let bill = read_text(dir.path(), "cur.csv", csv_text().as_bytes()).await.unwrap();
    check_november(&bill);
}

#[tokio::test]
async fn gzip_csv_in_a_directory_tree_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("BILLING_PERIOD=2026-11");
    std::fs::create_dir_all(&sub).unwrap();
    let mut gz = flate2::write::GzEncoder::new(vec![], flate2::Compression::default());
    gz.write_all(csv_text().as_bytes()).unwrap();
    std::fs::write(sub.join("cur-00001.csv.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(sub.join("manifest.json"), b"{}").unwrap();
    let (from, to) = november();
    let bill = read(dir.path().to_str().unwrap(), &billing(), from, to).await.unwrap();
    assert_eq!(bill.files, 1);
    check_november(&bill);
}

#[tokio::test]
async fn a_bad_amount_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let text = csv_text().replace(",1500000,4.5,", ",1500000,4.5x,");
    let err = read_text(dir.path(), "cur.csv", text.as_bytes())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cur.csv, line 2: line_item_unblended_cost") && err.contains("4.5x"),
        "{err}"
    );
    let text = csv_text().replace(",1500000,4.5,", ",-1500000,4.5,");
    let err = read_text(dir.path(), "cur.csv", text.as_bytes())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2: line_item_usage_amount") && err.contains("negative"),
        "{err}"
    );
    let err = read_text(dir.path(), "empty", b"").await.unwrap_err().to_string();
    assert!(err.contains("no CSV header") || err.contains("line"), "{err}");
    let missing = read("/nonexistent/cur", &billing(), november().0, november().1)
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("/nonexistent/cur"), "{missing}");
}

#[test]
fn units_come_from_the_pricing_unit_then_the_description() {
    assert_eq!(unit_scale("tokens"), Some(0));
    assert_eq!(unit_scale("1K tokens"), Some(3));
    assert_eq!(unit_scale("1,000 Tokens"), Some(3));
    assert_eq!(unit_scale("$2.00 per 1M input tokens"), Some(6));
    assert_eq!(unit_scale("per million units"), Some(6));
    assert_eq!(unit_scale("Units"), None);
}
