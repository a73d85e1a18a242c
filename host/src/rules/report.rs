//! What an instance says about its rules in its `$SRV.INFO` metadata:
//! written by the host, read back by `beaker rules status` and `deploy`,
//! by the tests and by the benchmarks. NATS micro metadata is a map of
//! strings; this type gives each key its meaning, in one place.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::digest::Digest;

/// The active rules, the shadow beside them, and the last refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesReport {
    #[serde(rename = "rules_name")]
    pub name: String,
    #[serde(rename = "rules_version")]
    pub version: String,
    #[serde(rename = "rules_digest")]
    pub digest: Digest,
    /// When these rules became the active ones (RFC 3339).
    #[serde(rename = "rules_since")]
    pub since: String,
    /// Where they came from: `file:PATH` or `bucket:DIGEST`.
    #[serde(rename = "rules_origin", default)]
    pub origin: String,
    #[serde(flatten)]
    pub shadow: Option<ShadowReport>,
    #[serde(flatten)]
    pub refused: Option<RefusalReport>,
    /// The bucket the instance follows, when it follows one.
    #[serde(flatten)]
    pub bucket: Option<BucketReport>,
}

/// How the instance's following of the rules bucket goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketReport {
    #[serde(rename = "rules_bucket")]
    pub name: String,
    /// Since when the bucket does not answer (RFC 3339); absent while it
    /// does.
    #[serde(
        rename = "rules_bucket_lost_since",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub lost_since: Option<String>,
    #[serde(
        rename = "rules_bucket_lost_reason",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub lost_reason: Option<String>,
    /// Entries skipped since start.
    #[serde(rename = "rules_bucket_skipped", with = "as_text")]
    pub skipped: u64,
    #[serde(flatten)]
    pub last_skipped: Option<SkippedReport>,
}

/// The last entry of the bucket the instance skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedReport {
    #[serde(rename = "rules_bucket_skipped_object")]
    pub object: String,
    /// The stream sequence of the skipped write (text: metadata is text).
    #[serde(rename = "rules_bucket_skipped_sequence")]
    pub sequence: String,
    #[serde(rename = "rules_bucket_skipped_reason")]
    pub reason: String,
    #[serde(rename = "rules_bucket_skipped_at")]
    pub at: String,
}

/// The shadow rules and how they compare with the active ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowReport {
    #[serde(rename = "shadow_name")]
    pub name: String,
    #[serde(rename = "shadow_version")]
    pub version: String,
    #[serde(rename = "shadow_digest")]
    pub digest: Digest,
    #[serde(rename = "shadow_agreements", with = "as_text")]
    pub agreements: u64,
    #[serde(rename = "shadow_divergences", with = "as_text")]
    pub divergences: u64,
    #[serde(rename = "shadow_failures", with = "as_text")]
    pub failures: u64,
    #[serde(rename = "shadow_skipped", with = "as_text")]
    pub skipped: u64,
}

/// The last candidate this instance refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalReport {
    #[serde(rename = "rules_refused_digest")]
    pub digest: Digest,
    #[serde(rename = "rules_refused_reason")]
    pub reason: String,
    /// When (RFC 3339).
    #[serde(rename = "rules_refused_at")]
    pub at: String,
}

/// Why metadata is not a rules report.
#[derive(Debug, thiserror::Error)]
#[error("the instance's metadata is not a rules report: {0}")]
pub struct ReportError(String);

impl RulesReport {
    /// The report as `$SRV.INFO` metadata.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let Ok(serde_json::Value::Object(map)) = serde_json::to_value(self) else {
            return BTreeMap::new();
        };
        map.into_iter()
            .filter_map(|(key, value)| match value {
                serde_json::Value::String(text) => Some((key, text)),
                _ => None,
            })
            .collect()
    }

    /// The report in an instance's metadata (the `metadata` object of its
    /// `$SRV.INFO` reply).
    pub fn from_metadata(metadata: &serde_json::Value) -> Result<Self, ReportError> {
        serde_json::from_value(metadata.clone()).map_err(|e| ReportError(e.to_string()))
    }
}

/// Counts travel as text: micro metadata values are strings.
mod as_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(byte: u8) -> Digest {
        Digest::of(&[byte])
    }

    #[test]
    fn a_report_travels_as_string_metadata_and_back() {
        let report = RulesReport {
            name: "r".into(),
            version: "1.0.0".into(),
            digest: digest(1),
            since: "2026-12-04T10:00:00+00:00".into(),
            origin: "file:rules.wasm".into(),
            shadow: Some(ShadowReport {
                name: "s".into(),
                version: "2.0.0".into(),
                digest: digest(2),
                agreements: 7,
                divergences: 1,
                failures: 0,
                skipped: 3,
            }),
            refused: None,
            bucket: Some(BucketReport {
                name: "beaker-rules".into(),
                lost_since: None,
                lost_reason: None,
                skipped: 2,
                last_skipped: Some(SkippedReport {
                    object: "active".into(),
                    sequence: "41".into(),
                    reason: "not JSON".into(),
                    at: "2026-12-04T10:00:01+00:00".into(),
                }),
            }),
        };
        let metadata = report.metadata();
        assert_eq!(metadata["rules_bucket_skipped"], "2");
        assert_eq!(metadata["rules_bucket_skipped_object"], "active");
        assert!(!metadata.contains_key("rules_bucket_lost_since"));
        assert_eq!(metadata["shadow_agreements"], "7");
        assert_eq!(metadata["rules_digest"], digest(1).as_str());
        assert!(!metadata.contains_key("rules_refused_digest"));
        let value = serde_json::to_value(&metadata).unwrap_or_default();
        assert_eq!(RulesReport::from_metadata(&value).ok(), Some(report));
    }

    #[test]
    fn absent_parts_are_none_and_a_stranger_is_refused() {
        let value = serde_json::json!({
            "rules_name": "r", "rules_version": "1", "rules_digest": digest(1).as_str(),
            "rules_since": "x",
        });
        let report = RulesReport::from_metadata(&value).expect("a report");
        assert_eq!(report.shadow, None);
        assert_eq!(report.refused, None);
        assert_eq!(report.bucket, None);
        assert!(RulesReport::from_metadata(&serde_json::json!({"other": "x"})).is_err());
    }
}
