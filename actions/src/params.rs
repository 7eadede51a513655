//! How a job's parameters reach an action: a JSON file and `DROVER_PARAM_*` variables.

/// Where the parameters file appears inside a container.
pub const PARAMS_PATH: &str = "/drover/params.json";

/// The environment variables for `params`: `DROVER_PARAM_<NAME>` with the name upper-cased
/// and every character outside `[A-Z0-9_]` replaced by `_`. Strings are passed as they are,
/// `null` as empty, anything else as JSON. Values are never interpolated into a command.
///
/// # Errors
/// Two parameters that map to the same variable name (`a-b` and `a_b`).
pub fn params_env(
    params: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(params.len());
    for (name, value) in params {
        let var = format!("DROVER_PARAM_{}", env_name(name));
        if let Some((_, _)) = out.iter().find(|(v, _)| *v == var) {
            return Err(format!(
                "parameters map to the same variable {var}: rename one of them"
            ));
        }
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        out.push((var, text));
    }
    Ok(out)
}

fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values() {
        let params =
            serde_json::json!({"width": 640, "name": "a b; rm -rf /", "x-y": null, "list": [1, 2]});
        let env = params_env(params.as_object().unwrap()).unwrap();
        assert!(env.contains(&("DROVER_PARAM_WIDTH".into(), "640".into())));
        assert!(env.contains(&("DROVER_PARAM_NAME".into(), "a b; rm -rf /".into())));
        assert!(env.contains(&("DROVER_PARAM_X_Y".into(), String::new())));
        assert!(env.contains(&("DROVER_PARAM_LIST".into(), "[1,2]".into())));
    }

    #[test]
    fn colliding_names_are_an_error() {
        let params = serde_json::json!({"a-b": 1, "a_b": 2});
        assert!(params_env(params.as_object().unwrap())
            .unwrap_err()
            .contains("DROVER_PARAM_A_B"));
    }
}
