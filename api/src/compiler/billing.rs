//! The `billing` blocks of `ModelPricing` entries: checked with the rest of an entry, and
//! compiled into [`Billing`] — the bill's model names per price entry, which `tally reconcile`
//! uses to map Cost and Usage Report usage types to the catalog. Not part of the data plane's
//! config: pricing a call never needs them.

use std::cmp::Reverse;

use tally_config::billing::{self, Billing, BillingName};

use super::Problems;
use super::catalog::{compile_pricing, specificity};
use crate::crd::ModelBilling;
use crate::crd::ModelPricing;

/// Checks `spec.models[i].billing`, each problem naming its field under `field`.
pub(super) fn check(field: &str, billing: Option<&ModelBilling>, p: &mut Problems) {
    let Some(b) = billing else { return };
    let at = format!("{field}.billing");
    if b.usage_type_model.is_none() && b.marketplace_product.is_none() {
        p.push(
            &at,
            "names neither usageTypeModel nor marketplaceProduct; remove it or name one",
        );
    }
    if let Some(model) = &b.usage_type_model {
        p.check(format!("{at}.usageTypeModel"), check_usage_type_model(model));
    }
    if let Some(product) = &b.marketplace_product
        && (product.trim().is_empty() || product.len() > 256)
    {
        p.push(
            format!("{at}.marketplaceProduct"),
            "must be 1 to 256 characters, not blank",
        );
    }
}

/// The model part of a usage type must make `USE1-<it>-input-tokens` parse back to itself.
fn check_usage_type_model(model: &str) -> Result<(), String> {
    let well_formed = !model.is_empty()
        && model.len() <= 128
        && model.as_bytes()[0].is_ascii_alphanumeric()
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !well_formed {
        return Err(format!(
            "{model:?} is not the model part of a usage type (letters, digits, '.', '_' and '-', \
             like Claude4.6Sonnet in USE1-Claude4.6Sonnet-input-tokens)"
        ));
    }
    let round_trip = billing::parse_usage_type(&format!("USE1-{model}-input-tokens"));
    match round_trip.map(|u| u.path) {
        Some(billing::Path::FirstParty { model: parsed }) if parsed == model => Ok(()),
        _ => Err(format!(
            "{model:?} ends like a token kind or a tier suffix, so usage types naming it would not parse back to it"
        )),
    }
}

/// The billing names of every valid catalog's entries, in the catalog's precedence order
/// (priority, then specificity), so the first name matching a region is the one that wins.
/// Catalogs with errors are left out, as they are from the compiled catalog.
pub fn compile_billing(pricings: &[ModelPricing]) -> Billing {
    let mut ranked = vec![];
    for mp in pricings {
        let Ok(part) = compile_pricing(mp) else { continue };
        for (index, (entry, spec)) in part.entries.iter().zip(&mp.spec.models).enumerate() {
            let Some(b) = &spec.billing else { continue };
            let key = (
                Reverse(part.priority),
                specificity(&entry.pattern, &entry.regions),
                part.name.clone(),
                index,
            );
            let name = BillingName {
                pattern: entry.pattern.clone(),
                regions: entry.regions.clone(),
                usage_type_model: b.usage_type_model.clone(),
                marketplace_product: b.marketplace_product.clone(),
            };
            ranked.push((key, name));
        }
    }
    ranked.sort_by(|a, b| a.0.cmp(&b.0));
    Billing {
        names: ranked.into_iter().map(|(_, n)| n).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compiler::test_objects::{price, pricing};
    use crate::compiler::{compile, validate_pricing};

    fn billed(
        pattern: &str,
        regions: &[&str],
        usage_type_model: Option<&str>,
        product: Option<&str>,
    ) -> crate::crd::ModelPrice {
        let mut m = price(pattern, "3");
        m.regions = regions.iter().map(|r| r.to_string()).collect();
        m.billing = Some(ModelBilling {
            usage_type_model: usage_type_model.map(Into::into),
            marketplace_product: product.map(Into::into),
        });
        m
    }

    #[test]
    fn bad_billing_blocks_name_their_field() {
        let mp = pricing(
            "c",
            0,
            vec![
                billed("a", &[], None, None),
                billed("b", &[], Some("Claude 4"), None),
                billed("c", &[], Some("Claude4-cross-region-global"), None),
                billed("d", &[], Some("Claude4-priority"), Some(" ")),
                billed(
                    "e",
                    &[],
                    Some("Claude4.6Sonnet"),
                    Some("Claude 4.6 Sonnet (Amazon Bedrock Edition)"),
                ),
            ],
            vec![],
        );
        let fields: Vec<String> = validate_pricing(&mp).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "spec.models[0].billing",
                "spec.models[1].billing.usageTypeModel",
                "spec.models[2].billing.usageTypeModel",
                "spec.models[3].billing.usageTypeModel",
                "spec.models[3].billing.marketplaceProduct",
            ]
        );
        assert!(compile(&[], &[mp]).is_err());
    }

    #[test]
    fn names_follow_the_catalog_precedence() {
        let default = pricing(
            "default",
            0,
            vec![
                billed("m", &[], Some("M"), None),
                billed("m", &["eu-west-1"], Some("M"), None),
            ],
            vec![],
        );
        let negotiated = pricing("negotiated", 10, vec![billed("m", &[], Some("Mneg"), None)], vec![]);
        let bad = pricing("bad", 20, vec![billed("m", &[], None, None)], vec![]);
        let b = compile_billing(&[default, negotiated, bad]);
        let keys: Vec<(&str, &[String], &str)> = b
            .names
            .iter()
            .map(|n| (n.pattern.as_str(), n.regions.as_slice(), n.key()))
            .collect();
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[0].2, "Mneg");
        assert_eq!(keys[1].1, ["eu-west-1".to_string()]);
        assert_eq!(b.by_usage_type_model("M", "eu-west-1").unwrap().regions, ["eu-west-1"]);
        assert!(b.by_usage_type_model("M", "us-east-1").unwrap().regions.is_empty());
    }

    #[test]
    fn the_default_catalog_names_its_models_on_the_bill() {
        let mut manifests = crate::manifest::Manifests::default();
        let text = include_str!("../../../examples/catalog/bedrock-on-demand.yaml");
        crate::manifest::load_text(
            std::path::Path::new("bedrock-on-demand.yaml"),
            text,
            "default",
            &mut manifests,
        );
        assert!(
            crate::render::compile(&manifests).is_ok(),
            "the shipped catalog compiles"
        );
        let billing = compile_billing(&manifests.pricings);
        let sonnet = billing
            .by_usage_type_model("Claude4.6Sonnet", "us-east-1")
            .expect("named");
        assert_eq!(sonnet.pattern, "anthropic.claude-sonnet-4-6");
        let product = billing.by_marketplace_product("Claude 4.6 Sonnet (Amazon Bedrock Edition)", "us-west-2");
        assert_eq!(product.map(|n| n.pattern.as_str()), Some("anthropic.claude-sonnet-4-6"));
        assert!(billing.by_usage_type_model("NovaPro", "eu-west-1").is_some());
        // Cross-region ids bill under their base model's name: no entry of their own names one.
        assert!(
            billing
                .names
                .iter()
                .all(|n| tally_config::pricing::strip_geo_prefix(&n.pattern).is_none())
        );
    }
}
