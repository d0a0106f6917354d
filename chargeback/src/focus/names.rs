//! Names FOCUS rows carry that the ledger does not: an AWS region's display name
//! (`RegionName`) and a Bedrock model's publisher (`PublisherName`). Data, no logic beyond lookup.

/// AWS's display names of the regions Bedrock serves (the console's and price list's names).
const REGIONS: &[(&str, &str)] = &[
    ("us-east-1", "US East (N. Virginia)"),
    ("us-east-2", "US East (Ohio)"),
    ("us-west-1", "US West (N. California)"),
    ("us-west-2", "US West (Oregon)"),
    ("us-gov-east-1", "AWS GovCloud (US-East)"),
    ("us-gov-west-1", "AWS GovCloud (US-West)"),
    ("ca-central-1", "Canada (Central)"),
    ("ca-west-1", "Canada West (Calgary)"),
    ("sa-east-1", "South America (Sao Paulo)"),
    ("mx-central-1", "Mexico (Central)"),
    ("eu-central-1", "Europe (Frankfurt)"),
    ("eu-central-2", "Europe (Zurich)"),
    ("eu-west-1", "Europe (Ireland)"),
    ("eu-west-2", "Europe (London)"),
    ("eu-west-3", "Europe (Paris)"),
    ("eu-north-1", "Europe (Stockholm)"),
    ("eu-south-1", "Europe (Milan)"),
    ("eu-south-2", "Europe (Spain)"),
    ("il-central-1", "Israel (Tel Aviv)"),
    ("me-central-1", "Middle East (UAE)"),
    ("me-south-1", "Middle East (Bahrain)"),
    ("af-south-1", "Africa (Cape Town)"),
    ("ap-east-1", "Asia Pacific (Hong Kong)"),
    ("ap-east-2", "Asia Pacific (Taipei)"),
    ("ap-south-1", "Asia Pacific (Mumbai)"),
    ("ap-south-2", "Asia Pacific (Hyderabad)"),
    ("ap-northeast-1", "Asia Pacific (Tokyo)"),
    ("ap-northeast-2", "Asia Pacific (Seoul)"),
    ("ap-northeast-3", "Asia Pacific (Osaka)"),
    ("ap-southeast-1", "Asia Pacific (Singapore)"),
    ("ap-southeast-2", "Asia Pacific (Sydney)"),
    ("ap-southeast-3", "Asia Pacific (Jakarta)"),
    ("ap-southeast-4", "Asia Pacific (Melbourne)"),
    ("ap-southeast-5", "Asia Pacific (Malaysia)"),
    ("ap-southeast-7", "Asia Pacific (Thailand)"),
];

/// Bedrock model-id vendor prefixes → the company that publishes the model.
const PUBLISHERS: &[(&str, &str)] = &[
    ("anthropic", "Anthropic"),
    ("amazon", "Amazon Web Services"),
    ("meta", "Meta"),
    ("mistral", "Mistral AI"),
    ("cohere", "Cohere"),
    ("ai21", "AI21 Labs"),
    ("stability", "Stability AI"),
    ("deepseek", "DeepSeek"),
    ("openai", "OpenAI"),
    ("qwen", "Qwen"),
    ("writer", "Writer"),
    ("luma", "Luma AI"),
    ("twelvelabs", "TwelveLabs"),
    ("google", "Google"),
    ("moonshot", "Moonshot AI"),
    ("minimax", "MiniMax"),
    ("nvidia", "NVIDIA"),
];

/// The cloud that serves and invoices Bedrock (`ProviderName`, `InvoiceIssuerName`).
pub const PROVIDER: &str = "Amazon Web Services";

/// The region's display name; the id itself for a region this table does not know.
pub fn region_name(id: &str) -> &str {
    REGIONS.iter().find(|(r, _)| *r == id).map_or(id, |(_, name)| name)
}

/// Who published `model` (a Bedrock model id, with or without a geo prefix such as `us.`):
/// its vendor prefix's company, else AWS (the marketplace seller of record).
pub fn publisher(model: &str) -> &'static str {
    let base = tally_config::pricing::strip_geo_prefix(model).unwrap_or(model);
    let vendor = base.split(['.', ':', '/']).next().unwrap_or("");
    PUBLISHERS
        .iter()
        .find(|(prefix, _)| *prefix == vendor)
        .map_or(PROVIDER, |(_, name)| name)
}
