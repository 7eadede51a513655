//! Memory sizes as people write them: `64m`, `1g`, `512k`, `1.5g`, or bytes.

/// Parses a memory size into bytes (binary units: `1k` = 1024).
///
/// # Errors
/// A message saying what was wrong and the accepted forms.
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (number, unit) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let scale: u64 = match unit {
        "" => 1,
        "k" | "ki" => 1 << 10,
        "m" | "mi" => 1 << 20,
        "g" | "gi" => 1 << 30,
        "t" | "ti" => 1 << 40,
        _ => return Err(bad(text)),
    };
    let value: f64 = number.trim().parse().map_err(|_| bad(text))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(bad(text));
    }
    Ok((value * scale as f64) as u64)
}

fn bad(text: &str) -> String {
    format!("memory size {text:?} is not understood: write a number with k, m or g, like \"64m\" or \"1g\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_memory("64m"), Ok(64 << 20));
        assert_eq!(parse_memory("1G"), Ok(1 << 30));
        assert_eq!(parse_memory("512kb"), Ok(512 << 10));
        assert_eq!(parse_memory("1.5g"), Ok(3 << 29));
        assert_eq!(parse_memory("4096"), Ok(4096));
        for bad in ["", "m", "-1m", "12x", "lots"] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
    }
}
