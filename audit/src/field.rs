//! The attribution fields an audit looks for: the seed article's gateway-trace
//! table, with cache reads and writes as fields of their own.

use serde::Serialize;

/// One attribution field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    ModelId,
    Region,
    InputTokens,
    OutputTokens,
    CacheReadTokens,
    CacheWriteTokens,
    Latency,
    TenantId,
    WorkflowId,
    TeamId,
    CostUsd,
    BudgetRemaining,
    RequestId,
}

impl Field {
    /// Every field, in report order.
    pub const ALL: [Field; 13] = [
        Field::ModelId,
        Field::Region,
        Field::InputTokens,
        Field::OutputTokens,
        Field::CacheReadTokens,
        Field::CacheWriteTokens,
        Field::Latency,
        Field::TenantId,
        Field::WorkflowId,
        Field::TeamId,
        Field::CostUsd,
        Field::BudgetRemaining,
        Field::RequestId,
    ];

    /// What a person reads in the report.
    pub fn label(self) -> &'static str {
        match self {
            Field::ModelId => "model id",
            Field::Region => "region",
            Field::InputTokens => "input tokens",
            Field::OutputTokens => "output tokens",
            Field::CacheReadTokens => "cache read tokens",
            Field::CacheWriteTokens => "cache write tokens",
            Field::Latency => "latency",
            Field::TenantId => "tenant id",
            Field::WorkflowId => "workflow id",
            Field::TeamId => "team id",
            Field::CostUsd => "cost (USD)",
            Field::BudgetRemaining => "team budget remaining",
            Field::RequestId => "request id",
        }
    }

    /// Fields that describe what a call used and cost: a failed call has none
    /// of them, so their absence there is not a gap.
    pub fn is_usage(self) -> bool {
        matches!(
            self,
            Field::InputTokens
                | Field::OutputTokens
                | Field::CacheReadTokens
                | Field::CacheWriteTokens
                | Field::Latency
                | Field::CostUsd
                | Field::BudgetRemaining
        )
    }

    /// Fields a caller decides (headers, metadata): a team may legitimately
    /// never send one, so they are judged per team.
    pub fn is_attribution(self) -> bool {
        matches!(self, Field::TenantId | Field::WorkflowId | Field::BudgetRemaining)
    }

    /// The token fields.
    pub fn is_tokens(self) -> bool {
        matches!(
            self,
            Field::InputTokens | Field::OutputTokens | Field::CacheReadTokens | Field::CacheWriteTokens
        )
    }
}
