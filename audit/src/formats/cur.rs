//! AWS CUR 2.0 rows (Data Exports `COST_AND_USAGE_REPORT`), CSV or Parquet.
//! Bedrock usage arrives aggregated per usage type and hour/day: one row
//! counts one token class (`USE1-Claude4.6Sonnet-input-tokens`,
//! `USW2-MP:USW2_CacheReadInputTokenCount-Units`). Only `Usage` rows are read;
//! credits, discounts and tax are not calls.

use serde_json::{Map, Value};

use crate::field::Field;
use crate::lookup::{self, pick};
use crate::observation::{CallContext, Found, Observation, TokenClass};

pub fn observe(records: &[Value]) -> Vec<Observation> {
    records
        .iter()
        .enumerate()
        .filter(|(_, r)| is_bedrock_usage(r))
        .map(|(i, r)| record(i + 1, r))
        .collect()
}

fn is_bedrock_usage(r: &Value) -> bool {
    let s = |k: &str| r.get(k).map(lookup::text).unwrap_or_default();
    let bedrock = s("line_item_product_code") == "AmazonBedrock"
        || s("product_product_name").contains("Amazon Bedrock")
        || s("product_servicecode") == "AmazonBedrock";
    let usage = matches!(s("line_item_line_item_type").as_str(), "Usage" | "");
    bedrock && usage
}

/// The token class a usage type counts, if it counts tokens.
pub fn token_class(usage_type: &str) -> Option<TokenClass> {
    let u = lookup::normalize(usage_type);
    if u.contains("cacheread") {
        Some(TokenClass::CacheRead)
    } else if u.contains("cachewrite") {
        Some(TokenClass::CacheWrite)
    } else if u.contains("inputtoken") {
        Some(TokenClass::Input)
    } else if u.contains("outputtoken") {
        Some(TokenClass::Output)
    } else {
        None
    }
}

/// The model part of a first-party usage type: `USE1-Claude4.6Sonnet-input-tokens` → `Claude4.6Sonnet`.
pub fn model_from_usage_type(usage_type: &str) -> Option<String> {
    let (_, rest) = usage_type.split_once('-')?;
    if rest.starts_with("MP:") {
        return None; // Marketplace usage types name only the token kind
    }
    let model = rest.split('-').next()?;
    (!model.is_empty()).then(|| model.to_string())
}

fn record(n: usize, r: &Value) -> Observation {
    let usage_type = r.get("line_item_usage_type").map(lookup::text).unwrap_or_default();
    let class = token_class(&usage_type);
    let resource = pick(r, &["line_item_resource_id"]).map(|f| lookup::text(&f.value));
    let mut o = Observation::new(n);
    o.set(
        Field::ModelId,
        model_from_usage_type(&usage_type)
            .map(|m| Found::new("line_item_usage_type", m.into()))
            .or_else(|| pick(r, &["line_item_resource_id", "product_model"])),
    );
    o.set(Field::Region, pick(r, &["product_region_code", "product_region"]));
    for c in [
        TokenClass::Input,
        TokenClass::Output,
        TokenClass::CacheRead,
        TokenClass::CacheWrite,
    ] {
        if Some(c) == class {
            o.set(c.field(), pick(r, &["line_item_usage_amount"]));
        } else {
            o.not_applicable.insert(c.field());
        }
    }
    o.set(
        Field::CostUsd,
        pick(r, &["line_item_unblended_cost", "line_item_net_unblended_cost"]),
    );
    let tags = tags(r);
    for field in [Field::TeamId, Field::TenantId, Field::WorkflowId] {
        o.set(field, tag_for(&tags, field));
    }
    o.call = CallContext {
        time: r.get("line_item_usage_start_date").map(lookup::text),
        succeeded: Some(true),
        currency: pick(r, &["line_item_currency_code"]).map(|f| lookup::text(&f.value)),
        principal: pick(r, &["line_item_iam_principal"]).map(|f| lookup::text(&f.value)),
        token_class: class,
        resource,
        ..CallContext::default()
    };
    o
}

/// Cost-allocation tags of a row: the `resource_tags` / `tags` map columns
/// (a map in Parquet, JSON text in CSV) and legacy flattened `resource_tags_user_*` columns.
fn tags(r: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for column in ["resource_tags", "tags"] {
        if let Some(Value::Object(m)) = lookup::nested_json(r, column) {
            for (k, v) in m {
                out.insert(format!("{column}.{k}"), v);
            }
        }
    }
    for (k, v) in r.as_object().into_iter().flatten() {
        if k.starts_with("resource_tags_") {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// The tag carrying `field`: its key without the `user_`, `user:` or
/// `iamPrincipal/` prefix names the field (`user_team`, `iamPrincipal/team`, `user:tenant-id`).
fn tag_for(tags: &Map<String, Value>, field: Field) -> Option<Found> {
    let names = super::applog::synonyms(field);
    tags.iter().find_map(|(k, v)| {
        let bare = k.rsplit(['.', '/']).next().unwrap_or(k);
        let bare = bare
            .strip_prefix("resource_tags_")
            .unwrap_or(bare)
            .trim_start_matches("user_")
            .trim_start_matches("user:");
        (names.contains(&lookup::normalize(bare).as_str()) && !lookup::is_blank(v))
            .then(|| Found::new(k.clone(), v.clone()))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn usage_types_name_the_token_class_and_the_model() {
        assert_eq!(
            token_class("USE1-Claude4.6Sonnet-input-tokens"),
            Some(TokenClass::Input)
        );
        assert_eq!(
            token_class("USE1-Claude4.6Sonnet-cache-read-input-token-count"),
            Some(TokenClass::CacheRead)
        );
        assert_eq!(
            token_class("USW2-MP:USW2_OutputTokenCount-Units"),
            Some(TokenClass::Output)
        );
        assert_eq!(
            token_class("USE1-Claude4.6Sonnet-cache-write-input-token-count"),
            Some(TokenClass::CacheWrite)
        );
        assert_eq!(token_class("USE1-ProvisionedThroughput-hours"), None);
        assert_eq!(
            model_from_usage_type("USE1-Claude4.6Sonnet-output-tokens").as_deref(),
            Some("Claude4.6Sonnet")
        );
        assert_eq!(model_from_usage_type("USW2-MP:USW2_InputTokenCount-Units"), None);
    }

    #[test]
    fn tags_come_from_map_columns_and_principal_tags() {
        let row = json!({"resource_tags": "{\"user_team\":\"search\"}", "tags": {"iamPrincipal/tenant": "acme"}});
        let t = tags(&row);
        assert_eq!(tag_for(&t, Field::TeamId).unwrap().key, "resource_tags.user_team");
        assert_eq!(tag_for(&t, Field::TenantId).unwrap().key, "tags.iamPrincipal/tenant");
        assert!(tag_for(&t, Field::WorkflowId).is_none());
    }
}
