//! `--disable-rule RULE`, as `review` and `webhook` both take it: one flag, one
//! validator, so the two cannot drift apart.

use clap::Args;
use flink_ha_policy::RuleId;

/// Rules to turn off, validated against the catalogue while the arguments are parsed.
#[derive(Args, Clone, Debug, Default)]
pub struct DisabledRules {
    /// Turn a rule off (repeatable, any case), e.g. HA205 during a planned teardown.
    #[arg(long = "disable-rule", visible_alias = "disable", value_name = "RULE", value_parser = parse_rule)]
    rules: Vec<RuleId>,
}

impl DisabledRules {
    /// The rule ids as the policy's settings take them (`HA205`).
    pub fn ids(&self) -> Vec<String> {
        self.rules.iter().map(|rule| rule.as_str().to_string()).collect()
    }
}

fn parse_rule(text: &str) -> Result<RuleId, String> {
    RuleId::parse(text.trim()).ok_or_else(|| "no such rule (see `flink-ha rules`)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_read_in_any_case_and_unknown_ones_refused() {
        assert_eq!(parse_rule("ha205"), Ok(RuleId::HA205));
        assert_eq!(parse_rule(" HA201 "), Ok(RuleId::HA201));
        assert!(parse_rule("HA999").is_err_and(|e| e.contains("no such rule")));
    }
}
